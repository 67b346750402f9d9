// The commands take their options the way people type them: `--opt N` and `--opt=N`, and a
// mistake is one line naming the option with exit status 2, never a stack trace. Real processes:
// `npm run lab` with a real Jupyter and the real TypeScript kernel, `npm run reproduce` and
// `npm run bench` (gmt-lab bench).

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../lib/env.mjs';
import { findJupyterServer, freePort, parseLabArgs } from '../lib/lab.mjs';

const noJupyter = findJupyterServer() ? false : 'jupyter-notebook is not installed (npm run setup installs it as root)';
const labScript = path.join(repoRoot, 'scripts', 'lab.mjs');
const cliMain = path.join(repoRoot, 'kernel-lib', 'dist', 'cli', 'main.js');

/** Runs a command to its end; stdout, stderr and the exit status. */
function runToEnd(cmd, args, timeout = 90000) {
  const r = spawnSync(cmd, args, { cwd: repoRoot, encoding: 'utf8', timeout, env: { ...process.env, CI: 'true' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, out: `${r.stdout}${r.stderr}` };
}

/** Asserts the one-line refusal: exit 2, stderr exactly one line, starting with `prefix`, no stack trace. */
function assertRefused(r, prefix, pattern, what) {
  assert.equal(r.status, 2, `${what}: exit status 2\n${r.out}`);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 1, `${what}: one line on stderr\n${r.out}`);
  assert.ok(lines[0].startsWith(prefix), `${what}: the line starts with ${prefix}: ${lines[0]}`);
  assert.match(lines[0], pattern, what);
  assert.doesNotMatch(r.out, /^\s+at .*:\d+:\d+\)?$/m, `${what}: no stack trace\n${r.out}`);
}

/** A started `npm run lab -- ...` (own process group, as a terminal runs it) once it printed its URL. */
async function startNpmLab(args) {
  const child = spawn('npm', ['run', 'lab', '--', ...args], { cwd: repoRoot, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: 'true' } });
  let out = '';
  child.stdout.on('data', (d) => { out += d.toString(); });
  child.stderr.on('data', (d) => { out += d.toString(); });
  const urlPattern = /open (http:\/\/127\.0\.0\.1:(\d+)\/)tree\?token=([0-9a-f]{48})/;
  const t0 = Date.now();
  while (!urlPattern.test(out) && child.exitCode === null && Date.now() - t0 < 90000) await new Promise((r) => setTimeout(r, 100));
  const m = urlPattern.exec(out);
  const stop = async () => {
    if (child.exitCode === null) {
      process.kill(-child.pid, 'SIGINT'); // Ctrl-C in the terminal
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
    }
    return out;
  };
  if (!m) {
    await stop();
    assert.fail(`no URL printed:\n${out}`);
  }
  return { child, url: m[1], port: Number(m[2]), token: m[3], stop, output: () => out };
}

/** The command line of the Jupyter server listening on `port` (its process is a child of the lab). */
function jupyterCommandLine(port) {
  const lines = spawnSync('ps', ['-eo', 'args='], { encoding: 'utf8' }).stdout.split('\n');
  return lines.find((l) => /jupyter-notebook|jupyter-lab/.test(l) && l.includes(`--port=${port}`)) ?? '';
}

