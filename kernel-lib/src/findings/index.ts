/** The findings notebooks' shared logic: paths, figures, reports, the cached benchmark and CLAIMS.md. */
export * from './paths';
export * from './figures';
export * from './reports';
export * from './bench';
export * from './gpu';
export * from './catalog';
export * from './gallery';
export * from './protocol';
