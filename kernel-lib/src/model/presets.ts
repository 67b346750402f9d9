/**
 * Named model sizes. The vocabulary comes from the tokenizer, so every preset takes it as an
 * override: `gptPreset('micro', { vocabSize: tokenizer.vocabSize })`.
 */
import { ConfigError } from '../util/config';
import { resolveGPTConfig, type GPTConfig } from './config';

/** The preset names. */
export type GPTPresetName = 'nano' | 'micro' | 'mini';

/** Architecture of each preset (vocabulary and seed come from the caller). */
export const GPT_PRESETS: Readonly<Record<GPTPresetName, Readonly<Partial<GPTConfig>>>> = Object.freeze({
  /** ~0.1M parameters: tests and quick checks. */
  nano: Object.freeze({ contextLength: 128, dModel: 64, nLayers: 2, nHeads: 4 }),
  /** ~0.8M parameters: the CPU default (wasm trains it at a few updates per second). */
  micro: Object.freeze({ contextLength: 128, dModel: 128, nLayers: 4, nHeads: 4 }),
  /** ~10M parameters: for a GPU backend. */
  mini: Object.freeze({ contextLength: 256, dModel: 320, nLayers: 8, nHeads: 8 }),
});

/** The resolved config of preset `name` with `overrides` (e.g. `vocabSize`, `seed`) applied. */
export function gptPreset(name: GPTPresetName, overrides: Partial<GPTConfig> = {}): GPTConfig {
  const base = GPT_PRESETS[name];
  if (!base) {
    throw new ConfigError(`unknown GPT preset "${String(name)}" (known: ${Object.keys(GPT_PRESETS).join(', ')})`);
  }
  return resolveGPTConfig({ ...base, ...overrides });
}
