/**
 * Small static SVG charts for the HTML run report: vertical bars (with optional group boundaries),
 * horizontal bars and line charts. They return markup strings, draw nothing at run time (the report
 * has no scripts) and escape every piece of text, because names come from user-supplied models.
 *
 * Every chart is `<svg class="chart" data-chart="ID">`, its marks carry a class (`bar`, `series`,
 * `boundary`) and a `<title>` with the exact value, so tests and readers can find them.
 */

/** Escapes text for HTML and XML content and attribute values. */
export function esc(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Colours of the report, chosen to stay distinct for colour-blind readers (Okabe–Ito). */
export const PALETTE = ['#0072b2', '#e69f00', '#009e73', '#cc79a7', '#56b4e9', '#d55e00', '#f0e442', '#000000'];

/** A compact number for axes and labels: 3 significant digits, exponents only when needed. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e5 || a < 1e-3) return x.toExponential(2).replace(/\.?0+e/, 'e');
  return String(Number(x.toPrecision(3)));
}

interface Scale { (v: number): number; ticks: number[]; log: boolean }

/**
 * Ticks at multiples of 1, 2 or 5 × 10^k, about `count` of them: inside [lo, hi], or with `cover`
 * reaching out to the multiples just beyond, so an axis ends on a labelled tick above its tallest bar.
 */
export function niceTicks(lo: number, hi: number, count = 5, cover = false): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const eps = step * 1e-9;
  const first = cover ? Math.floor((lo + eps) / step) : Math.ceil((lo - eps) / step);
  const last = cover ? Math.ceil((hi - eps) / step) : Math.floor((hi + eps) / step);
  // Integer multiples rounded through toPrecision keep 0.1 + 0.2 style noise out of the labels.
  const ticks: number[] = [];
  for (let k = first; k <= last; k++) ticks.push(Number((k * step).toPrecision(12)));
  return ticks;
}

/**
 * A y (or x) scale from data space to pixels [p0, p1]. Linear scales for bars include zero, so bar
 * lengths stay proportional to values; lines (`zero` false) get the data's own range, so a loss that
 * moves by 10 % is not drawn flat. Log scales are used by callers only for positive data that spans
 * orders of magnitude (scores, losses).
 */
function makeScale(values: number[], p0: number, p1: number, log: boolean, zero = true): Scale {
  const finite = values.filter((v) => Number.isFinite(v) && (!log || v > 0));
  if (log) {
    let lo = Math.floor(Math.log10(Math.min(...finite)));
    let hi = Math.ceil(Math.log10(Math.max(...finite)));
    if (hi === lo) { lo -= 1; hi += 1; }
    const s = ((v: number) => p0 + ((Math.log10(v) - lo) / (hi - lo)) * (p1 - p0)) as Scale;
    const step = Math.max(1, Math.ceil((hi - lo) / 6));
    s.ticks = [];
    for (let e = lo; e <= hi; e += step) s.ticks.push(10 ** e);
    s.log = true;
    return s;
  }
  let lo = Math.min(...(zero ? [0] : []), ...finite), hi = Math.max(...(zero ? [0] : []), ...finite);
  if (hi === lo) {
    const pad = lo === 0 ? 1 : Math.abs(lo) / 2;
    lo -= zero && lo === 0 ? 0 : pad;
    hi += pad;
  }
  const ticks = niceTicks(lo, hi, 5, true);
  lo = Math.min(lo, ticks[0]);
  hi = Math.max(hi, ticks[ticks.length - 1]);
  const s = ((v: number) => p0 + ((v - lo) / (hi - lo)) * (p1 - p0)) as Scale;
  s.ticks = ticks;
  s.log = false;
  return s;
}

/** Positive data spanning more than two decades reads better on a log axis. */
export function wantsLog(values: number[]): boolean {
  const finite = values.filter(Number.isFinite);
  if (!finite.length || finite.some((v) => v <= 0)) return false;
  return Math.max(...finite) / Math.min(...finite) > 100;
}

const n2 = (x: number) => Number(x.toFixed(2));

/** Extra attributes of a chart's <svg> (data-* for tests and readers). */
export type Attrs = Record<string, string | number>;

function open(chart: string, title: string, width: number, height: number, attrs: Attrs = {}): string {
  const extra = Object.entries(attrs).map(([k, v]) => ` ${k}="${esc(v)}"`).join('');
  return `<svg class="chart" data-chart="${esc(chart)}"${extra} viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(title)}"><title>${esc(title)}</title>`;
}

