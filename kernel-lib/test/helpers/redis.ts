/**
 * A real Redis server for tests: Debian's redis-server (or REDIS_SERVER) on a free loopback
 * port, in its own folder, with no persistence unless asked, stopped by `stop()`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

/** The redis-server binary (`REDIS_SERVER`, else Debian's); throws with the fix when missing. */
export function redisServerPath(): string {
  const bin = process.env.REDIS_SERVER?.trim() || '/usr/bin/redis-server';
  if (!fs.existsSync(bin)) throw new Error(`redis-server not found at ${bin}: npm run setup installs Debian's redis-server (as root), or set REDIS_SERVER`);
  return bin;
}

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface RedisOptions {
  password?: string;
  /** Serve TLS only, with these PEM files. */
  tls?: { cert: string; key: string; ca: string };
  port?: number;
}

export interface RunningRedis {
  port: number;
  url: string;
  child: ChildProcess;
  /** kill -9 (data not saved: there is no persistence). */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts redis-server in `dir` and resolves once it accepts connections. */
export async function startRedis(dir: string, opts: RedisOptions = {}): Promise<RunningRedis> {
  const port = opts.port ?? (await freePort());
  fs.mkdirSync(dir, { recursive: true });
  const args = ['--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--protected-mode', 'yes', '--logfile', path.join(dir, 'redis.log')];
  if (opts.tls) args.push('--port', '0', '--tls-port', String(port), '--tls-cert-file', opts.tls.cert, '--tls-key-file', opts.tls.key, '--tls-ca-cert-file', opts.tls.ca, '--tls-auth-clients', 'no');
  else args.push('--port', String(port));
  if (opts.password) args.push('--requirepass', opts.password);
  const child = spawn(redisServerPath(), args, { stdio: 'ignore' });
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}); see ${path.join(dir, 'redis.log')}: ${fs.existsSync(path.join(dir, 'redis.log')) ? fs.readFileSync(path.join(dir, 'redis.log'), 'utf8').slice(-500) : ''}`);
    const up = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error('redis-server did not start within 10 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  const scheme = opts.tls ? 'rediss' : 'redis';
  const auth = opts.password ? `:${encodeURIComponent(opts.password)}@` : '';
  const gone = (): Promise<void> => new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
  return {
    port,
    url: `${scheme}://${auth}127.0.0.1:${port}`,
    child,
    async kill() {
      child.kill('SIGKILL');
      await gone();
    },
    async stop() {
      child.kill('SIGTERM');
      await gone();
    },
  };
}

/** A CA and a server certificate for 127.0.0.1 (openssl), for TLS tests. */
export function makeTlsFiles(dir: string): { ca: string; cert: string; key: string } {
  fs.mkdirSync(dir, { recursive: true });
  const f = (n: string): string => path.join(dir, n);
  const run = (args: string[]): void => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr}`);
  };
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=gmt-lab test CA']);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1']);
  fs.writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  run(['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '2', '-extfile', f('ext.cnf')]);
  return { ca: f('ca.pem'), cert: f('server.pem'), key: f('server.key') };
}
