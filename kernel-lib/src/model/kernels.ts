/**
 * Block copy kernels for the fast attention path: cut a 2-D tensor into many small tiles
 * (optionally transposed) and put tiles back together, in one kernel call each.
 *
 * Why: tfjs-backend-wasm runs only 2-D untransposed matmuls fast, so attention is computed as
 * one small 2-D product per (sequence, head). Cutting the per-head operands with `tf.slice`
 * costs a copy of the whole source tensor per slice on wasm (its `readSync` copies), and
 * batched transposes are slow; these kernels read the source once and write every tile.
 * They exist for the `cpu` and `wasm` backends; other backends use `tf.slice`/`tf.transpose`.
 */
import * as tf from '@tensorflow/tfjs';

/** How `x` [R, C] is cut: row blocks of `rows`, `nColBlocks` column blocks of `cols` from `colOffset`. */
export interface TileSpec {
  rows: number;
  cols: number;
  colOffset: number;
  nColBlocks: number;
  /** Return each tile transposed ([cols, rows]). */
  transpose: boolean;
}

const TILES_OUT = 'GmtTilesOut';
const TILES_IN = 'GmtTilesIn';

interface Io {
  alloc(shape: number[]): tf.TensorInfo;
  view(info: tf.TensorInfo): Float32Array;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function ioFor(backendName: string, backend: any): Io {
  if (backendName === 'wasm') {
    return {
      alloc: (shape) => backend.makeOutput(shape, 'float32'),
      view: (info) => backend.typedArrayFromHeap(info) as Float32Array,
    };
  }
  return {
    alloc: (shape) => backend.makeTensorInfo(shape, 'float32', new Float32Array(shape.reduce((a, b) => a * b, 1))),
    view: (info) => backend.data.get(info.dataId).values as Float32Array,
  };
}

function copyTile(
  src: Float32Array, srcCols: number, r0: number, c0: number, rows: number, cols: number,
  dst: Float32Array, transpose: boolean,
): void {
  if (!transpose) {
    for (let i = 0; i < rows; i++) {
      const s = (r0 + i) * srcCols + c0;
      dst.set(src.subarray(s, s + cols), i * cols);
    }
  } else {
    for (let i = 0; i < rows; i++) {
      const s = (r0 + i) * srcCols + c0;
      for (let j = 0; j < cols; j++) dst[j * rows + i] = src[s + j] as number;
    }
  }
}

function register(backendName: string): void {
  tf.registerKernel({
    kernelName: TILES_OUT,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const x = (inputs as { x: tf.TensorInfo }).x;
      const spec = attrs as unknown as TileSpec;
      const io = ioFor(backendName, backend);
      const [R, C] = x.shape as [number, number];
      const nRowBlocks = R / spec.rows;
      const shape = spec.transpose ? [spec.cols, spec.rows] : [spec.rows, spec.cols];
      const outs: tf.TensorInfo[] = [];
      for (let k = 0; k < nRowBlocks * spec.nColBlocks; k++) outs.push(io.alloc(shape));
      // Views are taken after every allocation: a wasm heap growth detaches older views.
      const src = io.view(x);
      for (let b = 0; b < nRowBlocks; b++) {
        for (let h = 0; h < spec.nColBlocks; h++) {
          const out = outs[b * spec.nColBlocks + h] as tf.TensorInfo;
          copyTile(src, C, b * spec.rows, spec.colOffset + h * spec.cols, spec.rows, spec.cols, io.view(out), spec.transpose);
        }
      }
      return outs;
    },
  });
  tf.registerKernel({
    kernelName: TILES_IN,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const tiles = Object.values(inputs) as tf.TensorInfo[];
      const { nColBlocks } = attrs as unknown as { nColBlocks: number };
      const io = ioFor(backendName, backend);
      const [rows, cols] = (tiles[0] as tf.TensorInfo).shape as [number, number];
      const nRowBlocks = tiles.length / nColBlocks;
      const C = cols * nColBlocks;
      const out = io.alloc([rows * nRowBlocks, C]);
      const dst = io.view(out);
      for (let b = 0; b < nRowBlocks; b++) {
        for (let h = 0; h < nColBlocks; h++) {
          const src = io.view(tiles[b * nColBlocks + h] as tf.TensorInfo);
          for (let i = 0; i < rows; i++) dst.set(src.subarray(i * cols, (i + 1) * cols), (b * rows + i) * C + h * cols);
        }
      }
      return out;
    },
  });
}

let registered = false;
function ensureRegistered(): void {
  if (registered) return;
  register('cpu');
  register('wasm');
  registered = true;
}

let kernelsEnabled = true;

