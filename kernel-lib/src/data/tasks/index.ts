export * from './common';
export * from './arithmetic';
export * from './math';
export * from './code';
export * from './general';
