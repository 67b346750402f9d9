/**
 * Where the findings notebooks and `npm run reproduce` keep their evidence, per mode:
 *
 * | mode | result store | figures and CLAIMS.md |
 * |---|---|---|
 * | full | `data/results/findings.jsonl` (committed) | `figures/` (committed) |
 * | fast | `build/fast/results/findings.jsonl` | `build/fast/figures/` |
 *
 * so that `npm test` (fast mode) never touches the committed evidence. `GMT_RESULTS_DIR` and
 * `GMT_FIGURES_DIR` override the folders. All grids share one store: a run that two notebooks
 * plan (SFT, or GMT at k = 0.3) is made once.
 */
import * as path from 'node:path';
import { dataDir } from '../sweep/paths';
import type { EngineName } from '../backend/engine';
import { runMode, type RunMode } from '../util/config';

/** The folders and files of one mode. */
export interface FindingsPaths {
  mode: RunMode;
  /** The repository root (the folder above `data/`). */
  root: string;
  resultsDir: string;
  /** The shared JSONL result store of every findings grid. */
  store: string;
  /**
   * Cached interleaved benchmark of notebook 04 (JSON), one per engine: `bench.json` holds the
   * wasm engine's (protocol 1's claim 3), `bench-native.json` the native engine's (protocol 2's).
   */
  bench: Record<EngineName, string>;
  figuresDir: string;
  /** `figures/CLAIMS.md` (or its fast-mode twin). */
  claims: string;
  /** Grid files (`notebooks/grids`). */
  gridsDir: string;
}

/** The paths of `mode` (default `GMT_MODE`). */
export function findingsPaths(mode: RunMode = runMode(), env: NodeJS.ProcessEnv = process.env): FindingsPaths {
  const root = path.resolve(dataDir(env), '..');
  const fastRoot = path.join(root, 'build', 'fast');
  const resultsDir = path.resolve(env.GMT_RESULTS_DIR ?? (mode === 'full' ? path.join(root, 'data', 'results') : path.join(fastRoot, 'results')));
  const figuresDir = path.resolve(env.GMT_FIGURES_DIR ?? (mode === 'full' ? path.join(root, 'figures') : path.join(fastRoot, 'figures')));
  return {
    mode,
    root,
    resultsDir,
    store: path.join(resultsDir, 'findings.jsonl'),
    bench: { wasm: path.join(resultsDir, 'bench.json'), native: path.join(resultsDir, 'bench-native.json') },
    figuresDir,
    claims: path.join(figuresDir, 'CLAIMS.md'),
    gridsDir: path.join(root, 'notebooks', 'grids'),
  };
}

/** The figure folder of one notebook: `figures/<notebook>/`. */
export function notebookFiguresDir(notebook: string, mode: RunMode = runMode()): string {
  return path.join(findingsPaths(mode).figuresDir, notebook);
}