/**
 * Turns the custom kernels off (true by default), so that the portable tfjs-op versions used
 * on other backends (webgl, webgpu, node) can be tested on cpu and wasm.
 */
export function setCustomKernelsEnabled(enabled: boolean): void {
  kernelsEnabled = enabled;
}

function hasKernels(): boolean {
  if (!kernelsEnabled) return false;
  const b = tf.getBackend();
  return b === 'cpu' || b === 'wasm';
}

/**
 * Cuts `x` [R, C] into tiles ordered row block major, column block minor:
 * tile (b, h) = x[b·rows : (b+1)·rows, colOffset + h·cols : colOffset + (h+1)·cols].
 */
export function tilesOut(x: tf.Tensor2D, spec: TileSpec): tf.Tensor2D[] {
  if (!hasKernels()) {
    const out: tf.Tensor2D[] = [];
    for (let b = 0; b < x.shape[0] / spec.rows; b++) {
      for (let h = 0; h < spec.nColBlocks; h++) {
        const t = tf.slice(x, [b * spec.rows, spec.colOffset + h * spec.cols], [spec.rows, spec.cols]);
        out.push(spec.transpose ? tf.transpose(t) : t);
      }
    }
    return out;
  }
  ensureRegistered();
  return tf.engine().runKernel(TILES_OUT, { x }, spec as unknown as tf.NamedAttrMap) as unknown as tf.Tensor2D[];
}

/** Inverse of `tilesOut` without transpose: tiles in row-block-major order, `nColBlocks` per row block. */
export function tilesIn(tiles: tf.Tensor2D[], nColBlocks: number): tf.Tensor2D {
  if (!hasKernels()) {
    const rowsOf: tf.Tensor2D[] = [];
    for (let b = 0; b < tiles.length / nColBlocks; b++) rowsOf.push(tf.concat(tiles.slice(b * nColBlocks, (b + 1) * nColBlocks), 1));
    return tf.concat(rowsOf, 0);
  }
  ensureRegistered();
  const inputs: Record<string, tf.Tensor> = {};
  tiles.forEach((t, i) => { inputs[`t${i}`] = t; });
  return tf.engine().runKernel(TILES_IN, inputs, { nColBlocks }) as tf.Tensor2D;
}

// ---------------------------------------------------------------------------------------------
// Fused elementwise kernels: one pass over memory instead of 6–11 separate tfjs ops, each of
// which allocates and walks the whole activation on wasm.
// ---------------------------------------------------------------------------------------------

const GELU_ARG = 'GmtGeluArg';
const GELU_BWD = 'GmtGeluBwd';
const LN_FWD = 'GmtLayerNormFwd';
const LN_BWD = 'GmtLayerNormBwd';
const GELU_A = 2 * Math.sqrt(2 / Math.PI);
const GELU_B = GELU_A * 0.044715;

