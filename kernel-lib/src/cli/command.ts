/**
 * The shape of a `gmt-lab` command and `defineCommand`, which wires a declaration to the
 * shared parser: `--help`, exit status 2 for usage mistakes (and for {@link ConfigError}s, which
 * are bad user input too), 1 for any other failure.
 *
 * Adding a command: write `cli/commands/<name>.ts` exporting `defineCommand({...})`, then add
 * one line to the table in `cli/commands/index.ts`.
 */
import { ConfigError } from '../util/config';
import { OptionSpecs, ParsedArgs, PositionalSpec, UsageError, formatUsage, parseArgs } from './args';

/** One entry of the command table. */
export interface Command {
  name: string;
  /** One line for `gmt-lab help`. */
  summary: string;
  /** The full `--help` text. */
  usage: string;
  /** Runs with the arguments after the command name; resolves to the exit status. */
  run(argv: string[], io?: CommandIo): Promise<number>;
}

/** Where a command writes; tests pass their own sinks. */
export interface CommandIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

/** The process's own streams. */
export const processIo: CommandIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/** What a command declares; `run` gets already-validated arguments. */
export interface CommandDefinition<O extends OptionSpecs> {
  name: string;
  summary: string;
  /** Optional paragraph after the summary in `--help`. */
  description?: string;
  options: O;
  positionals?: PositionalSpec[];
  run(args: ParsedArgs<O>, io: CommandIo): Promise<number>;
}

/** Turns a declaration into a {@link Command}. */
export function defineCommand<O extends OptionSpecs>(def: CommandDefinition<O>): Command {
  const usage = formatUsage(def.name, def.summary, def.options, def.positionals ?? [], def.description);
  return {
    name: def.name,
    summary: def.summary,
    usage,
    async run(argv: string[], io: CommandIo = processIo): Promise<number> {
      try {
        const args = parseArgs(argv, def.options, def.positionals ?? []);
        if (args.help) {
          io.stdout(`${usage}\n`);
          return 0;
        }
        return await def.run(args, io);
      } catch (e) {
        if (e instanceof UsageError || e instanceof ConfigError) {
          // One line: the mistake, and where the options are listed.
          io.stderr(`gmt-lab ${def.name}: ${e.message}${e instanceof UsageError ? ` (gmt-lab ${def.name} --help lists the options)` : ''}\n`);
          return 2;
        }
        const detail = e instanceof Error ? (process.env.GMT_DEBUG ? e.stack ?? e.message : e.message) : String(e);
        io.stderr(`gmt-lab ${def.name}: error: ${detail}\n`);
        return 1;
      }
    },
  };
}
