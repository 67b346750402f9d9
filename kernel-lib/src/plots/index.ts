/** Plotly figure builders, the shared theme, and static export (SVG/PNG/HTML/JSON/CSV). */
export { PlotlyFigure, PlotlyTrace, METHOD_COLORS, VARIANT_COLORS, methodColor, baseLayout, DISPLAY_CONFIG } from './theme';
export {
  LineSeries, LineFigureOptions, ReferenceLine, lineFigure, BarSeries, BarFigureOptions, barFigure,
  HeatmapFigureOptions, heatmapFigure, VerticalMarker, HistogramFigureOptions, histogramFigure, logHistogram,
} from './figures';
export {
  FigureFormat,
  FIGURE_FORMATS,
  ImageOptions,
  ExportOptions,
  PlotlyJsPlacement,
  FigureHtmlOptions,
  FigureExporter,
  launchChromium,
  withFigureExporter,
  exportFigure,
  exportFigures,
  NamedFigure,
  figureHtml,
  relativeUrl,
  writePlotlyJs,
  figureCsv,
  writeFigureCsv,
  chromiumPath,
  plotlyJsSource,
  plotlyJsVersion,
  PlotlyBundle,
  CARTESIAN_TRACE_TYPES,
  tracesOutside,
} from './export';
export { MimeBundle, DisplayContent, FigureBundleOptions, figureBundle, figureBundleHtml, figureElementId } from './bundle';
export { TableLike, tableRows, tableColumns, formatCell, tableMarkdown, tableCsv, exportTable } from './tables';
