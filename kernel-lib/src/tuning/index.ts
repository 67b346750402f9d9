/**
 * Tuning methods: the GMT mask contract (`mask.ts`), one file per method, and the registry.
 */
export * from './strategy';
export * from './mask';
export * from './registry';
export * from './sft';
export * from './gmt';
export * from './random-mask';
export * from './childtuning-f';
export * from './childtuning-d';
export * from './hft';
export * from './sift';
