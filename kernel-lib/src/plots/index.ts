/** Plotly figure builders, the shared theme, and static export (SVG/PNG/HTML/JSON/CSV). */
export { PlotlyFigure, PlotlyTrace, METHOD_COLORS, methodColor, baseLayout, DISPLAY_CONFIG } from './theme';
export { LineSeries, LineFigureOptions, lineFigure, BarSeries, BarFigureOptions, barFigure } from './figures';
export {
  FigureFormat,
  FIGURE_FORMATS,
  ImageOptions,
  ExportOptions,
  FigureExporter,
  withFigureExporter,
  exportFigure,
  figureHtml,
  figureCsv,
  writeFigureCsv,
  chromiumPath,
  plotlyJsSource,
  plotlyJsVersion,
} from './export';
export { MimeBundle, DisplayContent, FigureBundleOptions, figureBundle, figureBundleHtml } from './bundle';
