/** Content hash of model weights, for determinism checks and checkpoint provenance. */
import { createHash } from 'node:crypto';
import type { ParamInfo } from '../types';

/**
 * sha256 (hex) over every parameter in order: its name, shape, and float32 bytes.
 * Same seed and backend → same hash; any changed bit → a different hash.
 */
export function weightsSha256(params: readonly ParamInfo[]): string {
  const h = createHash('sha256');
  for (const p of params) {
    h.update(`${p.name}[${p.variable.shape.join(',')}]\n`);
    const data = p.variable.dataSync() as Float32Array;
    h.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return h.digest('hex');
}

/**
 * {@link weightsSha256} through asynchronous reads, for backends that cannot download
 * synchronously (webgpu in Node); the same hash for the same weights.
 */
export async function weightsSha256Async(params: readonly ParamInfo[]): Promise<string> {
  const h = createHash('sha256');
  for (const p of params) {
    h.update(`${p.name}[${p.variable.shape.join(',')}]\n`);
    const data = (await p.variable.data()) as Float32Array;
    h.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return h.digest('hex');
}
