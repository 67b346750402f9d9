import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { UsageError, flagName, formatUsage, parseArgs } from '../src/cli/args';
import { defineCommand, CommandIo } from '../src/cli/command';
import { main } from '../src/cli/main';
import { COMMANDS } from '../src/cli/commands';
import { sweepProgressLine } from '../src/cli/commands/sweep';

const ROOT = path.resolve(__dirname, '..', '..');
const MAIN = path.join(ROOT, 'kernel-lib', 'src', 'cli', 'main.ts');

function captureIo(): CommandIo & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    stdout: (t: string) => {
      io.out += t;
    },
    stderr: (t: string) => {
      io.err += t;
    },
  };
  return io;
}

/** Runs the real entry point in a child process (through tsx, so no build is needed). */
function runCli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, GMT_BACKEND: '', ...env },
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const SPEC = {
  maskRatio: { type: 'number', summary: 'fraction zeroed', min: 0, max: 1, maxExclusive: true, default: 0.3 },
  steps: { type: 'number', summary: 'updates', integer: true, min: 1 },
  scope: { type: 'string', summary: 'quantile scope', choices: ['tensor', 'layer', 'global'] as const, default: 'tensor' },
  ratios: { type: 'number[]', summary: 'sweep', min: 0, max: 1 },
  methods: { type: 'string[]', summary: 'methods', choices: ['sft', 'gmt'] },
  json: { type: 'boolean', summary: 'json', short: 'j' },
} as const;

test('parseArgs fills defaults and converts values', () => {
  const { options, positionals, help } = parseArgs(['--steps', '20', '--mask-ratio=0.5', '-j', '--ratios', '0.1,0.3', 'extra'], SPEC, [
    { name: 'what', summary: 'x' },
  ]);
  assert.equal(help, false);
  assert.deepEqual(positionals, ['extra']);
  assert.equal(options.maskRatio, 0.5);
  assert.equal(options.steps, 20);
  assert.equal(options.scope, 'tensor');
  assert.deepEqual(options.ratios, [0.1, 0.3]);
  assert.equal(options.methods, undefined);
  assert.equal(options.json, true);
  assert.equal(parseArgs(['--no-json'], SPEC).options.json, false);
  assert.equal(parseArgs([], SPEC).options.json, false);
  assert.equal(flagName('maskRatio'), 'mask-ratio');
});

test('parseArgs rejects mistakes with a message naming the option', () => {
  const cases: [string[], RegExp][] = [
    [['--mask-ratoi', '0.2'], /unknown option --mask-ratoi/],
    [['-x'], /unknown option -x/],
    [['--mask-ratio', '1'], /--mask-ratio must be in \[0, 1\), got 1/],
    [['--mask-ratio', 'abc'], /--mask-ratio expects a number, got "abc"/],
    [['--mask-ratio', '0x10'], /--mask-ratio expects a number/],
    [['--mask-ratio', ''], /--mask-ratio expects a number/],
    [['--mask-ratio'], /--mask-ratio needs a value/],
    [['--steps', '2.5'], /--steps must be an integer/],
    [['--steps', '0'], /--steps must be >= 1/],
    [['--scope', 'row'], /--scope must be one of tensor, layer, global; got "row"/],
    [['--ratios', '0.1,,0.2'], /--ratios expects a comma-separated list/],
    [['--ratios', '0.1,2'], /--ratios must be in \[0, 1\], got 2/],
    [['--methods', 'sft,lora'], /--methods must be one of sft, gmt; got "lora"/],
    [['--json=yes'], /--json is a switch/],
    [['--steps', '3', '--steps', '4'], /--steps given more than once/],
    [['stray'], /unexpected argument "stray"/],
  ];
  for (const [argv, pattern] of cases) {
    assert.throws(() => parseArgs(argv, SPEC), (e: Error) => e instanceof UsageError && pattern.test(e.message), argv.join(' '));
  }
  assert.throws(() => parseArgs([], SPEC, [{ name: 'run-dir', summary: 'x' }]), /missing argument <run-dir>/);
});

test('--help short-circuits validation and usage lists every option with its range', () => {
  assert.equal(parseArgs(['--bogus', '--help'], SPEC).help, true);
  const usage = formatUsage('train', 'Train one run', SPEC);
  assert.match(usage, /^Usage: gmt-lab train \[options\]/);
  assert.match(usage, /--mask-ratio <number>\s+fraction zeroed; >= 0, < 1 \(default 0\.3\)/);
  assert.match(usage, /--scope <tensor\|layer\|global>/);
  assert.match(usage, /-j, --json/);
});