function registerFused(backendName: string): void {
  const views = (backend: unknown, infos: tf.TensorInfo[]) => {
    const io = ioFor(backendName, backend);
    return infos.map((i) => io.view(i));
  };
  tf.registerKernel({
    kernelName: GELU_ARG,
    backendName,
    kernelFunc: ({ inputs, backend }) => {
      const { x } = inputs as { x: tf.TensorInfo };
      const z = ioFor(backendName, backend).alloc(x.shape);
      const [xv, zv] = views(backend, [x, z]) as [Float32Array, Float32Array];
      for (let i = 0; i < xv.length; i++) {
        const v = xv[i] as number;
        zv[i] = v * (GELU_A + GELU_B * v * v);
      }
      return z;
    },
  });
  tf.registerKernel({
    kernelName: GELU_BWD,
    backendName,
    kernelFunc: ({ inputs, backend }) => {
      const { x, s, dy } = inputs as { x: tf.TensorInfo; s: tf.TensorInfo; dy: tf.TensorInfo };
      const dx = ioFor(backendName, backend).alloc(x.shape);
      const [xv, sv, gv, dv] = views(backend, [x, s, dy, dx]) as Float32Array[] as [Float32Array, Float32Array, Float32Array, Float32Array];
      for (let i = 0; i < xv.length; i++) {
        const v = xv[i] as number;
        const sig = sv[i] as number;
        dv[i] = (gv[i] as number) * (sig + v * sig * (1 - sig) * (GELU_A + 3 * GELU_B * v * v));
      }
      return dx;
    },
  });
  tf.registerKernel({
    kernelName: LN_FWD,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { x, gamma, beta } = inputs as { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo };
      const { eps } = attrs as unknown as { eps: number };
      const io = ioFor(backendName, backend);
      const d = x.shape[x.shape.length - 1] as number;
      const n = x.shape.reduce((a, b) => a * b, 1) / d;
      const y = io.alloc(x.shape);
      const xhat = io.alloc(x.shape);
      const rstd = io.alloc([n, 1]);
      const [xv, gv, bv, yv, hv, rv] = views(backend, [x, gamma, beta, y, xhat, rstd]) as Float32Array[];
      for (let r = 0; r < n; r++) {
        const o = r * d;
        let mean = 0;
        for (let j = 0; j < d; j++) mean += xv![o + j] as number;
        mean /= d;
        let v = 0;
        for (let j = 0; j < d; j++) { const c = (xv![o + j] as number) - mean; v += c * c; }
        const rs = 1 / Math.sqrt(v / d + eps);
        rv![r] = rs;
        for (let j = 0; j < d; j++) {
          const h = ((xv![o + j] as number) - mean) * rs;
          hv![o + j] = h;
          yv![o + j] = h * (gv![j] as number) + (bv![j] as number);
        }
      }
      return [y, xhat, rstd];
    },
  });
  tf.registerKernel({
    kernelName: LN_BWD,
    backendName,
    kernelFunc: ({ inputs, backend }) => {
      const { dy, xhat, rstd, gamma } = inputs as { dy: tf.TensorInfo; xhat: tf.TensorInfo; rstd: tf.TensorInfo; gamma: tf.TensorInfo };
      const io = ioFor(backendName, backend);
      const d = xhat.shape[xhat.shape.length - 1] as number;
      const n = xhat.shape.reduce((a, b) => a * b, 1) / d;
      const dx = io.alloc(xhat.shape);
      const dg = io.alloc([d]);
      const db = io.alloc([d]);
      const [gy, hv, rv, gm, dxv, dgv, dbv] = views(backend, [dy, xhat, rstd, gamma, dx, dg, db]) as Float32Array[];
      const accG = new Float64Array(d);
      const accB = new Float64Array(d);
      for (let r = 0; r < n; r++) {
        const o = r * d;
        let m1 = 0;
        let m2 = 0;
        for (let j = 0; j < d; j++) {
          const g = gy![o + j] as number;
          const h = hv![o + j] as number;
          const dh = g * (gm![j] as number);
          m1 += dh;
          m2 += dh * h;
          accG[j] = (accG[j] as number) + g * h;
          accB[j] = (accB[j] as number) + g;
        }
        m1 /= d;
        m2 /= d;
        const rs = rv![r] as number;
        for (let j = 0; j < d; j++) {
          const dh = (gy![o + j] as number) * (gm![j] as number);
          dxv![o + j] = rs * (dh - m1 - (hv![o + j] as number) * m2);
        }
      }
      dgv!.set(accG);
      dbv!.set(accB);
      return [dx, dg, db];
    },
  });
}

let fusedRegistered = false;

/** Whether the fused kernels run on the current backend (cpu and wasm). */
export function hasFusedKernels(): boolean {
  if (!hasKernels()) return false;
  if (!fusedRegistered) {
    registerFused('cpu');
    registerFused('wasm');
    fusedRegistered = true;
  }
  return true;
}

/**
 * GELU (tanh form, as x·σ(2z)) forward: returns [y, σ(2z)]. The argument 2z is one fused pass;
 * the sigmoid stays a tfjs op because wasm's vectorised sigmoid beats `Math.exp` in a loop.
 * Requires `hasFusedKernels()`.
 */
export function geluForward(x: tf.Tensor): [tf.Tensor, tf.Tensor] {
  const z = tf.engine().runKernel(GELU_ARG, { x }) as tf.Tensor;
  const s = tf.sigmoid(z);
  z.dispose();
  return [tf.mul(x, s), s];
}

/** GELU backward from the saved input and σ(2z). Requires `hasFusedKernels()`. */
export function geluBackward(x: tf.Tensor, s: tf.Tensor, dy: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel(GELU_BWD, { x, s, dy }) as tf.Tensor;
}

/** LayerNorm forward over the last axis: returns [y, xhat, rstd [n, 1]]. Requires `hasFusedKernels()`. */
export function layerNormForward(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): [tf.Tensor, tf.Tensor, tf.Tensor] {
  return tf.engine().runKernel(LN_FWD, { x, gamma, beta }, { eps }) as unknown as [tf.Tensor, tf.Tensor, tf.Tensor];
}

/** LayerNorm backward: returns [dx, dgamma, dbeta]. Requires `hasFusedKernels()`. */
export function layerNormBackward(dy: tf.Tensor, xhat: tf.Tensor, rstd: tf.Tensor, gamma: tf.Tensor): [tf.Tensor, tf.Tensor, tf.Tensor] {
  return tf.engine().runKernel(LN_BWD, { dy, xhat, rstd, gamma }) as unknown as [tf.Tensor, tf.Tensor, tf.Tensor];
}
