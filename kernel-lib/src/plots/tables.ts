/**
 * Tables as files: Markdown (for figures/ and CLAIMS.md) and CSV, from row objects or an arquero
 * table, with the number formatting the notebooks' HTML tables use.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../util/config';

/** Row objects, or anything with arquero's `objects()` and `numRows()`. */
export type TableLike = readonly object[] | { objects(opts?: { limit?: number }): object[]; numRows(): number };

/** Up to `limit` rows of a table and its row count. */
export function tableRows(table: TableLike, limit = Infinity): { rows: Record<string, unknown>[]; total: number } {
  if (Array.isArray(table)) return { rows: (table as Record<string, unknown>[]).slice(0, limit), total: table.length };
  const t = table as { objects?: unknown; numRows?: unknown };
  if (typeof t.objects === 'function' && typeof t.numRows === 'function') {
    const at = table as { objects(o?: { limit: number }): Record<string, unknown>[]; numRows(): number };
    return { rows: Number.isFinite(limit) ? at.objects({ limit }) : at.objects(), total: at.numRows() };
  }
  throw new ConfigError('expected an array of row objects or an arquero table');
}

/** Column names in first-seen order. */
export function tableColumns(rows: readonly Record<string, unknown>[]): string[] {
  const cols: string[] = [];
  const seen = new Set<string>();
  for (const row of rows) for (const key of Object.keys(row)) if (!seen.has(key)) (seen.add(key), cols.push(key));
  return cols;
}

/** A cell as text: numbers to `digits` significant digits (integers and ±∞ as they are), NaN/null empty. */
export function formatCell(value: unknown, digits: number): string {
  if (typeof value === 'number') {
    if (Number.isNaN(value)) return '';
    if (Number.isInteger(value) || !Number.isFinite(value)) return String(value);
    return String(Number(value.toPrecision(digits)));
  }
  if (value === null || value === undefined) return '';
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** A GitHub-flavoured Markdown table (numbers right-aligned). */
export function tableMarkdown(table: TableLike, opts: { digits?: number } = {}): string {
  const { rows } = tableRows(table);
  const cols = tableColumns(rows);
  const digits = opts.digits ?? 4;
  const numeric = cols.map((c) => rows.every((r) => r[c] === undefined || r[c] === null || typeof r[c] === 'number'));
  const esc = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  return [
    `| ${cols.map(esc).join(' | ')} |`,
    `|${numeric.map((n) => (n ? '---:' : ':---')).join('|')}|`,
    ...rows.map((r) => `| ${cols.map((c) => esc(formatCell(r[c], digits))).join(' | ')} |`),
  ].join('\n') + '\n';
}

/** CSV with a header row; numbers at full precision. */
export function tableCsv(table: TableLike): string {
  const { rows } = tableRows(table);
  const cols = tableColumns(rows);
  const field = (v: unknown): string => {
    const text = typeof v === 'number' ? (Number.isFinite(v) ? String(v) : '') : v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
    return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  return [cols.map(field).join(','), ...rows.map((r) => cols.map((c) => field(r[c])).join(','))].join('\n') + '\n';
}

/** Writes `basePath.md` and `basePath.csv`; returns the paths. */
export function exportTable(table: TableLike, basePath: string, opts: { digits?: number; caption?: string } = {}): string[] {
  fs.mkdirSync(path.dirname(path.resolve(basePath)), { recursive: true });
  const md = `${basePath}.md`;
  const csv = `${basePath}.csv`;
  fs.writeFileSync(md, `${opts.caption ? `${opts.caption}\n\n` : ''}${tableMarkdown(table, opts)}`);
  fs.writeFileSync(csv, tableCsv(table));
  return [md, csv];
}
