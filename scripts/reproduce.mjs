#!/usr/bin/env node
// `npm run reproduce`: re-run everything the paper's findings rest on, at full size.
// `npm run setup` has already run (prereproduce). Each step is a name and an async function;
// add figure exports and tables as further steps. Stops at the first failed step.

import path from 'node:path';
import { repoRoot } from './lib/env.mjs';
import { runNotebooks } from './notebooks.mjs';

const executedDir = path.join(repoRoot, 'build', 'notebooks');

/** @type {{name: string, run: () => Promise<string>}[]} each run returns a one-line result */
const steps = [
  {
    name: 'notebooks (GMT_MODE=full)',
    run: async () => {
      const { ok, results } = await runNotebooks({ mode: 'full', out: executedDir });
      const failed = results.filter((r) => !r.ok);
      if (!ok) throw new Error(`${failed.length} of ${results.length} notebooks failed: ${failed.map((r) => r.notebook).join(', ')}`);
      return `${results.length} notebooks executed; executed copies in ${path.relative(process.cwd(), executedDir) || '.'}/`;
    },
  },
];

const t0 = performance.now();
for (const step of steps) {
  console.log(`\n== reproduce: ${step.name}`);
  try {
    console.log(`reproduce: ${step.name}: ${await step.run()}`);
  } catch (err) {
    console.error(`reproduce: ${step.name}: FAILED: ${err.message}`);
    process.exit(1);
  }
}
console.log(`\nreproduce: done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
