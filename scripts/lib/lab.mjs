// The lab server: Jupyter Notebook on 127.0.0.1 with a random token, the project's tslab
// kernel registered (JUPYTER_PATH, see env.mjs), opened on notebooks/. Used by `npm run lab`
// and by the browser test, so what the test drives is what users start.

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { jupyterEnv, notebooksDir, which } from './env.mjs';

/** A command-line mistake of `npm run lab`: one line, exit status 2. */
export class LabUsageError extends Error {}

// Jupyter Notebook 6's options that take a value (its `--help`), so that `--log-level DEBUG` keeps
// its value and a stray word is told apart from one. `--Class.trait value` always takes one.
const JUPYTER_VALUE_OPTIONS = new Set(['log-level', 'config', 'ip', 'port', 'port-retries', 'sock', 'sock-mode', 'transport',
  'keyfile', 'certfile', 'client-ca', 'notebook-dir', 'browser', 'gateway-url']);

// What the lab sets itself, so a user's value would break a promise it makes or the way it finds
// the server; each refused with the reason.
const LAB_OWNED = [
  { names: ['ip', 'NotebookApp.ip', 'ServerApp.ip'], why: 'the lab listens on 127.0.0.1 only (see the README for reaching it from elsewhere)' },
  { names: ['port-retries', 'NotebookApp.port_retries', 'ServerApp.port_retries'], why: 'the lab serves on exactly the port it prints' },
  { names: ['notebook-dir', 'NotebookApp.notebook_dir', 'ServerApp.root_dir', 'ServerApp.notebook_dir'], why: 'the lab serves notebooks/ (tslab compiles only files under its folder)' },
  { names: ['NotebookApp.token', 'ServerApp.token', 'IdentityProvider.token'], why: 'the lab makes a random token and prints it' },
  { names: ['NotebookApp.password', 'ServerApp.password'], why: 'the lab opens with the token it prints' },
  { names: ['NotebookApp.allow_remote_access', 'ServerApp.allow_remote_access'], why: 'the lab refuses remote access' },
  { names: ['sock', 'sock-mode', 'NotebookApp.sock', 'ServerApp.sock'], why: 'the lab serves TCP on 127.0.0.1' },
  { names: ['keyfile', 'certfile', 'client-ca', 'NotebookApp.keyfile', 'NotebookApp.certfile', 'NotebookApp.client_ca'], why: 'the lab serves plain HTTP on loopback; use an SSH tunnel to reach it from elsewhere' },
  { names: ['generate-config', 'show-config', 'show-config-json'], why: 'it does not start a server; run `jupyter notebook` with it yourself' },
];
const PORT_NAMES = new Set(['port', 'NotebookApp.port', 'ServerApp.port']);
// Switches the lab already passes: taken once however often they are given.
const LAB_SWITCHES = new Set(['no-browser', 'allow-root']);

export const labUsage = `usage: npm run lab -- [--port N] [Jupyter options...]
  --port N, --port=N   serve on port N (1-65535; default: a free port)
  --no-browser         accepted; the lab never opens a browser itself, it prints the URL
  -h, --help           this text
Other Jupyter Notebook options (--log-level DEBUG, --NotebookApp.iopub_data_rate_limit=1e10, ...)
go to Jupyter once, as given. The lab owns --ip (127.0.0.1), --notebook-dir (notebooks/), the
token, --port-retries (0) and serves plain HTTP; it refuses options that would change them.`;

/**
 * Splits `npm run lab` arguments into what the lab uses (`port`, `help`) and the Jupyter options
 * passed through once, in order. Throws {@link LabUsageError} naming the option for anything the
 * lab cannot use: a bad or repeated port, an option the lab owns, a word that is no option's value.
 * @param {string[]} argv
 * @returns {{ help: boolean, port: number | undefined, args: string[] }}
 */
export function parseLabArgs(argv) {
  let port;
  let help = false;
  const args = [];
  const taken = new Set();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help' || arg === '--help-all') {
      help = true;
      continue;
    }
    if (!arg.startsWith('--') || arg === '--') {
      throw new LabUsageError(`unexpected argument ${JSON.stringify(arg)}: the lab takes Jupyter options only (it serves notebooks/; open a notebook from the page)`);
    }
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    const takesValue = JUPYTER_VALUE_OPTIONS.has(name) || name.includes('.');
    let value = eq >= 0 ? arg.slice(eq + 1) : undefined;
    let valueToken = false;
    if (value === undefined && takesValue) {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new LabUsageError(`--${name} needs a value, as --${name} VALUE or --${name}=VALUE`);
      value = next;
      valueToken = true;
      i++;
    }
    const owned = LAB_OWNED.find((o) => o.names.includes(name));
    if (owned) throw new LabUsageError(`--${name} cannot be used with the lab: ${owned.why}`);
    if (PORT_NAMES.has(name)) {
      if (port !== undefined) throw new LabUsageError(`--port given more than once (${port} and ${value})`);
      if (value === undefined) throw new LabUsageError('--port needs a value, as --port N or --port=N');
      if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 65535) {
        throw new LabUsageError(`--port must be a whole number from 1 to 65535, got ${JSON.stringify(value)} (leave it out for a free port)`);
      }
      port = Number(value);
      continue;
    }
    if (LAB_SWITCHES.has(name)) {
      if (value !== undefined) throw new LabUsageError(`--${name} is a switch and takes no value (got ${JSON.stringify(value)})`);
      continue;
    }
    if (taken.has(name)) throw new LabUsageError(`--${name} given more than once`);
    taken.add(name);
    args.push(value === undefined ? arg : valueToken ? `--${name}=${value}` : arg);
  }
  return { help, port, args };
}

/**
 * Why Jupyter exited before it served: its most telling line (an argument error, a critical log
 * line, else the last line) and whether that was an option it rejected (`usage`).
 * @param {number | null} status
 * @param {string} output
 */
export function jupyterStartFailure(status, output) {
  const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
  const argparse = lines.find((l) => /^jupyter[-\w]*: error: /.test(l));
  if (argparse) return { usage: true, line: argparse.replace(/^jupyter[-\w]*: error: /, '') };
  const critical = lines.filter((l) => /^\[C /.test(l) && !/received signal/.test(l)).map((l) => l.replace(/^\[C [^\]]*\]\s*/, ''));
  const badConfig = critical.find((l) => /Bad config|Unrecognized (flag|alias)/i.test(l));
  if (badConfig) return { usage: true, line: badConfig };
  const busy = critical.map((l) => /port (\d+) is not available/.exec(l)).find(Boolean);
  if (busy) return { usage: true, line: `port ${busy[1]} is in use (choose another with --port, or leave --port out for a free one)` };
  const line = critical[critical.length - 1] ?? lines[lines.length - 1] ?? `exit status ${status}`;
  return { usage: status === 2, line };
}

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
    if (child.exitCode !== null) {
      // Let the last of its output arrive before reading it.
      const drained = (stream) => new Promise((r) => (stream.readableEnded ? r() : stream.once('end', r)));
      await Promise.race([Promise.all([drained(child.stdout), drained(child.stderr)]), new Promise((r) => setTimeout(r, 2000))]);
      const failure = jupyterStartFailure(child.exitCode, output);
      throw Object.assign(new Error(`lab: ${bin} exited with ${child.exitCode}: ${failure.line}\n${output.slice(-2000)}`), { jupyter: failure, status: child.exitCode });
    }
    try {
      // Bounded: whatever else holds the port may accept and never answer.
      const r = await fetch(`${url}api/status?token=${token}`, { signal: AbortSignal.timeout(2000) });
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
