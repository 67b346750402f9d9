/** Backend selection and the `doctor` report. */
export {
  BACKEND_ORDER,
  BackendName,
  BackendProbe,
  BackendReport,
  InitBackendOptions,
  initBackend,
  currentBackend,
  probeBackend,
  parseBackendName,
  backendFromEnv,
  WEBGPU_OPT_IN_REASON,
} from './select';
export { probeWebgpu, releaseWebgpu, describeAdapter, WebgpuAdapter, WebgpuProbe } from './webgpu';
export { doctor, formatDoctor, DoctorReport, DoctorBackendRow } from './doctor';
export { enableWasmThreads, WasmThreadsOptions, WasmThreadsResult } from './wasm-threads';
export { engineChoice, setEngine, engineLabel, ENGINE_NAMES, EngineName, EngineChoice } from './engine';
