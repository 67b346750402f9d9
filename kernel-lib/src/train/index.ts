/**
 * Training: AdamW, the learning-rate schedule, the weights hash and the trainer.
 */
export * from './adamw';
export * from './schedule';
export * from './hash';
export * from './trainer';
