import type { SweepGrid } from '../../src/sweep/grid';

/** A grid of tiny runs on the nano base (about a second each): SFT and GMT on math, seeds 0 and 1. */
export const tinyGrid = (over: Partial<SweepGrid> = {}): SweepGrid => ({
  name: 'tiny',
  description: 'test grid',
  base: { base: 'nano', steps: 3, warmup: 1, accum: 1, batchSize: 4, testSize: 4, valSize: 4, maxNewTokens: 8 },
  methods: ['sft', { method: 'gmt', options: { ratio: 0.3 } }],
  tasks: ['math'],
  presets: [],
  seeds: [0, 1],
  vary: {},
  ...over,
});
