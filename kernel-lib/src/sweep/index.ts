/** Runs: fine-tuning and pre-training as pure functions of their configs, and data paths. */
export * from './paths';
export * from './protocol';
export * from './finetune';
export * from './pretrain';
export * from './grid';
export * from './store';
export * from './execute';
export * from './runner';
export * from './queue';
export * from './lock';
