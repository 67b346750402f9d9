/**
 * The command table of `gmt-lab`. Adding a command: one file in this folder exporting
 * `defineCommand({...})` as default, plus one line below.
 */
import type { Command } from '../command';
import { makeHelpCommand } from './help';
import bench from './bench';
import doctor from './doctor';
import pretrain from './pretrain';
import claims from './claims';
import protocol from './protocol';
import sweep from './sweep';
import train from './train';
import worker from './worker';

export const COMMANDS: readonly Command[] = [
  doctor,
  train,
  pretrain,
  bench,
  sweep,
  worker,
  claims,
  protocol,
  makeHelpCommand(() => COMMANDS),
];