function yAxis(y: Scale, left: number, right: number, label: string, top: number, bottom: number): string {
  const parts = y.ticks.map((t) => {
    const py = n2(y(t));
    return `<line class="grid" x1="${left}" x2="${right}" y1="${py}" y2="${py}"/><text class="tick" x="${left - 6}" y="${py}" text-anchor="end" dominant-baseline="middle">${esc(fmt(t))}</text>`;
  });
  const mid = n2((top + bottom) / 2);
  parts.push(`<line class="axis" x1="${left}" x2="${left}" y1="${top}" y2="${bottom}"/>`);
  parts.push(`<text class="axis-label" transform="translate(14 ${mid}) rotate(-90)" text-anchor="middle">${esc(label)}${y.log ? ' (log)' : ''}</text>`);
  return parts.join('');
}

export interface Bar {
  label: string;
  /** null (a NaN or infinite value in the JSON) draws no bar but keeps the slot, marked "n/a". */
  value: number | null;
  /** Index into PALETTE (the pack, for instance). */
  colour?: number;
}

export interface BarChartSpec {
  chart: string;
  attrs?: Attrs;
  title: string;
  yLabel: string;
  bars: Bar[];
  /** Indices of bars that start a new group (a pack); a dashed line is drawn before each. */
  boundaries?: number[];
  /** Legend entries as [label, palette index]. */
  legend?: [string, number][];
  log?: boolean;
  width?: number;
  height?: number;
}

/** Vertical bars with labels under them (rotated when many). */
export function barChart(spec: BarChartSpec): string {
  const width = spec.width ?? Math.max(360, Math.min(1100, 90 + spec.bars.length * 44));
  const rotate = spec.bars.length > 8 || spec.bars.some((b) => b.label.length > 8);
  // Rotated 40°, a label of n characters (about 6 px each) reaches down about 4n px.
  const labelRoom = rotate ? 16 + 4 * Math.max(...spec.bars.map((b) => Math.min(b.label.length, 24))) : 24;
  const left = 64, right = width - 12;
  const rows = spec.legend ? legendRows(spec.legend, left, right) : 0;
  const top = 12 + rows * LEGEND_ROW;
  const bottom = top + (spec.height ?? 200);
  const height = bottom + 8 + labelRoom;
  const values = spec.bars.map((b) => b.value).filter((v): v is number => v !== null && Number.isFinite(v));
  const log = (spec.log ?? false) && values.length > 0 && values.every((v) => v > 0);
  const y = makeScale(values.length ? values : [0, 1], bottom, top, log);
  const slot = (right - left) / Math.max(1, spec.bars.length);
  const barW = n2(Math.max(2, slot * 0.7));
  const base = log ? bottom : y(0);
  const out = [open(spec.chart, spec.title, width, height, spec.attrs), yAxis(y, left, right, spec.yLabel, top, bottom)];
  spec.bars.forEach((b, i) => {
    const cx = left + slot * (i + 0.5);
    const x = n2(cx - barW / 2);
    if (b.value === null || !Number.isFinite(b.value) || (log && b.value <= 0)) {
      out.push(`<text class="na" x="${n2(cx)}" y="${n2(bottom - 4)}" text-anchor="middle">n/a</text>`);
    } else {
      const py = y(b.value);
      const y0 = n2(Math.min(py, base)), h = n2(Math.max(0.5, Math.abs(py - base)));
      out.push(`<rect class="bar" x="${x}" y="${y0}" width="${barW}" height="${h}" fill="${PALETTE[(b.colour ?? 0) % PALETTE.length]}"><title>${esc(b.label)}: ${esc(fmt(b.value))}</title></rect>`);
    }
    const ly = bottom + 12;
    out.push(rotate
      ? `<text class="bar-label" transform="translate(${n2(cx)} ${ly}) rotate(-40)" text-anchor="end">${esc(truncate(b.label, 24))}</text>`
      : `<text class="bar-label" x="${n2(cx)}" y="${ly + 4}" text-anchor="middle">${esc(truncate(b.label, 12))}</text>`);
  });
  if (!log) out.push(`<line class="axis" x1="${left}" x2="${right}" y1="${n2(base)}" y2="${n2(base)}"/>`);
  for (const k of spec.boundaries ?? []) {
    const px = n2(left + slot * k);
    out.push(`<line class="boundary" x1="${px}" x2="${px}" y1="${top}" y2="${bottom}"><title>boundary before ${esc(spec.bars[k]?.label ?? '')}</title></line>`);
  }
  if (spec.legend) out.push(legend(spec.legend, left, 10, 'rect', right));
  out.push('</svg>');
  return out.join('');
}

