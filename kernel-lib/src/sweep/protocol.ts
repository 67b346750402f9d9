/** Constants shared by pre-training and fine-tuning, so that the base model and the task agree. */

/**
 * Largest operand and result of the arithmetic that the base models learn and the `math` task
 * uses. Kept small on purpose: the base must master every fact of the range before fine-tuning
 * means anything (DESIGN §6), and a CPU budget of minutes can teach 115 facts, not 1,757.
 */
export const PROTOCOL_MAX_VALUE = 10;

/** The general mixture of the committed base models. */
export const PROTOCOL_CORPUS: Readonly<Record<string, unknown>> = Object.freeze({
  maxValue: PROTOCOL_MAX_VALUE,
  mix: { prose: 0.2, facts: 0.5, programs: 0.3 },
});

/**
 * Difficulty of the generated tasks in the calibrated protocol (`finetune` applies these unless
 * `taskOptions` overrides them). Chosen so that SFT of the `micro` base for the default budget
 * lands inside 30–80% on both tasks; the calibration runs are listed in the README.
 */
export const PROTOCOL_TASK_OPTIONS: Readonly<Record<'math' | 'code', Readonly<Record<string, unknown>>>> = Object.freeze({
  math: Object.freeze({ maxValue: PROTOCOL_MAX_VALUE, steps: [1, 2] }),
  code: Object.freeze({ trainSize: 500 }),
});
