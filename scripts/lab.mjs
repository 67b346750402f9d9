#!/usr/bin/env node
// `npm run lab`: Jupyter Notebook on 127.0.0.1 with a token, the project's TypeScript kernel
// registered, opened on notebooks/. `npm run setup` has already run (prelab) and installed
// Debian's jupyter-notebook if it was missing and it could (root). Options are typed as for
// Jupyter: `npm run lab -- --no-browser --port 9999` (or `--port=9999`); other Jupyter options
// go to Jupyter once. An option the lab cannot use is one line and exit status 2 (`--help` lists
// what it takes). Ctrl-C stops Jupyter and its kernels.

import { aptInstallCommand } from './lib/env.mjs';
import { LabUsageError, findJupyterServer, labUsage, parseLabArgs, startLab } from './lib/lab.mjs';

let options;
try {
  options = parseLabArgs(process.argv.slice(2));
} catch (e) {
  if (!(e instanceof LabUsageError)) throw e;
  console.error(`lab: ${e.message} (npm run lab -- --help lists the options)`);
  process.exit(2);
}
if (options.help) {
  console.log(labUsage);
  process.exit(0);
}
if (!findJupyterServer()) {
  console.error(`lab: Jupyter Notebook is not installed. Install it as root with:\n  ${aptInstallCommand(['jupyter-notebook'])}`);
  process.exit(1);
}
let lab;
try {
  lab = await startLab({ port: options.port, args: options.args });
} catch (e) {
  // Jupyter refused an option or could not start: its telling line, never a stack trace.
  if (e?.jupyter) {
    console.error(e.jupyter.usage ? `lab: Jupyter refused the options: ${e.jupyter.line}` : `lab: Jupyter exited with status ${e.status} before serving: ${e.jupyter.line}`);
    process.exit(e.jupyter.usage ? 2 : 1);
  }
  console.error(`lab: ${e instanceof Error ? e.message.replace(/^lab: /, '') : String(e)}`);
  process.exit(1);
}
console.log(`lab: Jupyter Notebook serving notebooks/ with the "TypeScript (gmt-lab)" kernel`);
console.log(`lab: open ${lab.url}tree?token=${lab.token}`);
console.log('lab: Ctrl-C stops it and its kernels');
let stopping = false;
const shutdown = async (sig) => {
  if (stopping) return;
  stopping = true;
  console.log(`\nlab: ${sig}: shutting down Jupyter and its kernels`);
  const { kernels, killed } = await lab.stop();
  console.log(`lab: stopped (${kernels.length} kernel${kernels.length === 1 ? '' : 's'} shut down${killed.length ? `, ${killed.length} killed` : ''})`);
  process.exit(0);
};
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
lab.process.on('exit', (status) => {
  if (!stopping) {
    console.error(`lab: Jupyter exited (${status})\n${lab.output().slice(-2000)}`);
    process.exit(status ?? 1);
  }
});
