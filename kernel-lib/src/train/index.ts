/**
 * Training: AdamW, the learning-rate schedule and the trainer (the weights hash is `weightsSha256` from model/).
 */
export * from './adamw';
export * from './schedule';
export * from './trainer';
export * from './bench';