/** Executes `code` in a running kernel over Jupyter's websocket; resolves to the reply's status and the cell's output streams. */
function executeInKernel(url, token, kernelId, code) {
  // Node 20 has WebSocket behind a flag only (Node 22 has it always).
  const script = `
    const [url, token, id, code] = process.argv.slice(1);
    const ws = new WebSocket(url.replace(/^http/, 'ws') + 'api/kernels/' + id + '/channels?token=' + token);
    const msgId = 'test-' + Date.now();
    const timer = setTimeout(() => { console.error('no reply within 60 s'); process.exit(1); }, 60000);
    const streams = { stdout: '', stderr: '' };
    ws.onopen = () => ws.send(JSON.stringify({
      header: { msg_id: msgId, username: 'test', session: 'test-session', msg_type: 'execute_request', version: '5.3', date: new Date().toISOString() },
      parent_header: {}, metadata: {}, channel: 'shell',
      content: { code, silent: false, store_history: false, user_expressions: {}, allow_stdin: false, stop_on_error: true },
    }));
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      if (msg.parent_header?.msg_id !== msgId) return;
      // tslab prints the value of a cell's last expression on its stdout stream.
      if (msg.msg_type === 'stream') streams[msg.content.name] += msg.content.text;
      if (msg.msg_type === 'execute_reply') {
        clearTimeout(timer);
        process.stdout.write(JSON.stringify({ status: msg.content.status, ...streams }));
        ws.close();
        process.exit(0);
      }
    };
    ws.onerror = (e) => { console.error('websocket error', e.message ?? e); process.exit(1); };`;
  const flags = typeof globalThis.WebSocket === 'undefined' ? ['--experimental-websocket', '--no-warnings'] : [];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...flags, '--input-type=module', '-e', script, url, token, kernelId, code], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('exit', (status) => (status === 0 ? resolve(JSON.parse(stdout)) : reject(new Error(`kernel execution failed (${status}): ${stderr}`))));
  });
}

test('parseLabArgs: --port N and --port=N, --no-browser taken once, Jupyter options passed through once in order, mistakes named', () => {
  assert.deepEqual(parseLabArgs(['--no-browser', '--port', '25821']), { help: false, port: 25821, args: [] });
  assert.deepEqual(parseLabArgs(['--port=25821', '--no-browser', '--no-browser']), { help: false, port: 25821, args: [] });
  assert.deepEqual(parseLabArgs(['--NotebookApp.port', '8000']).port, 8000);
  assert.deepEqual(parseLabArgs(['--log-level', 'DEBUG', '--NotebookApp.iopub_data_rate_limit=1e10', '--debug']).args, ['--log-level=DEBUG', '--NotebookApp.iopub_data_rate_limit=1e10', '--debug']);
  assert.equal(parseLabArgs(['--help']).help, true);
  for (const [argv, pattern] of [
    [['--port', 'abc'], /--port must be a whole number from 1 to 65535, got "abc"/],
    [['--port=0'], /--port must be a whole number from 1 to 65535/],
    [['--port', '70000'], /--port must be/],
    [['--port'], /--port needs a value/],
    [['--port', '--no-browser'], /--port needs a value/],
    [['--port', '1', '--port=2'], /--port given more than once/],
    [['--ip', '0.0.0.0'], /--ip cannot be used with the lab: the lab listens on 127\.0\.0\.1 only/],
    [['--NotebookApp.token=abc'], /--NotebookApp\.token cannot be used with the lab/],
    [['--notebook-dir=/tmp'], /--notebook-dir cannot be used/],
    [['--port-retries', '5'], /--port-retries cannot be used/],
    [['--log-level', 'INFO', '--log-level=DEBUG'], /--log-level given more than once/],
    [['--no-browser=1'], /--no-browser is a switch/],
    [['notebook.ipynb'], /unexpected argument "notebook\.ipynb"/],
  ]) {
    assert.throws(() => parseLabArgs(argv), (e) => pattern.test(e.message), argv.join(' '));
  }
});

