/**
 * Child process of the checkpoint crash test: overwrites the checkpoint at argv[2] with two
 * models in turn, forever, until it is killed. Prints `ready` once the models exist.
 */
import * as tf from '@tensorflow/tfjs';
import { GPT } from '../../src/model/gpt';
import { saveCheckpoint } from '../../src/model/safetensors';
import { CRASH_MODEL } from './crash-model';

void tf.setBackend('cpu').then(() => {
  const models = [1, 2].map((seed) => new GPT({ ...CRASH_MODEL, seed }));
  process.stdout.write('ready\n');
  for (let i = 0; ; i++) saveCheckpoint(process.argv[2] as string, models[i % 2] as GPT);
});
