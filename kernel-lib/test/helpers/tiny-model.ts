/**
 * A tiny trainable model for trainer and strategy tests: token + position embeddings, two
 * residual blocks (a gated token-wise "attention" pair, an MLP pair and two norm gains each) and
 * a head. Real tfjs variables and real gradients; parameter groups and kinds mirror the GPT's
 * (`embed`, `block.<i>`, `head`; embed / attn / mlp / norm / head).
 */
import * as tf from '@tensorflow/tfjs';
import type { HostBatch, ParamInfo, ParamKind, TensorBatch, TrainableModel } from '../../src/types';
import { Rng } from '../../src/util/rng';

export interface TinyModelConfig {
  vocab: number;
  seqLen: number;
  dim: number;
  blocks: number;
  seed: number;
}

export const TINY_DEFAULTS: TinyModelConfig = { vocab: 11, seqLen: 8, dim: 8, blocks: 2, seed: 1 };

export class TinyModel implements TrainableModel {
  readonly params: ParamInfo[] = [];
  readonly config: TinyModelConfig;
  private readonly byName = new Map<string, tf.Variable>();

  constructor(config: Partial<TinyModelConfig> = {}) {
    this.config = { ...TINY_DEFAULTS, ...config };
    const { vocab, seqLen, dim, blocks, seed } = this.config;
    const rng = new Rng(seed);
    const add = (name: string, shape: number[], group: string, kind: ParamKind, init: 'normal' | 'ones') => {
      const size = shape.reduce((a, b) => a * b, 1);
      const values = new Float32Array(size);
      const scale = 1 / Math.sqrt(shape[0] ?? 1);
      for (let i = 0; i < size; i++) {
        // Box–Muller from the seeded stream.
        values[i] = init === 'ones' ? 1 + 0.1 * (rng.next() - 0.5)
          : scale * Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
      }
      const variable = tf.tidy(() => tf.variable(tf.tensor(values, shape, 'float32'), true));
      this.params.push({ name, variable, group, kind });
      this.byName.set(name, variable);
    };
    add('tok', [vocab, dim], 'embed', 'embed', 'normal');
    add('pos', [seqLen, dim], 'embed', 'embed', 'normal');
    for (let b = 0; b < blocks; b++) {
      add(`blocks.${b}.ln1`, [dim], `block.${b}`, 'norm', 'ones');
      add(`blocks.${b}.wq`, [dim, dim], `block.${b}`, 'attn', 'normal');
      add(`blocks.${b}.wo`, [dim, dim], `block.${b}`, 'attn', 'normal');
      add(`blocks.${b}.ln2`, [dim], `block.${b}`, 'norm', 'ones');
      add(`blocks.${b}.w1`, [dim, 2 * dim], `block.${b}`, 'mlp', 'normal');
      add(`blocks.${b}.w2`, [2 * dim, dim], `block.${b}`, 'mlp', 'normal');
    }
    add('lnf', [dim], 'head', 'norm', 'ones');
    add('out', [dim, vocab], 'head', 'head', 'normal');
  }

  private p(name: string): tf.Variable {
    return this.byName.get(name)!;
  }

  loss(batch: TensorBatch): tf.Scalar {
    return tf.tidy(() => {
      const { vocab, blocks } = this.config;
      const [b, s] = batch.inputs.shape;
      const norm = (x: tf.Tensor2D, gain: tf.Tensor): tf.Tensor2D => {
        const rms = tf.sqrt(tf.add(tf.mean(tf.square(x), -1, true), 1e-5));
        return tf.mul(tf.div(x, rms), gain) as tf.Tensor2D;
      };
      const onehot = tf.oneHot(tf.reshape(batch.inputs, [-1]), vocab).toFloat() as tf.Tensor2D;
      const pos = tf.tile(tf.slice(this.p('pos'), [0, 0], [s, -1]), [b, 1]);
      let h = tf.add(tf.matMul(onehot, this.p('tok') as tf.Tensor2D), pos) as tf.Tensor2D;
      for (let i = 0; i < blocks; i++) {
        const a = tf.matMul(tf.tanh(tf.matMul(norm(h, this.p(`blocks.${i}.ln1`)), this.p(`blocks.${i}.wq`) as tf.Tensor2D)), this.p(`blocks.${i}.wo`) as tf.Tensor2D);
        h = tf.add(h, a) as tf.Tensor2D;
        const m = tf.matMul(tf.relu(tf.matMul(norm(h, this.p(`blocks.${i}.ln2`)), this.p(`blocks.${i}.w1`) as tf.Tensor2D)), this.p(`blocks.${i}.w2`) as tf.Tensor2D);
        h = tf.add(h, m) as tf.Tensor2D;
      }
      const logits = tf.matMul(norm(h, this.p('lnf')), this.p('out') as tf.Tensor2D);
      const logp = tf.logSoftmax(logits);
      const target = tf.oneHot(tf.reshape(batch.targets, [-1]), vocab).toFloat();
      const nll = tf.neg(tf.sum(tf.mul(target, logp), -1));
      const w = tf.reshape(batch.weights, [-1]);
      return tf.div(tf.sum(tf.mul(nll, w)), tf.maximum(tf.sum(w), 1)) as tf.Scalar;
    });
  }

  dispose(): void {
    for (const p of this.params) p.variable.dispose();
  }
}

/**
 * Seeded batches of a learnable task: each sequence counts up modulo the vocabulary from a random
 * start, and the target is the next token. Weights mask the first position out.
 */
export function tinyBatches(seed: number, config: Partial<TinyModelConfig> = {}, batchSize = 4): () => HostBatch {
  const { vocab, seqLen } = { ...TINY_DEFAULTS, ...config };
  const rng = new Rng(seed);
  return () => {
    const n = batchSize * seqLen;
    const inputs = new Int32Array(n);
    const targets = new Int32Array(n);
    const weights = new Float32Array(n);
    for (let r = 0; r < batchSize; r++) {
      const start = rng.int(0, vocab - 1);
      const stride = rng.int(1, 2);
      for (let j = 0; j < seqLen; j++) {
        inputs[r * seqLen + j] = (start + stride * j) % vocab;
        targets[r * seqLen + j] = (start + stride * (j + 1)) % vocab;
        weights[r * seqLen + j] = j === 0 ? 0 : 1;
      }
    }
    return { batchSize, seqLen, inputs, targets, weights };
  };
}
