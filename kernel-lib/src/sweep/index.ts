/** Runs: fine-tuning and pre-training as pure functions of their configs, and data paths. */
export * from './paths';
export * from './protocol';
export * from './finetune';
export * from './pretrain';