export interface HBarChartSpec {
  chart: string;
  attrs?: Attrs;
  title: string;
  xLabel: string;
  bars: Bar[];
  width?: number;
}

/** Horizontal bars (timings): a label on the left, the value at the end of the bar. */
export function hBarChart(spec: HBarChartSpec): string {
  const width = spec.width ?? 640;
  const rowH = 26;
  const left = 16 + 7 * Math.min(28, Math.max(4, ...spec.bars.map((b) => b.label.length)));
  const right = width - 70, top = 8, bottom = top + rowH * spec.bars.length;
  const height = bottom + 40;
  const values = spec.bars.map((b) => b.value).filter((v): v is number => v !== null && Number.isFinite(v));
  const x = makeScale(values.length ? values : [0, 1], left, right, false);
  const out = [open(spec.chart, spec.title, width, height, spec.attrs)];
  for (const t of x.ticks) {
    const px = n2(x(t));
    out.push(`<line class="grid" x1="${px}" x2="${px}" y1="${top}" y2="${bottom}"/><text class="tick" x="${px}" y="${bottom + 14}" text-anchor="middle">${esc(fmt(t))}</text>`);
  }
  spec.bars.forEach((b, i) => {
    const cy = top + rowH * (i + 0.5);
    out.push(`<text class="bar-label" x="${left - 6}" y="${n2(cy)}" text-anchor="end" dominant-baseline="middle">${esc(truncate(b.label, 28))}</text>`);
    if (b.value === null || !Number.isFinite(b.value)) return;
    const x0 = x(0), x1 = x(b.value);
    out.push(`<rect class="bar" x="${n2(Math.min(x0, x1))}" y="${n2(cy - rowH * 0.35)}" width="${n2(Math.max(0.5, Math.abs(x1 - x0)))}" height="${n2(rowH * 0.7)}" fill="${PALETTE[(b.colour ?? 0) % PALETTE.length]}"><title>${esc(b.label)}: ${esc(fmt(b.value))}</title></rect>`);
    out.push(`<text class="value" x="${n2(Math.max(x0, x1) + 4)}" y="${n2(cy)}" dominant-baseline="middle">${esc(fmt(b.value))}</text>`);
  });
  out.push(`<line class="axis" x1="${left}" x2="${left}" y1="${top}" y2="${bottom}"/>`);
  out.push(`<text class="axis-label" x="${n2((left + right) / 2)}" y="${height - 6}" text-anchor="middle">${esc(spec.xLabel)}</text>`);
  out.push('</svg>');
  return out.join('');
}

export interface Series {
  name: string;
  points: { x: number; y: number | null }[];
  colour?: number;
  dashed?: boolean;
}

