/**
 * `gmt-lab claims`: write figures/CLAIMS.md from the committed result store and benchmark, and
 * the gallery of the figures on disk (figures/index.html, figures/README.md).
 */
import { initBackend } from '../../backend';
import { writeClaims } from '../../findings/reports';
import { writeGallery } from '../../findings/gallery';
import { runMode, type RunMode } from '../../util/config';
import { defineCommand } from '../command';

export default defineCommand({
  name: 'claims',
  summary: 'Apply the verdict rules to the result store and write CLAIMS.md and the figures gallery',
  description: 'Reads the findings store and notebook 04\'s benchmark of the mode (full: data/results → figures/CLAIMS.md; fast: build/fast/…), and writes CLAIMS.md with the figure behind each claim and the gallery (index.html, README.md) of the figures the notebooks saved; runs nothing.',
  options: {
    mode: { type: 'string', summary: 'full (committed evidence) or fast; default GMT_MODE or full', choices: ['fast', 'full'] },
    print: { type: 'boolean', summary: 'also print the file' },
  },
  async run({ options: o }, io) {
    await initBackend({ quiet: true });
    const mode = (o.mode as RunMode | undefined) ?? runMode();
    const { file, text, missing } = await writeClaims(mode);
    const verdicts = text.split('\n').filter((l) => /\*\*(reproduced|contradicted|not reproduced|inconclusive|no data)\*\*/.test(l));
    io.stderr(`gmt-lab claims: wrote ${file} (${verdicts.length} verdicts${missing ? `; the store lacks ${missing} planned runs` : ''})\n`);
    const gallery = writeGallery({ mode });
    io.stderr(`gmt-lab claims: wrote ${gallery.index} and ${gallery.readme} (${gallery.figures} figures, ${gallery.tables} tables)\n`);
    if (o.print) io.stdout(text);
    return 0;
  },
});
