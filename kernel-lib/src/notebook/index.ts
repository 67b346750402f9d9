/** tslab notebook display: figures, live figures, tables, progress. */
export { inNotebook, displayBundle, newDisplayId, DisplayRoute } from './channel';
export {
  PlotlyJsMode,
  ShowFigureOptions,
  showFigure,
  closeNotebookExporter,
  LiveFigure,
  liveFigure,
  TableLike,
  ShowTableOptions,
  tableBundle,
  showTable,
  ProgressOptions,
  Progress,
  progress,
  stableOutput,
} from './display';
export { sweepWithProgress } from './sweep';
export { TrainingDisplay, trainingDisplay } from './training';
export { trainCell, compareCell, lastResult, resultSummary, CompareOptions } from './cells';
