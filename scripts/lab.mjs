#!/usr/bin/env node
// `npm run lab`: open the notebooks in Jupyter with this checkout's tslab kernel.
// `npm run setup` has already run (prelab). Extra arguments go to Jupyter
// (e.g. `npm run lab -- --port 9999 --no-browser`).

import { spawn } from 'node:child_process';
import { aptInstallCommand, jupyterEnv, notebooksDir, which } from './lib/env.mjs';

// Classic Notebook first: it is what Debian packages (jupyter-notebook) and what the
// notebooks are tested against; JupyterLab works as well when that is what is installed.
const candidates = ['jupyter-notebook', 'jupyter-lab'];
const found = candidates.map((name) => which(name)).find(Boolean);
const command = found ? [found, []] : null;
if (!command) {
  console.error(`lab: neither jupyter-notebook nor jupyter lab is installed. Install Jupyter Notebook with:\n  ${aptInstallCommand(['jupyter-notebook'])}`);
  process.exit(1);
}

const [bin, args] = command;
console.log(`lab: ${bin} in ${notebooksDir} (kernel "TypeScript (gmt-lab)")`);
const child = spawn(bin, [...args, ...process.argv.slice(2)], {
  cwd: notebooksDir,
  stdio: 'inherit',
  env: jupyterEnv(),
});
// Ctrl-C reaches Jupyter directly (same process group); it asks before shutting down, so this
// process only stays alive until Jupyter exits. SIGTERM is passed on.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (status, signal) => process.exit(status ?? (signal ? 130 : 1)));
