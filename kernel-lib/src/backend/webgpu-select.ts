/**
 * GMT's exact threshold on the GPU: a segmented radix select in WebGPU compute shaders.
 *
 * For each segment s (a tensor, a layer or the whole model, as the mask's scope says), T_s is the
 * (m_s + 1)-th smallest |x| over the segment's entries: the same value the host selection finds.
 * |x| of a float, as its bits with the sign cleared, orders like the float itself, so T_s is
 * found a byte at a time, most significant first. Each of the four passes builds a 256-bin
 * histogram of that byte over the entries whose higher bytes equal the prefix found so far
 * (one workgroup per chunk of one segment, counting in workgroup memory), then one invocation per
 * segment walks its histogram to the bin that holds rank m_s and narrows the prefix and the rank.
 * After the last pass the prefix is T_s's bit pattern. All segments share the eight dispatches,
 * and nothing is read back: the result is a float32 tensor of the S thresholds on the device.
 */
import * as tf from '@tensorflow/tfjs';

/** Entries one workgroup counts in a histogram pass (256 invocations × 16). */
const CHUNK = 4096;
const WORKGROUP = 256;

/** The part of tfjs' webgpu backend these programs use. */
interface WebgpuBackend {
  runWebGPUProgram(program: object, inputs: tf.TensorInfo[], outputDtype: tf.DataType, uniforms?: { type: string; data: number[] }[], output?: tf.TensorInfo): tf.TensorInfo;
}

/** The fields tfjs' webgpu backend reads from a program (its `WebGPUProgram`), built here. */
interface Program {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  variableNames: string[];
  uniforms: string;
  workgroupSize: [number, number, number];
  atomic?: boolean;
  size?: boolean;
  getUserCode(): string;
}

/** `fn main(index: i32)` as tfjs' shader preamble calls it for a flat dispatch layout. */
const MAIN = 'fn main(index : i32)';

function program(name: string, outputShape: number[], variableNames: string[], uniforms: string, workgroups: number, workgroupSize: number, code: string, atomic = false): Program {
  return {
    outputShape,
    shaderKey: `gmt_${name}`,
    dispatchLayout: { x: outputShape.map((_, i) => i) },
    dispatch: [Math.max(1, workgroups), 1, 1],
    variableNames,
    uniforms,
    workgroupSize: [workgroupSize, 1, 1],
    atomic,
    getUserCode: () => code,
  };
}

/** Pass p's histogram: bins[s][byte] over the entries of s whose higher bytes match s's prefix. */
const HISTOGRAM = `
  var<workgroup> bins : array<atomic<u32>, ${WORKGROUP}>;
  ${MAIN} {
    // workgroupId comes through a private variable, which WGSL deems non-uniform: no early
    // return before the barriers; a padding workgroup (a 2-D dispatch) just counts nothing.
    let flat = i32(workgroupId.y * numWorkgroups.x + workgroupId.x);
    let inRange = flat < uniforms.chunkCount;
    let c = min(flat, uniforms.chunkCount - 1);
    atomicStore(&bins[localIndex], 0u);
    workgroupBarrier();
    let seg = chunks[3 * c];
    let shift = u32(uniforms.shift);
    let prefix = bitcast<u32>(state[2 * seg]);
    var high = 0u;
    if (shift < 24u) { high = 0xffffffffu << (shift + 8u); }
    if (inRange) {
      let end = chunks[3 * c + 2];
      for (var i = chunks[3 * c + 1] + i32(localIndex); i < end; i = i + ${WORKGROUP}) {
        let b = bitcast<u32>(x[i]) & 0x7fffffffu;
        if ((b & high) == prefix) { atomicAdd(&bins[(b >> shift) & 255u], 1u); }
      }
    }
    workgroupBarrier();
    let n = atomicLoad(&bins[localIndex]);
    if (inRange && n > 0u) { atomicAdd(&result[seg * 256 + i32(localIndex)], i32(n)); }
  }
`;

/** One invocation per segment: the bin holding rank r fixes the next byte; r becomes the rank within it. */
const NARROW = `
  ${MAIN} {
    if (index >= uniforms.segCount) { return; }
    var r = state[2 * index + 1];
    var prefix = bitcast<u32>(state[2 * index]);
    for (var d = 0; d < 256; d = d + 1) {
      let n = hist[index * 256 + d];
      if (r < n) {
        prefix = prefix | (u32(d) << u32(uniforms.shift));
        break;
      }
      r = r - n;
    }
    result[2 * index] = bitcast<i32>(prefix);
    result[2 * index + 1] = r;
  }
`;

