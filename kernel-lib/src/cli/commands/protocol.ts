/** `gmt-lab protocol`: write figures/PROTOCOL.md (the pilot, its rules and its choice) from the pilot store. */
import { initBackend } from '../../backend';
import { pilotStore, writeProtocol, writeProtocolTwoGrids, writeStageTwoGrid } from '../../findings/protocol';
import { runMode, type RunMode } from '../../util/config';
import { defineCommand } from '../command';

export default defineCommand({
  name: 'protocol',
  summary: 'Apply the pilot\'s rules to the pilot store and write PROTOCOL.md',
  description: 'Reads data/results/pilot.jsonl (the pilot grids notebooks/grids/pilot-*.json) and writes figures/PROTOCOL.md: the rules, the difficulty calibration, the pilot table, the chosen protocol and the seeds it implies; with --grids also protocol 2\'s grid files from the choice; runs nothing.',
  options: {
    mode: { type: 'string', summary: 'full (committed evidence) or fast; default GMT_MODE or full', choices: ['fast', 'full'] },
    print: { type: 'boolean', summary: 'also print the file' },
    grids: { type: 'boolean', summary: 'also write protocol 2\'s grids (notebooks/grids/p2_*.json) from the choice and the budget rule, and claim 1\'s stage-2 grid once stage 1 is in the store; an error before the pilot has chosen' },
  },
  async run({ options: o }, io) {
    await initBackend({ quiet: true });
    const mode = (o.mode as RunMode | undefined) ?? runMode();
    const { file, text, chosen, runs } = await writeProtocol(mode);
    io.stderr(`gmt-lab protocol: wrote ${file} from ${runs} pilot runs in ${pilotStore(mode)}${chosen ? `; chosen: ${chosen.candidate.id} ${chosen.candidate.name}` : ''}\n`);
    if (o.grids) {
      const files = await writeProtocolTwoGrids(mode);
      io.stderr(`gmt-lab protocol: wrote ${files.join(' and ')}\n`);
      const stage2 = await writeStageTwoGrid(mode);
      io.stderr(stage2 ? `gmt-lab protocol: wrote ${stage2} (claim 1's stage 2)\n` : 'gmt-lab protocol: claim 1\'s stage-2 grid is not written: stage 1 is incomplete or needs no more seeds (PROTOCOL.md)\n');
      // PROTOCOL.md says whether the grid file is the rule's, so write it again now the file is there.
      if (stage2) await writeProtocol(mode);
    }
    if (o.print) io.stdout(text);
    return 0;
  },
});
