/**
 * Where the project's committed data lives, and the base-checkpoint manifest.
 *
 * `data/` sits three folders above this file both in `src/sweep` (tests through tsx) and in
 * `dist/sweep` (the built package), so one relative path serves both. `GMT_DATA_DIR` overrides it
 * for users who keep checkpoints elsewhere.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../util/config';
import { GPT_PRESETS } from '../model/presets';

/** The folder holding datasets and base checkpoints (`<repo>/data` unless `GMT_DATA_DIR` is set). */
export function dataDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.GMT_DATA_DIR ?? path.join(__dirname, '..', '..', '..', 'data'));
}

/** The committed base checkpoint of a preset: `data/base/<preset>.safetensors`. */
export function baseCheckpointPath(preset: string, env: NodeJS.ProcessEnv = process.env): string {
  return path.join(dataDir(env), 'base', `${preset}.safetensors`);
}

/** Path of the sha256 manifest beside the base checkpoints. */
export function baseManifestPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(dataDir(env), 'base', 'SHA256SUMS');
}

/** sha256 of a file's bytes, hex. */
export function sha256File(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** Parses a `sha256sum`-style manifest (`<hex>  <name>` per line) into name → hex. */
export function readManifest(file: string): Map<string, string> {
  const out = new Map<string, string>();
  const lines = readFileSync(file, 'utf8').split('\n');
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (!m) throw new ConfigError(`${file}:${i + 1}: not a "<sha256>  <file>" line: ${JSON.stringify(line)}`);
    out.set(m[2] as string, m[1] as string);
  });
  return out;
}

/**
 * Resolves a base checkpoint given as a preset name (`micro` → the committed file) or a path,
 * and verifies committed ones against the manifest so that a corrupted or half-written file is
 * reported instead of silently fine-tuned from.
 */
export function resolveBaseCheckpoint(base: string, env: NodeJS.ProcessEnv = process.env): { path: string; sha256: string } {
  const isPreset = /^[a-z]+$/.test(base) && !existsSync(base);
  const file = isPreset ? baseCheckpointPath(base, env) : path.resolve(base);
  if (isPreset && !Object.hasOwn(GPT_PRESETS, base)) {
    throw new ConfigError(`base "${base}" is neither a model preset (${Object.keys(GPT_PRESETS).join(', ')}) nor a checkpoint file`);
  }
  if (!existsSync(file)) {
    throw new ConfigError(
      isPreset
        ? `no base checkpoint for preset "${base}" at ${file}; create it with \`gmt-lab pretrain --preset ${base}\``
        : `base checkpoint ${file} does not exist`,
    );
  }
  const sha256 = sha256File(file);
  const manifest = baseManifestPath(env);
  if (path.dirname(file) === path.dirname(manifest) && existsSync(manifest)) {
    const expected = readManifest(manifest).get(path.basename(file));
    if (expected !== undefined && expected !== sha256) {
      throw new ConfigError(`${file}: sha256 ${sha256} does not match ${manifest} (${expected}); the file is corrupted or was replaced`);
    }
  }
  return { path: file, sha256 };
}
