/** `gmt-lab pretrain`: builds a base checkpoint on the general mixture and records its sha256. */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { initBackend } from '../../backend';
import { baseCheckpointPath, baseManifestPath, readManifest, sha256File } from '../../sweep/paths';
import { pretrain, PRETRAIN_DEFAULTS, type PretrainConfig } from '../../sweep/pretrain';
import { writeFileAtomic, writeJsonAtomic } from '../../util/fsx';
import { defineCommand } from '../command';
import { stderrProgress } from './progress';

const D = PRETRAIN_DEFAULTS;

/** Per-preset budgets of the committed base models (what `npm run pretrain` reproduces). */
export const COMMITTED_PRETRAIN: Record<'nano' | 'micro', Partial<PretrainConfig>> = {
  nano: { preset: 'nano', steps: 600, batchSize: 16, lr: 3e-3, warmup: 50, evalEvery: 200 },
  micro: { preset: 'micro', steps: D.steps, batchSize: D.batchSize, lr: D.lr, warmup: D.warmup, evalEvery: D.evalEvery },
};

export default defineCommand({
  name: 'pretrain',
  summary: 'Pre-train a base model on the general mixture (deterministic) and save it as safetensors',
  description:
    'Without --out the checkpoint goes to data/base/<preset>.safetensors, its record to data/base/<preset>.json, ' +
    'and data/base/SHA256SUMS is updated. Options left out take the committed budget of the preset.',
  options: {
    preset: { type: 'string', summary: 'model preset', choices: ['nano', 'micro', 'mini'], default: 'micro' },
    steps: { type: 'number', summary: 'optimizer updates', min: 1, integer: true },
    batch: { type: 'number', summary: 'packed windows per update', min: 1, integer: true },
    lr: { type: 'number', summary: 'peak learning rate', min: 0, minExclusive: true },
    warmup: { type: 'number', summary: 'warmup updates', min: 0, integer: true },
    seed: { type: 'number', summary: 'weights and batch-order seed', integer: true },
    evalEvery: { type: 'number', summary: 'evaluate every K updates', min: 0, integer: true },
    out: { type: 'string', summary: 'checkpoint file to write (default data/base/<preset>.safetensors)', metavar: 'FILE' },
    json: { type: 'boolean', summary: 'print the result record as JSON on stdout' },
  },
  async run({ options: o }, io) {
    const preset = o.preset as PretrainConfig['preset'];
    const committed = (COMMITTED_PRETRAIN as Record<string, Partial<PretrainConfig>>)[preset] ?? { preset };
    const config: Partial<PretrainConfig> = { ...committed, preset };
    if (o.steps !== undefined) config.steps = o.steps;
    if (o.batch !== undefined) config.batchSize = o.batch;
    if (o.lr !== undefined) config.lr = o.lr;
    if (o.warmup !== undefined) config.warmup = o.warmup;
    if (o.seed !== undefined) config.seed = o.seed;
    if (o.evalEvery !== undefined) config.evalEvery = o.evalEvery;
    if (config.warmup !== undefined && config.steps !== undefined) config.warmup = Math.min(config.warmup, config.steps);
    const out = path.resolve(o.out ?? baseCheckpointPath(preset));
    const backend = await initBackend({ quiet: true });
    io.stderr(`gmt-lab pretrain: ${preset} → ${out}, backend ${backend.backend}\n`);
    const steps = config.steps ?? D.steps;
    const { gpt, ...record } = await pretrain(config, {
      out,
      onUpdate: stderrProgress('pretrain', steps, io.stderr),
      onEval: (e) => io.stderr(`eval @${e.step}: ${Object.entries(e.metrics).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(' ')}\n`),
    });
    gpt.dispose();
    const sha = sha256File(out);
    writeJsonAtomic(out.replace(/\.safetensors$/, '') + '.json', { ...record, sha256: sha });
    const manifest = baseManifestPath();
    if (path.dirname(out) === path.dirname(manifest)) {
      const entries = existsSync(manifest) && readFileSync(manifest, 'utf8').trim() ? readManifest(manifest) : new Map<string, string>();
      entries.set(path.basename(out), sha);
      const text = [...entries].sort(([a], [b]) => a.localeCompare(b)).map(([name, hex]) => `${hex}  ${name}\n`).join('');
      writeFileAtomic(manifest, text);
    }
    io.stderr(`gmt-lab pretrain: ${out} sha256 ${sha}; val loss ${record.metrics.valLoss.toFixed(4)}, arithmetic facts ${(record.metrics.arithAccuracy * 100).toFixed(1)}%\n`);
    if (o.json) io.stdout(`${JSON.stringify({ ...record, sha256: sha })}\n`);
    return 0;
  },
});
