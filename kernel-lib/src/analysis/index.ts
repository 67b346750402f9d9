/** Statistics over seeds, result tables and the claims' verdict rules. */
export * from './stats';
export * from './results';
export * from './claims';
export * from './ablations';
export * from './pilot';
