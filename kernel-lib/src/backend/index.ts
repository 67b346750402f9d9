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
} from './select';
export { doctor, formatDoctor, DoctorReport, DoctorBackendRow } from './doctor';
export { enableWasmThreads, WasmThreadsOptions, WasmThreadsResult } from './wasm-threads';
