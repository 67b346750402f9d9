/** `gmt-lab protocol`: write figures/PROTOCOL.md (the pilot, its rules and its choice) from the pilot store. */
import { initBackend } from '../../backend';
import { pilotStore, writeProtocol, writeProtocolTwoGrids } from '../../findings/protocol';
import { runMode, type RunMode } from '../../util/config';
import { defineCommand } from '../command';

export default defineCommand({
  name: 'protocol',
  summary: 'Apply the pilot\'s rules to the pilot store and write PROTOCOL.md',
  description: 'Reads data/results/pilot.jsonl (the pilot grids notebooks/grids/pilot-*.json) and writes figures/PROTOCOL.md: the rules, the difficulty calibration, the pilot table, the chosen protocol and the seeds it implies; with --grids also protocol 2\'s grid files from the choice; runs nothing.',
  options: {
    mode: { type: 'string', summary: 'full (committed evidence) or fast; default GMT_MODE or full', choices: ['fast', 'full'] },
    print: { type: 'boolean', summary: 'also print the file' },
    grids: { type: 'boolean', summary: 'also write protocol 2\'s grids (notebooks/grids/p2_*.json) from the choice and the budget rule; an error before the pilot has chosen' },
  },
  async run({ options: o }, io) {
    await initBackend({ quiet: true });
    const mode = (o.mode as RunMode | undefined) ?? runMode();
    const { file, text, chosen, runs } = await writeProtocol(mode);
    io.stderr(`gmt-lab protocol: wrote ${file} from ${runs} pilot runs in ${pilotStore(mode)}${chosen ? `; chosen: ${chosen.candidate.id} ${chosen.candidate.name}` : ''}\n`);
    if (o.grids) {
      const files = await writeProtocolTwoGrids(mode);
      io.stderr(`gmt-lab protocol: wrote ${files.join(' and ')}\n`);
    }
    if (o.print) io.stdout(text);
    return 0;
  },
});
