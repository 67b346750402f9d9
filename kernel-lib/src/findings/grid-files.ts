/** The grid files of the findings notebooks (notebooks/grids/), by role. */

/** Protocol 1's grids (notebooks 02, 03, 05). */
export const FINDINGS_GRIDS = { gmtVsSft: '02_gmt_vs_sft.json', maskRatio: '03_mask_ratio.json', insideMask: '05_inside_the_mask.json' } as const;

/** Protocol 2's grids, the protocol the pilot chose (figures/PROTOCOL.md; `gmt-lab protocol --grids` writes them). */
export const PROTOCOL2_GRID_FILES = { gmtVsSft: 'p2_gmt_vs_sft.json', maskRatio: 'p2_mask_ratio.json' } as const;

/**
 * Beyond the paper: claim 1's protocol-2 grid at the `nano` base, so that GMT − SFT can be
 * compared across model sizes (with `p2_gmt_vs_sft.json` at `micro`).
 */
export const SIZE_TREND_GRID = 'p2_size_nano.json';

/** Notebook 06's grid: the gradient-mask ablations (on a GPU where there is one, else on the CPU engine). */
export const ABLATIONS_GRID = '06_gpu_ablations.json';

/**
 * Claim 1's second stage under protocol 2: the seeds its rule re-estimates from stage 1's runs
 * (`STAGE2_RULES` in analysis/pilot.ts), on `p2_gmt_vs_sft.json`'s settings; `gmt-lab protocol
 * --grids` writes it once stage 1 is complete.
 */
export const CLAIM1_STAGE2_GRID = 'p2_claim1_stage2.json';