test('`npm run lab -- --no-browser --port P` prints its URL on port P and serves the TypeScript kernel; options reach Jupyter once', { skip: noJupyter, timeout: 240000 }, async () => {
  const port = await freePort();
  const lab = await startNpmLab(['--no-browser', '--port', String(port), '--log-level', 'INFO', '--NotebookApp.iopub_data_rate_limit=1e10']);
  try {
    assert.equal(lab.port, port, lab.output());
    const cmd = jupyterCommandLine(port);
    assert.ok(cmd, `Jupyter runs with --port=${port}`);
    const count = (flag) => cmd.split(/\s+/).filter((a) => a === flag || a.startsWith(`${flag}=`)).length;
    for (const flag of ['--port', '--no-browser', '--ip', '--log-level', '--NotebookApp.iopub_data_rate_limit']) assert.equal(count(flag), 1, `${flag} once in: ${cmd}`);
    assert.match(cmd, /--log-level=INFO/);
    const specs = await (await fetch(`${lab.url}api/kernelspecs?token=${lab.token}`)).json();
    assert.equal(specs.kernelspecs.tslab?.spec?.display_name, 'TypeScript (gmt-lab)');
    const kernel = await (await fetch(`${lab.url}api/kernels?token=${lab.token}`, { method: 'POST', body: '{"name":"tslab"}' })).json();
    // TypeScript, typed: the kernel compiles this, runs it, and shows the value.
    const reply = await executeInKernel(lab.url, lab.token, kernel.id, 'const answer: number = 6 * 7;\nanswer');
    assert.deepEqual(reply, { status: 'ok', stdout: '42\n', stderr: '' });
    const typeError = await executeInKernel(lab.url, lab.token, kernel.id, 'const s: string = 1;');
    assert.equal(typeError.status, 'error', 'a type error fails: the kernel checks TypeScript');
    assert.match(typeError.stderr, /Type 'number' is not assignable to type 'string'/);
  } finally {
    const out = await lab.stop();
    // npm itself ends by the SIGINT it forwarded; the lab under it stopped cleanly.
    assert.ok(lab.child.exitCode === 0 || lab.child.signalCode === 'SIGINT', out);
    assert.match(out, /lab: stopped \(1 kernel shut down\)/);
    assert.equal(jupyterCommandLine(port), '', 'Jupyter is gone');
  }
  // The equals form, run directly.
  const port2 = await freePort();
  const child = spawn(process.execPath, [labScript, `--port=${port2}`, '--no-browser'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const t0 = Date.now();
  while (!out.includes(`http://127.0.0.1:${port2}/tree?token=`) && child.exitCode === null && Date.now() - t0 < 60000) await new Promise((r) => setTimeout(r, 100));
  assert.ok(out.includes(`http://127.0.0.1:${port2}/tree?token=`), out);
  child.kill('SIGINT');
  await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
  assert.equal(child.exitCode, 0, out);
});

test('`npm run lab` refuses an option it cannot use in one line with exit status 2: its own checks and Jupyter\'s', { skip: noJupyter, timeout: 240000 }, async () => {
  const viaNpm = runToEnd('npm', ['run', 'lab', '--', '--no-browser', '--port', 'abc']);
  assertRefused(viaNpm, 'lab: ', /--port must be a whole number from 1 to 65535, got "abc"/, 'npm run lab -- --port abc');
  for (const [args, pattern] of [
    [['--port'], /--port needs a value/],
    [['--port', '1', '--port', '2'], /--port given more than once/],
    [['--ip', '0.0.0.0'], /--ip cannot be used/],
    [['stray'], /unexpected argument "stray"/],
    // Jupyter's own refusals: an unknown flag, a bad value of a real option.
    [['--no-such-flag'], /Jupyter refused the options: unrecognized arguments: --no-such-flag/],
    [['--log-level', 'LOUD'], /Jupyter refused the options: .*log_level.*LOUD/],
  ]) {
    assertRefused(runToEnd(process.execPath, [labScript, ...args]), 'lab: ', pattern, args.join(' '));
  }
  // A port in use.
  const busy = net.createServer();
  await new Promise((r) => busy.listen(0, '127.0.0.1', r));
  const { port } = busy.address();
  try {
    const r = await new Promise((resolve) => {
      const child = spawn(process.execPath, [labScript, '--port', String(port)], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => { stdout += d; });
      child.stderr.on('data', (d) => { stderr += d; });
      child.on('close', (status) => resolve({ status, stdout, stderr, out: stdout + stderr }));
    });
    assertRefused(r, 'lab: ', new RegExp(`port ${port} is in use`), 'a busy port');
  } finally {
    busy.close();
  }
});

test('`npm run reproduce` takes --opt N and --opt=N and refuses mistakes in one line with exit status 2', () => {
  // --help parses everything before it and does nothing else.
  for (const args of [['--mode', 'fast', '--check', '0', '--help'], ['--mode=fast', '--check=0', '--jobs=1', '--help']]) {
    const r = runToEnd(process.execPath, [path.join(repoRoot, 'scripts', 'reproduce.mjs'), ...args]);
    assert.equal(r.status, 0, `${args.join(' ')}\n${r.out}`);
    assert.match(r.stdout, /usage: npm run reproduce/);
  }
  const viaNpm = runToEnd('npm', ['run', 'reproduce', '--', '--mode', 'fastest']);
  assertRefused(viaNpm, 'reproduce: ', /--mode must be one of fast, full; got "fastest"/, 'npm run reproduce -- --mode fastest');
  for (const [args, pattern] of [
    [['--mode=fastest'], /--mode must be one of fast, full; got "fastest"/],
    [['--mode'], /--mode needs a value/],
    [['--check', 'x'], /--check must be a whole number ≥ 0, got "x"/],
    [['--check=-1'], /--check must be a whole number ≥ 0, got "-1"/],
    [['--jobs=0'], /--jobs must be a whole number ≥ 1, got "0"/],
    [['--jobs', '1', '--jobs', '2'], /--jobs given more than once/],
    [['--fresh', '--store-only'], /--fresh and --store-only exclude each other/],
    [['--fresh=yes'], /--fresh is a switch and takes no value/],
    [['--colour'], /unknown option --colour \(known: --mode, --fresh, --store-only, --check, --jobs, --for, --help\)/],
    [['--for', 'soon'], /--for must be a duration such as 90m, 1h30m, 45s or a number of seconds, got "soon"/],
    [['--for=1h', '--store-only'], /--for and --store-only exclude each other/],
    [['now'], /unexpected argument "now"/],
  ]) {
    assertRefused(runToEnd(process.execPath, [path.join(repoRoot, 'scripts', 'reproduce.mjs'), ...args]), 'reproduce: ', pattern, args.join(' '));
  }
});

test('`npm run bench` (gmt-lab bench) takes --opt N and --opt=N and refuses mistakes in one line with exit status 2', () => {
  // A tiny bench in both forms: it runs and reports.
  for (const args of [['--vocab', '16', '--d-model', '16', '--layers', '1', '--heads', '1', '--context', '8', '--batch', '2', '--steps', '10', '--warmup', '0', '--methods', 'gmt:tensor'],
    ['--vocab=16', '--d-model=16', '--layers=1', '--heads=1', '--context=8', '--batch=2', '--steps=10', '--warmup=0', '--methods=gmt:tensor']]) {
    const out = path.join(repoRoot, 'build', 'test-output', 'bench-args');
    const r = runToEnd(process.execPath, [cliMain, 'bench', ...args, '--no-figure', `--out=${out}`], 180000);
    assert.equal(r.status, 0, `${args.join(' ')}\n${r.out}`);
    assert.match(r.stderr, /batch 2 × 8 tokens, median of 10 interleaved updates/);
  }
  const viaNpm = runToEnd('npm', ['run', 'bench', '--', '--steps', 'many']);
  assertRefused(viaNpm, 'gmt-lab bench: ', /--steps expects a number, got "many"/, 'npm run bench -- --steps many');
  for (const [args, pattern] of [
    [['--steps=5'], /--steps must be >= 10, got 5/],
    [['--steps'], /--steps needs a value/],
    [['--path', 'turbo'], /--path must be one of fused, fast, plain; got "turbo"/],
    [['--seed', '1', '--seed=2'], /--seed given more than once/],
    [['--json=yes'], /--json is a switch and takes no value/],
    [['--colour'], /unknown option --colour/],
    [['now'], /unexpected argument "now"/],
  ]) {
    assertRefused(runToEnd(process.execPath, [cliMain, 'bench', ...args]), 'gmt-lab bench: ', pattern, args.join(' '));
  }
});
