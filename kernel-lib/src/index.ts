/**
 * @gmt-lab/kernel-lib — Gradient-Mask Tuning in TypeScript.
 *
 * Everything a notebook or the `gmt-lab` command needs is exported from here, so notebooks
 * import by package name: `import * as gmt from '@gmt-lab/kernel-lib'`.
 */
export * from './types';
export * from './util/rng';
export * from './util/config';
export * from './util/interrupt';
export * from './util/format';
export * from './backend';
export * from './model';
export * from './data';
export * from './eval';
export * from './tuning';
export * from './train';
export * from './sweep';
export * from './plots';
export * from './notebook';
export * from './analysis';
export * from './findings';
