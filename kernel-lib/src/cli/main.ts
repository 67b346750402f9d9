#!/usr/bin/env node
/**
 * `gmt-lab`: the command-line entry point. Dispatches to the table in `commands/index.ts`.
 * Exit status: 0 ok, 1 failure, 2 usage error (unknown command or option, bad value).
 */
import * as fs from 'fs';
import * as path from 'path';
import { COMMANDS } from './commands';
import { formatHelp } from './commands/help';
import { CommandIo, processIo } from './command';
import { releaseWebgpu, webgpuStarted } from '../backend/webgpu';

function version(): string {
  return JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')).version;
}

/** Runs `gmt-lab` with `argv` (the arguments after the program name); resolves to the exit status. */
export async function main(argv: string[], io: CommandIo = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    io.stderr(`${formatHelp(COMMANDS)}\n`);
    return 2;
  }
  if (name === '--help' || name === '-h') {
    io.stdout(`${formatHelp(COMMANDS)}\n`);
    return 0;
  }
  if (name === '--version' || name === '-V') {
    io.stdout(`${version()}\n`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.stderr(`gmt-lab: unknown command ${JSON.stringify(name)} (known: ${COMMANDS.map((c) => c.name).join(', ')}; gmt-lab help lists them)\n`);
    return 2;
  }
  try {
    return await command.run(rest, io);
  } finally {
    // A command that trained on webgpu (GMT_BACKEND=webgpu) would otherwise keep Node alive.
    if (webgpuStarted()) await releaseWebgpu();
  }
}

if (require.main === module) {
  // `gmt-lab sweep --status | head`: a reader that stops reading is not an error.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
  main(process.argv.slice(2)).then(
    (code) => {
      // exitCode (not exit()) lets stdout drain when it is a pipe.
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`gmt-lab: ${e instanceof Error ? e.stack : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
