#!/usr/bin/env node
// `npm run lab`: Jupyter Notebook on 127.0.0.1 with a token, the project's TypeScript kernel
// registered, opened on notebooks/. `npm run setup` has already run (prelab) and installed
// Debian's jupyter-notebook if it was missing and it could (root). Extra arguments go to Jupyter
// (e.g. `npm run lab -- --port 9999`). Ctrl-C stops Jupyter and its kernels.

import { aptInstallCommand } from './lib/env.mjs';
import { findJupyterServer, startLab } from './lib/lab.mjs';

if (!findJupyterServer()) {
  console.error(`lab: Jupyter Notebook is not installed. Install it as root with:\n  ${aptInstallCommand(['jupyter-notebook'])}`);
  process.exit(1);
}
const portArg = process.argv.slice(2).find((a) => a.startsWith('--port='));
const rest = process.argv.slice(2).filter((a) => a !== portArg);
const lab = await startLab({ port: portArg ? Number(portArg.slice('--port='.length)) : undefined, args: rest });
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
