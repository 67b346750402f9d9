/** `gmt-lab train`: one fine-tuning run from a base checkpoint, headless. */
import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../backend';
import { defaultGradientPath } from '../../model/gpt';
import { saveCheckpoint, saveSafetensors, type SafetensorsTensor } from '../../model/safetensors';
import { finetune, FINETUNE_DEFAULTS, resolveFinetuneConfig, type FinetuneConfig } from '../../sweep/finetune';
import { listStrategies } from '../../tuning/registry';
import { ConfigError } from '../../util/config';
import { writeJsonAtomic } from '../../util/fsx';
import { interruptSignal } from '../../util/interrupt';
import { defineCommand } from '../command';
import { stderrProgress } from './progress';

const D = FINETUNE_DEFAULTS;

export default defineCommand({
  name: 'train',
  summary: 'Fine-tune a base model with one tuning method and score it',
  description:
    'Progress goes to stderr; with --json the result record goes to stdout as one JSON object. ' +
    'Method options (--ratio, --scope, --mask-update, --p, --mode, --stages) are passed to the method, which rejects those it does not take.',
  options: {
    task: { type: 'string', summary: 'math, code, or a .jsonl file (GSM8K, Alpaca or prompt/completion lines)', default: D.task, metavar: 'TASK' },
    method: { type: 'string', summary: 'tuning method', default: D.method, choices: listStrategies() },
    ratio: { type: 'number', summary: 'fraction of gradient entries zeroed (gmt, random-mask, sift, childtuning-d)', min: 0, max: 1, maxExclusive: true },
    scope: { type: 'string', summary: 'where the quantile is taken (gmt, sift)', choices: ['tensor', 'layer', 'global'] },
    maskUpdate: { type: 'boolean', summary: 'also zero the optimizer update where masked (gmt, sift)' },
    p: { type: 'number', summary: 'keep probability (childtuning-f) / kept fraction (childtuning-d)', min: 0, max: 1, minExclusive: true },
    mode: { type: 'string', summary: 'random-mask: per-update or fixed', choices: ['per-update', 'fixed'] },
    stages: { type: 'number', summary: 'hft: number of re-draws over the run', min: 1, integer: true },
    preset: { type: 'string', summary: 'base model preset with a committed checkpoint', choices: ['nano', 'micro', 'mini'], default: D.base },
    base: { type: 'string', summary: 'base checkpoint file (overrides --preset)', metavar: 'FILE' },
    steps: { type: 'number', summary: 'optimizer updates', min: 1, integer: true, default: D.steps },
    accum: { type: 'number', summary: 'micro-batches averaged into each update', min: 1, integer: true, default: D.accum },
    batch: { type: 'number', summary: 'examples per micro-batch', min: 1, integer: true, default: D.batchSize },
    lr: { type: 'number', summary: 'peak learning rate', min: 0, minExclusive: true, default: D.lr },
    warmup: { type: 'number', summary: 'warmup updates', min: 0, integer: true, default: D.warmup },
    clipNorm: { type: 'number', summary: 'global-norm clip of Γ before the mask (0 = off)', min: 0, default: D.clipNorm ?? 0 },
    seed: { type: 'number', summary: 'run seed', integer: true, default: D.seed },
    dataSeed: { type: 'number', summary: 'task data seed', integer: true, default: D.dataSeed },
    evalEvery: { type: 'number', summary: 'validation loss every K updates (0 = at the end)', min: 0, integer: true, default: D.evalEvery },
    testSize: { type: 'number', summary: 'test problems scored at the end', min: 0, integer: true, default: D.testSize },
    valSize: { type: 'number', summary: 'validation examples for the validation loss', min: 1, integer: true, default: D.valSize },
    scoreBase: { type: 'boolean', summary: 'also score the base model before training' },
    maxNewTokens: { type: 'number', summary: 'longest completion generated when scoring (GSM8K\'s worked answers need ~500)', min: 1, integer: true, default: D.maxNewTokens },
    context: { type: 'number', summary: 'context of the fine-tuned model: extends the base\'s position table at load so long examples fit (default: the base\'s own)', min: 2, max: 4096, integer: true },
    contextInit: { type: 'string', summary: 'with --context: how the new positions start (normal: seeded N(0, 0.02²); tile: the base\'s rows repeated, plus that noise)', choices: ['normal', 'tile'], default: D.contextInit },
    strictText: { type: 'boolean', summary: 'stop at a task-file character without an ASCII form (default: it trains as UNK, and a summary line says how many)' },
    out: { type: 'string', summary: 'folder for result.json and model.safetensors', metavar: 'DIR' },
    json: { type: 'boolean', summary: 'print the result record as JSON on stdout' },
    dumpFirstUpdate: { type: 'string', summary: 'write the first update\'s Γ (grad/<param>) and masked gradient (masked/<param>)', metavar: 'FILE' },
  },
  async run({ options: o }, io) {
    const methodOptions: Record<string, unknown> = {};
    for (const k of ['ratio', 'scope', 'maskUpdate', 'p', 'mode', 'stages'] as const) {
      const v = o[k];
      if (v !== undefined && !(k === 'maskUpdate' && v === false)) methodOptions[k] = v;
    }
    if (o.dumpFirstUpdate !== undefined && !o.dumpFirstUpdate.endsWith('.safetensors')) {
      throw new ConfigError('--dump-first-update must name a .safetensors file');
    }
    const config: Partial<FinetuneConfig> = {
      task: o.task, method: o.method, methodOptions, base: o.base ?? o.preset, steps: o.steps, accum: o.accum, batchSize: o.batch,
      lr: o.lr, warmup: Math.min(o.warmup, o.steps), clipNorm: o.clipNorm === 0 ? null : o.clipNorm, seed: o.seed, dataSeed: o.dataSeed, evalEvery: o.evalEvery,
      testSize: o.testSize, valSize: o.valSize, scoreBase: o.scoreBase, strictText: o.strictText, maxNewTokens: o.maxNewTokens,
      context: o.context ?? null, contextInit: o.contextInit as FinetuneConfig['contextInit'],
    };
    resolveFinetuneConfig(config); // a bad config is one error line, before any work
    const backend = await initBackend({ quiet: true });
    io.stderr(`gmt-lab train: ${o.method} on ${o.task}, backend ${backend.backend}; gradients: ${defaultGradientPath()}\n`);
    const onUpdate = stderrProgress('train', o.steps, io.stderr);
    // SIGINT / SIGTERM stop training at the next update boundary; the partial result is kept.
    const stop = interruptSignal({ onSignal: (sig) => io.stderr(`gmt-lab train: ${sig}: stopping after the current update\n`) });
    const result = await finetune(config, {
      signal: stop.signal,
      log: (line) => io.stderr(`gmt-lab train: ${line}\n`),
      onUpdate,
      onEval: (e) => io.stderr(`eval @${e.step}: ${Object.entries(e.metrics).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(' ')}\n`),
      onGradients: o.dumpFirstUpdate === undefined ? undefined : ({ step, methodInput, masked }) => {
        if (step !== 1) return;
        // grad/ is Γ exactly as the method saw it, so that masked = grad ⊙ M holds entry by entry.
        const tensors: Record<string, SafetensorsTensor> = {};
        const add = (prefix: string, grads: ReadonlyMap<string, tf.Tensor>): void => {
          for (const [name, g] of grads) tensors[`${prefix}/${name}`] = { dtype: 'F32', shape: [...g.shape], data: g.dataSync() as Float32Array };
        };
        add('grad', methodInput);
        add('masked', masked);
        saveSafetensors(o.dumpFirstUpdate as string, tensors, {
          method: o.method,
          methodOptions: JSON.stringify(methodOptions),
          note: 'grad/<param> is the averaged gradient of the first update as the method received it (after global-norm clipping, which comes before the mask); masked/<param> is what the optimizer received',
        });
        io.stderr(`gmt-lab train: wrote the first update's gradients to ${o.dumpFirstUpdate}\n`);
      },
      keepModel: o.out !== undefined,
    }).finally(() => stop.release());
    const { model, ...record } = result;
    const cancelled = record.train.stoppedEarly && !record.diverged;
    if (o.out !== undefined && model) {
      mkdirSync(o.out, { recursive: true });
      saveCheckpoint(path.join(o.out, 'model.safetensors'), model, { 'finetune.config': JSON.stringify(record.config) });
      writeJsonAtomic(path.join(o.out, 'result.json'), record);
      model.dispose();
      io.stderr(`gmt-lab train: wrote ${path.join(o.out, 'result.json')} and model.safetensors\n`);
    }
    const m = record.metrics;
    if (cancelled) io.stderr(`gmt-lab train: cancelled after ${record.train.updates} of ${o.steps} updates (not scored)\n`);
    io.stderr(
      `gmt-lab train: ${cancelled ? 'stopped' : 'done'} in ${(record.train.timings.totalMs / 1000).toFixed(1)} s; val loss ${m.valLoss.toFixed(4)} (base ${m.baseValLoss.toFixed(4)})` +
        `${m.testAccuracy !== undefined ? `; test accuracy ${(m.testAccuracy * 100).toFixed(1)}%` : ''}` +
        `${m.baseTestAccuracy !== undefined ? ` (base ${(m.baseTestAccuracy * 100).toFixed(1)}%)` : ''}\n`,
    );
    if (o.json) io.stdout(`${JSON.stringify(record)}\n`);
    return cancelled ? 130 : 0;
  },
});
