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

function hasKernels(): boolean {
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