export interface LineChartSpec {
  chart: string;
  attrs?: Attrs;
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** The x range drawn (default: the data's); a loss curve spans 0 to its unit's iterations. */
  xDomain?: [number, number];
  log?: boolean;
  width?: number;
  height?: number;
}

/**
 * Lines through the points of each series. On a log axis, points ≤ 0 (the AdaRound regulariser is
 * exactly 0 during its warm-up) and nulls break the line instead of being invented.
 */
export function lineChart(spec: LineChartSpec): string {
  const width = spec.width ?? 340, height = spec.height ?? 220;
  const left = 60, right = width - 10, top = spec.series.length > 1 ? 26 : 12, bottom = height - 34;
  const ys = spec.series.flatMap((s) => s.points.map((p) => p.y)).filter((v): v is number => v !== null && Number.isFinite(v));
  const log = (spec.log ?? false) && ys.some((v) => v > 0);
  const xs = spec.series.flatMap((s) => s.points.map((p) => p.x)).filter(Number.isFinite);
  const y = makeScale(ys.length ? (log ? ys.filter((v) => v > 0) : ys) : [0, 1], bottom, top, log, false);
  const x0 = spec.xDomain?.[0] ?? (xs.length ? Math.min(...xs) : 0), x1 = spec.xDomain?.[1] ?? (xs.length ? Math.max(...xs) : 1);
  const xspan = x1 > x0 ? x1 - x0 : 1;
  const px = (v: number) => left + ((v - x0) / xspan) * (right - left);
  const out = [open(spec.chart, spec.title, width, height, spec.attrs), yAxis(y, left, right, spec.yLabel, top, bottom)];
  for (const t of niceTicks(x0, x1, 4)) {
    const p = n2(px(t));
    out.push(`<text class="tick" x="${p}" y="${bottom + 14}" text-anchor="middle">${esc(fmt(t))}</text>`);
  }
  out.push(`<line class="axis" x1="${left}" x2="${right}" y1="${bottom}" y2="${bottom}"/>`);
  out.push(`<text class="axis-label" x="${n2((left + right) / 2)}" y="${height - 4}" text-anchor="middle">${esc(spec.xLabel)}</text>`);
  spec.series.forEach((s, k) => {
    let d = '';
    // A point with no drawable neighbour (a unit reported once, a gap on each side) would be an
    // invisible zero-length segment; it gets a dot instead.
    const dots: string[] = [];
    const colour = PALETTE[(s.colour ?? k) % PALETTE.length];
    const ok = s.points.map((p) => p.y !== null && Number.isFinite(p.y) && Number.isFinite(p.x) && (!log || p.y > 0));
    s.points.forEach((p, i) => {
      if (!ok[i]) return;
      const cx = n2(px(p.x)), cy = n2(y(p.y as number));
      d += `${i > 0 && ok[i - 1] ? 'L' : 'M'}${cx} ${cy}`;
      if (!(i > 0 && ok[i - 1]) && !ok[i + 1]) dots.push(`<circle class="point" cx="${cx}" cy="${cy}" r="3" fill="${colour}"><title>${esc(s.name)} at ${esc(fmt(p.x))}: ${esc(fmt(p.y as number))}</title></circle>`);
    });
    out.push(`<path class="series" data-series="${esc(s.name)}" d="${d}" fill="none" stroke="${colour}" stroke-width="1.8"${s.dashed ? ' stroke-dasharray="5 3"' : ''}><title>${esc(s.name)}</title></path>`, ...dots);
  });
  if (spec.series.length > 1) out.push(legend(spec.series.map((s, k) => [s.name, s.colour ?? k]), left, 12, 'line'));
  out.push('</svg>');
  return out.join('');
}

const LEGEND_ROW = 16;
/** Width of a legend entry, estimated from its length (10.5 px text; there is no layout engine here). */
const entryWidth = (label: string) => 30 + 6.2 * label.length;

/** Rows a legend needs between x and right. */
function legendRows(items: [string, number][], x: number, right: number): number {
  let rows = 1, cx = x;
  for (const [label] of items) {
    if (cx > x && cx + entryWidth(label) > right) { rows++; cx = x; }
    cx += entryWidth(label);
  }
  return rows;
}

/** Swatches and labels from (x, y), wrapping onto new rows at `right`. */
function legend(items: [string, number][], x: number, y: number, mark: 'rect' | 'line', right = Infinity): string {
  let cx = x, cy = y;
  const parts = items.map(([label, c]) => {
    if (cx > x && cx + entryWidth(label) > right) { cx = x; cy += LEGEND_ROW; }
    const colour = PALETTE[c % PALETTE.length];
    const sw = mark === 'rect'
      ? `<rect x="${n2(cx)}" y="${cy - 5}" width="10" height="10" fill="${colour}"/>`
      : `<line x1="${n2(cx)}" x2="${n2(cx + 14)}" y1="${cy}" y2="${cy}" stroke="${colour}" stroke-width="2"/>`;
    const text = `<text class="legend" x="${n2(cx + 18)}" y="${cy}" dominant-baseline="middle">${esc(label)}</text>`;
    cx += entryWidth(label);
    return sw + text;
  });
  return `<g class="legend">${parts.join('')}</g>`;
}

/**
 * Shortens a node name to n characters for an axis label, keeping its end (the distinctive part of
 * "/layer1/layer1.0/conv1/Conv") and dropping whole leading path segments where it can. The full
 * name stays in the mark's <title> and in the tables.
 */
export function truncate(s: string, n: number): string {
  if (s.length <= n) return s;
  const parts = s.split('/');
  for (let k = 1; k < parts.length; k++) {
    const tail = `…/${parts.slice(k).join('/')}`;
    if (tail.length <= n) return tail;
  }
  return `…${s.slice(s.length - n + 1)}`;
}
