// The Debian-package step of scripts/setup.mjs, with dpkg-query, apt-cache and apt-get replaced
// by recording stand-ins on PATH (the real ones would change this machine). Chromium is made
// "missing" by a stand-in dpkg-query and a CHROMIUM_PATH that does not exist.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { repoRoot } from '../lib/env.mjs';

const setup = path.join(repoRoot, 'scripts', 'setup.mjs');
const isRoot = process.getuid?.() === 0;
let dir;

before(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'gmt-setup-test-'));
  chmodSync(dir, 0o755); // readable by the unprivileged user of the last test
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Stand-in tools in a fresh bin folder. apt-get appends "DEBIAN_FRONTEND=<v> <args>" to log and
 * fails `install` while `failInstalls` > 0 (counted down in a file).
 */
function fakeTools({ candidate = '1.0-1', failInstalls = 0 } = {}) {
  const bin = mkdtempSync(path.join(dir, 'bin-'));
  chmodSync(bin, 0o755);
  const log = path.join(bin, 'apt.log');
  const failures = path.join(bin, 'failures');
  writeFileSync(failures, String(failInstalls));
  const script = (name, body) => {
    writeFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(path.join(bin, name), 0o755);
  };
  script('dpkg-query', `for last; do :; done
case "$last" in chromium) printf 'unknown ok not-installed'; exit 1;; *) printf 'install ok installed';; esac`);
  script('apt-cache', `shift; for p in "$@"; do echo "$p:"; echo "  Candidate: ${candidate}"; done`);
  script('apt-get', `echo "DEBIAN_FRONTEND=$DEBIAN_FRONTEND $*" >> ${log}
case "$*" in *" install "*)
  n=$(cat ${failures}); if [ "$n" -gt 0 ]; then echo $((n - 1)) > ${failures}; exit 100; fi;;
esac
exit 0`);
  return { bin, log };
}

function runSystemStep(bin, extra = {}) {
  return spawnSync(process.execPath, [setup, '--only', 'system'], {
    encoding: 'utf8',
    env: { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH}`, CHROMIUM_PATH: path.join(dir, 'no-chromium'), ...extra },
  });
}

function aptCalls(log) {
  return existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [];
}

const lock = '-o DPkg::Lock::Timeout=600';

describe('setup: Debian packages', { skip: !isRoot && 'the apt-get branch runs only as root' }, () => {
  test('installs only what is missing, non-interactively, without an update when the lists know it', () => {
    const { bin, log } = fakeTools();
    const r = runSystemStep(bin);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.deepEqual(aptCalls(log), [`DEBIAN_FRONTEND=noninteractive ${lock} install -y --no-install-recommends chromium`]);
    assert.match(r.stdout, /setup: installing system packages: chromium/);
  });

  test('runs apt-get update first when the package lists have no candidate', () => {
    const { bin, log } = fakeTools({ candidate: '(none)' });
    const r = runSystemStep(bin);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.deepEqual(aptCalls(log), [
      `DEBIAN_FRONTEND=noninteractive ${lock} update`,
      `DEBIAN_FRONTEND=noninteractive ${lock} install -y --no-install-recommends chromium`,
    ]);
  });

  test('refreshes stale lists once when install fails, then gives up with a clear error', () => {
    const retried = fakeTools({ failInstalls: 1 });
    const ok = runSystemStep(retried.bin);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    assert.deepEqual(aptCalls(retried.log).map((l) => l.split(' ').at(-1)), ['chromium', 'update', 'chromium']);

    const broken = fakeTools({ failInstalls: 5 });
    const failed = runSystemStep(broken.bin);
    assert.equal(failed.status, 1);
    assert.match(failed.stderr, /setup: FAILED: apt-get install chromium failed/);
    assert.equal(aptCalls(broken.log).length, 3, 'one install, one update, one retry');
  });

  test('as another user it names the apt-get command and exits non-zero without calling apt', () => {
    const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
    if (!setpriv) return; // util-linux is part of every Debian base image; nothing to check without it
    const { bin, log } = fakeTools();
    // The other user may not read this checkout (a clone in a 0700 folder, a 0750 home): it runs
    // a copy of what setup loads, in the test's own world-readable folder.
    const copy = path.join(dir, 'checkout');
    for (const file of ['scripts/setup.mjs', 'scripts/build-native.mjs', ...readdirSync(path.join(repoRoot, 'scripts', 'lib')).map((f) => `scripts/lib/${f}`)]) {
      mkdirSync(path.dirname(path.join(copy, file)), { recursive: true, mode: 0o755 });
      copyFileSync(path.join(repoRoot, file), path.join(copy, file));
      chmodSync(path.join(copy, file), 0o644);
    }
    for (const d of [copy, path.join(copy, 'scripts'), path.join(copy, 'scripts', 'lib')]) chmodSync(d, 0o755);
    const r = spawnSync(setpriv, ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, path.join(copy, 'scripts', 'setup.mjs'), '--only', 'system'], {
      encoding: 'utf8',
      cwd: dir,
      env: { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH}`, CHROMIUM_PATH: path.join(dir, 'no-chromium') },
    });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /missing system packages:\n {2}chromium: exports figures/);
    assert.match(r.stderr, /apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium/);
    assert.deepEqual(aptCalls(log), []);
  });
});

test('setup refuses npm ci where node_modules is a link (a checkout sharing another\'s packages): npm ci would empty the other folder', () => {
  // A copy of the checkout's scripts and package files whose node_modules links to a folder of
  // packages that are stale for it.
  const copy = mkdtempSync(path.join(dir, 'linked-'));
  cpSync(path.join(repoRoot, 'scripts'), path.join(copy, 'scripts'), { recursive: true });
  for (const f of ['package.json', 'package-lock.json', 'kernel-lib/package.json']) {
    mkdirSync(path.dirname(path.join(copy, f)), { recursive: true });
    copyFileSync(path.join(repoRoot, f), path.join(copy, f));
  }
  const shared = mkdtempSync(path.join(dir, 'shared-'));
  writeFileSync(path.join(shared, 'a-package'), 'kept');
  symlinkSync(shared, path.join(copy, 'node_modules'));
  const r = spawnSync(process.execPath, [path.join(copy, 'scripts', 'setup.mjs'), '--only', 'npm'], { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /setup: FAILED: node_modules is a link to .*shared-.*, and npm ci \(the package files changed\) would empty that folder/);
  assert.equal(readFileSync(path.join(shared, 'a-package'), 'utf8'), 'kept', 'the linked folder is untouched');
});
