/** The model the checkpoint crash test writes: large enough (~3 MB) that kills land mid-write. */
export const CRASH_MODEL = { vocabSize: 99, contextLength: 64, dModel: 128, nLayers: 4, nHeads: 4 };
