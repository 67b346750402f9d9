/**
 * Data: the character tokenizer, seeded task generators (math, code, general), JSONL loaders
 * for user data, and batching into `HostBatch`es.
 */
export * from './tokenizer';
export * from './tasks';
export * from './jsonl';
export * from './batching';