const AS_FLOAT = `
  ${MAIN} {
    if (index < uniforms.segCount) { result[index] = bitcast<f32>(state[2 * index]); }
  }
`;

const KEEP = `
  ${MAIN} {
    if (index < uniforms.n) { result[index] = select(0.0, 1.0, abs(x[index]) >= t[uniforms.seg]); }
  }
`;

function webgpuBackend(): WebgpuBackend {
  if (tf.getBackend() !== 'webgpu') throw new Error(`the device selection needs the webgpu backend (the backend is ${tf.getBackend()})`);
  return tf.backend() as unknown as WebgpuBackend;
}

function run(be: WebgpuBackend, p: Program, inputs: tf.Tensor[], dtype: tf.DataType, uniforms: number[], output?: tf.Tensor): tf.Tensor {
  const info = be.runWebGPUProgram(p, inputs, dtype, uniforms.map((v) => ({ type: 'int32', data: [v] })), output);
  return output ?? tf.engine().makeTensorFromTensorInfo(info, tf.backend());
}

/**
 * T_s for each segment: the (drops[s] + 1)-th smallest |x| over the tensors of `segments[s]`
 * (exact, ties included), as a float32 tensor [S] on the device. Needs 0 ≤ drops[s] < the
 * segment's size; entries are assumed finite (NaN's bits sort above +∞). Inputs are not disposed.
 */
export function selectThresholdsOnDevice(segments: readonly (readonly tf.Tensor[])[], drops: readonly number[]): tf.Tensor1D {
  const be = webgpuBackend();
  const S = segments.length;
  if (drops.length !== S) throw new Error(`selectThresholdsOnDevice: ${S} segments but ${drops.length} drop counts`);
  const chunks: number[] = [];
  const state: number[] = [];
  let offset = 0;
  segments.forEach((segment, s) => {
    const n = segment.reduce((a, t) => a + t.size, 0);
    const m = drops[s]!;
    if (!(Number.isInteger(m) && m >= 0 && m < n)) throw new Error(`selectThresholdsOnDevice: segment ${s} has ${n} entries, cannot drop ${m}`);
    for (let start = 0; start < n; start += CHUNK) chunks.push(s, offset + start, offset + Math.min(n, start + CHUNK));
    state.push(0, m);
    offset += n;
  });
  return tf.tidy(() => {
    const x = tf.concat(segments.flat().map((t) => tf.reshape(t, [-1])));
    const chunkTable = tf.tensor1d(chunks, 'int32');
    const chunkCount = chunks.length / 3;
    let st: tf.Tensor = tf.tensor1d(state, 'int32');
    for (let shift = 24; shift >= 0; shift -= 8) {
      const hist = run(be, program('radix_histogram', [S * 256], ['x', 'chunks', 'state'], 'shift : i32, chunkCount : i32,', chunkCount, WORKGROUP, HISTOGRAM, true),
        [x, chunkTable, st], 'int32', [shift, chunkCount], tf.zeros([S * 256], 'int32'));
      st = run(be, program('radix_narrow', [S * 2], ['hist', 'state'], 'shift : i32, segCount : i32,', Math.ceil(S / 64), 64, NARROW), [hist, st], 'int32', [shift, S]);
    }
    return run(be, program('radix_threshold', [S], ['state'], 'segCount : i32,', Math.ceil(S / 64), 64, AS_FLOAT), [st], 'float32', [S]) as tf.Tensor1D;
  });
}

/** M = [|score| ≥ thresholds[segment]] as float32 in one dispatch, shaped like `score`. */
export function keepMaskOnDevice(score: tf.Tensor, thresholds: tf.Tensor1D, segment: number): tf.Tensor {
  const be = webgpuBackend();
  const n = score.size;
  return tf.tidy(() => {
    const flat = run(be, program('keep_mask', [n], ['x', 't'], 'n : i32, seg : i32,', Math.ceil(n / 64), 64, KEEP), [tf.reshape(score, [-1]), thresholds], 'float32', [n, segment]);
    return tf.reshape(flat, score.shape);
  });
}
