/**
 * A content hash of model weights: "same seed, same weights" is checked by comparing it.
 */
import { createHash } from 'crypto';
import type { ParamInfo } from '../types';

/**
 * SHA-256 (hex) over every parameter in order: its name, dtype, shape and raw little-endian
 * bytes. Equal hashes mean bit-identical weights under the same names and layout.
 */
export function weightsSha256(params: readonly ParamInfo[]): string {
  const hash = createHash('sha256');
  for (const p of params) {
    const v = p.variable;
    hash.update(`${p.name}\0${v.dtype}\0${v.shape.join(',')}\0`);
    const data = v.dataSync() as Float32Array | Int32Array | Uint8Array;
    hash.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return hash.digest('hex');
}
