// The lab server: Jupyter Notebook on 127.0.0.1 with a random token, the project's tslab
// kernel registered (JUPYTER_PATH, see env.mjs), opened on notebooks/. Used by `npm run lab`
// and by the browser test, so what the test drives is what users start.

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { jupyterEnv, notebooksDir, which } from './env.mjs';

/** The Jupyter Notebook (classic) binary, else JupyterLab's; null when neither is installed. */
export function findJupyterServer() {
  for (const name of ['jupyter-notebook', 'jupyter-lab']) {
    const found = which(name);
    if (found) return found;
  }
  return null;
}

/** A free TCP port on the loopback interface. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Process ids of the kernels started by this server (their command line names its runtime dir). */
function kernelPids(runtimeDir) {
  const out = spawnSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' }).stdout;
  return out.split('\n').filter((l) => l.includes(runtimeDir) && l.includes('kernel-')).map((l) => Number(l.trim().split(/\s+/)[0])).filter((n) => n > 0);
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts the lab and resolves once it answers. `stop()` shuts Jupyter down with SIGTERM (it
 * shuts its kernels down first), then makes sure no kernel of it is left.
 * @param {{ port?: number, token?: string, env?: Record<string,string>, args?: string[], log?: (s: string) => void, runtimeDir?: string }} opts
 */
export async function startLab(opts = {}) {
  const bin = findJupyterServer();
  if (!bin) throw new Error('lab: Jupyter Notebook is not installed (npm run setup installs Debian\'s jupyter-notebook when run as root)');
  const port = opts.port ?? (await freePort());
  const token = opts.token ?? randomBytes(24).toString('hex');
  const runtimeDir = opts.runtimeDir ?? (await import('node:fs')).mkdtempSync((await import('node:path')).join((await import('node:os')).tmpdir(), 'gmt-lab-runtime-'));
  const args = [
    '--ip=127.0.0.1', `--port=${port}`, '--port-retries=0', '--no-browser',
    `--notebook-dir=${notebooksDir}`, `--NotebookApp.token=${token}`, '--NotebookApp.allow_remote_access=False',
    // Containers and CI run as root; Jupyter refuses that without this flag.
    ...(typeof process.getuid === 'function' && process.getuid() === 0 ? ['--allow-root'] : []),
    ...(opts.args ?? []),
  ];
  // Its own process group: a terminal's Ctrl-C reaches only this script, which then stops
  // Jupyter without its "Shutdown this notebook server (y/[n])?" prompt.
  const child = spawn(bin, args, {
    cwd: notebooksDir,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: jupyterEnv(process.env, { JUPYTER_RUNTIME_DIR: runtimeDir, ...(opts.env ?? {}) }),
  });
  let output = '';
  const onData = (d) => {
    output = (output + d.toString()).slice(-20000);
    opts.log?.(d.toString());
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const url = `http://127.0.0.1:${port}/`;
  const t0 = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`lab: ${bin} exited with ${child.exitCode}:\n${output.slice(-2000)}`);
    try {
      const r = await fetch(`${url}api/status?token=${token}`);
      if (r.ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() - t0 > 60000) {
      child.kill('SIGKILL');
      throw new Error(`lab: ${bin} did not answer within 60 s:\n${output.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  let stopped;
  const stop = () => (stopped ??= (async () => {
    const kernels = kernelPids(runtimeDir);
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      const exited = new Promise((r) => child.once('exit', r));
      const timer = new Promise((r) => setTimeout(r, 15000, 'timeout'));
      if ((await Promise.race([exited, timer])) === 'timeout') {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    // Jupyter shuts its kernels down on SIGTERM; anything still there is killed.
    const left = [...new Set([...kernels, ...kernelPids(runtimeDir)])].filter(alive);
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    return { kernels, killed: left };
  })());
  return { url, token, port, runtimeDir, process: child, stop, output: () => output, kernelPids: () => kernelPids(runtimeDir) };
}
