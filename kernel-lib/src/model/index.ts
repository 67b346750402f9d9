/** The model: GPT decoder, presets, generation, safetensors checkpoints, update timing. */
export { GPT, paramSpecs, defaultGradientPath, type GPTOptions } from './gpt';
export { DEFAULT_GPT_CONFIG, resolveGPTConfig, type GPTConfig } from './config';
export { GPT_PRESETS, gptPreset, type GPTPresetName } from './presets';
export { generate, type GenerateOptions } from './generate';
export { withGenerationModel, hostBackendName } from './host-copy';
export { weightsSha256 } from './hash';
export { setCustomKernelsEnabled } from './kernels';
export {
  saveSafetensors, loadSafetensors, encodeSafetensors, decodeSafetensors, saveCheckpoint, saveCheckpointAsync, loadCheckpoint,
  readCheckpointConfig, SafetensorsError, MAX_HEADER_BYTES, CHECKPOINT_CONFIG_KEY, CHECKPOINT_FORMAT_KEY,
  type SafetensorsDtype, type SafetensorsData, type SafetensorsTensor, type SafetensorsFile,
} from './safetensors';
export {
  timeUpdates, benchReferenceModel, benchGeneration, randomHostBatch, REFERENCE_BENCH_CONFIG,
  type UpdateTimings, type TimeUpdatesOptions, type GenerationTimings,
} from './bench';
export { updateFlops, gmtMaskOps, type UpdateFlops } from './flops';
export { CONTEXT_INITS, MAX_CONTEXT, extendPositionTable, loadCheckpointWithContext, type ContextInit, type ContextOptions } from './context';