test('a defined command exits 2 on usage errors, 1 on failures, and prints --help', async () => {
  const cmd = defineCommand({
    name: 'probe',
    summary: 'test command',
    options: { n: { type: 'number', summary: 'n', integer: true, min: 0 } },
    async run({ options }, io) {
      if (options.n === 13) throw new Error('unlucky');
      io.stdout(`n=${options.n}\n`);
      return 0;
    },
  });
  let io = captureIo();
  assert.equal(await cmd.run(['--n', '3'], io), 0);
  assert.equal(io.out, 'n=3\n');
  io = captureIo();
  assert.equal(await cmd.run(['--m', '3'], io), 2);
  assert.match(io.err, /gmt-lab probe: unknown option --m/);
  io = captureIo();
  assert.equal(await cmd.run(['--n', '-1'], io), 2);
  assert.match(io.err, /--n must be >= 0/);
  io = captureIo();
  assert.equal(await cmd.run(['--n', '13'], io), 1);
  assert.match(io.err, /error: unlucky/);
  io = captureIo();
  assert.equal(await cmd.run(['--help'], io), 0);
  assert.match(io.out, /Usage: gmt-lab probe/);
});

test('main dispatches through the command table', async () => {
  let io = captureIo();
  assert.equal(await main(['help'], io), 0);
  for (const c of COMMANDS) assert.match(io.out, new RegExp(`^  ${c.name}\\s`, 'm'));
  io = captureIo();
  assert.equal(await main(['help', 'doctor'], io), 0);
  assert.match(io.out, /--json/);
  io = captureIo();
  assert.equal(await main(['frobnicate'], io), 2);
  assert.match(io.err, /unknown command "frobnicate"/);
  io = captureIo();
  assert.equal(await main([], io), 2);
  io = captureIo();
  assert.equal(await main(['doctor', '--jsn'], io), 2);
  assert.match(io.err, /unknown option --jsn/);
});

test('gmt-lab doctor --json prints only valid JSON on stdout', () => {
  const r = runCli(['doctor', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.ok(['wasm', 'cpu', 'tfjs-node', 'tfjs-node-gpu', 'webgpu'].includes(report.backend));
  for (const row of report.backends) if (row.status !== 'in use') assert.ok(row.reason, `${row.name} has a reason`);
});

test('gmt-lab exits 2 naming an unknown option or a bad GMT_BACKEND', () => {
  const bad = runCli(['doctor', '--verbose']);
  assert.equal(bad.code, 2);
  assert.equal(bad.stdout, '');
  assert.match(bad.stderr, /unknown option --verbose/);
  const env = runCli(['doctor', '--json'], { GMT_BACKEND: 'quantum' });
  assert.equal(env.code, 2);
  assert.equal(env.stdout, '');
  assert.match(env.stderr, /GMT_BACKEND: unknown backend "quantum"/);
});

test('gmt-lab sweep: --example prints a valid grid, bad grid files exit 2 naming the file, --status summarises', async () => {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const sweep = COMMANDS.find((c) => c.name === 'sweep')!;
  const ex = captureIo();
  assert.equal(await sweep.run(['--example'], ex), 0);
  const grid = JSON.parse(ex.out);
  assert.equal(grid.name, 'example');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gmt-cli-sweep-'));
  const bad = path.join(dir, 'bad.json');
  fs.writeFileSync(bad, '{ "name": "x", ');
  const e1 = captureIo();
  assert.equal(await sweep.run([bad, '--store', path.join(dir, 's.jsonl')], e1), 2);
  assert.match(e1.err, /bad\.json is not valid JSON/);
  fs.writeFileSync(bad, JSON.stringify({ name: 'x', methods: ['sft'], seedz: [1] }));
  const e2 = captureIo();
  assert.equal(await sweep.run([bad, '--store', path.join(dir, 's.jsonl')], e2), 2);
  assert.match(e2.err, /unknown option "seedz"/);
  const e3 = captureIo();
  assert.equal(await sweep.run([path.join(dir, 'none.json'), '--store', path.join(dir, 's.jsonl')], e3), 2);
  assert.match(e3.err, /cannot read grid file .*none\.json: ENOENT/);
  const e4 = captureIo();
  assert.equal(await sweep.run([bad], e4), 2);
  assert.match(e4.err, /--store FILE is required/);
  const st = captureIo();
  assert.equal(await sweep.run(['--status', '--store', path.join(dir, 's.jsonl')], st), 0);
  assert.match(st.out, /0 records, 0 runs/);
});

test('the sweep progress line counts as finished only what the store keeps for good', () => {
  const line = sweepProgressLine({ grid: 'g', total: 10, skipped: 3, done: 2, failed: 1, diverged: 1, cancelled: 2, running: [], elapsedMs: 65000, etaMs: NaN });
  assert.match(line, /^sweep g: 6\/10 finished \(3 from the store\), 1 failed, 1 diverged, 2 cancelled · 1m05s elapsed/);
});
