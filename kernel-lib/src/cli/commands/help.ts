/** `gmt-lab help [command]`: the command list, or one command's usage. */
import { defineCommand } from '../command';
import { UsageError } from '../args';
import type { Command } from '../command';

/** The overview printed by `gmt-lab help` and by `gmt-lab` alone. */
export function formatHelp(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length)) + 4;
  return [
    'Usage: gmt-lab <command> [options]',
    '',
    'Gradient-Mask Tuning lab: train, compare and plot masked fine-tuning runs.',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
    'Run "gmt-lab <command> --help" for the options of one command.',
  ].join('\n');
}

/** Builds `help` over a command table (passed lazily: the table contains `help` itself). */
export function makeHelpCommand(table: () => readonly Command[]) {
  return defineCommand({
    name: 'help',
    summary: 'List the commands, or show the options of one',
    options: {},
    positionals: [{ name: 'command', summary: 'the command to describe', required: false }],
    async run({ positionals }, io) {
      const commands = table();
      if (positionals.length === 0) {
        io.stdout(`${formatHelp(commands)}\n`);
        return 0;
      }
      const cmd = commands.find((c) => c.name === positionals[0]);
      if (!cmd) throw new UsageError(`unknown command ${JSON.stringify(positionals[0])} (known: ${commands.map((c) => c.name).join(', ')})`);
      io.stdout(`${cmd.usage}\n`);
      return 0;
    },
  });
}
