/**
 * Evaluation: the listlang interpreter (the code task's language) and the scorers
 * (final-answer math, functional tests for programs, arithmetic facts).
 */
export * from './listlang';
export * from './scorers';
