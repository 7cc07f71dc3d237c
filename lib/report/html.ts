/**
 * The HTML run report: one self-contained page drawn from the JSON run report (lib/report/json.ts)
 * — summary, Pack-PTQ's block scores and packs, bits per pack and per layer, each unit's loss curve,
 * and timings. Inline CSS and inline SVG only, no script, and a Content-Security-Policy that forbids
 * fetching anything, so the file can be mailed, archived or opened offline and shows the same thing.
 *
 * The renderer reads only what JSON carries (it is the same for `quantize --html` and for
 * `packptq report run.json` on the written file), and tolerates what JSON turns NaN and Infinity
 * into (null). Sections a method does not produce (scores and packs outside packptq, loss curves
 * for rtn) are replaced by a sentence saying why.
 */
import * as fs from 'fs';
import * as path from 'path';
import { BadDataError, IoError } from '../errors';
import { PALETTE, barChart, esc, fmt, hBarChart, lineChart, wantsLog } from './svg';

/** The parts of the JSON run report the page reads (buildReport writes more). */
export interface RunReport {
  packptq?: string;
  date?: string;
  model: string;
  command?: string;
  method: string;
  options?: Record<string, unknown>;
  accuracy?: { fp: number | null; quantized: number | null; samples: number | null };
  size: { avgWeightBits: number; avgActBits: number; weightBytes: number; fpWeightBytes: number };
  layers: { name: string; op: string; wBits: number | null; excluded: boolean; actInputs: string[] }[];
  activations?: { tensor: string; bits: number; consumers: string[] }[];
  pack?: {
    scores: { block: string; index: number; loss: number | null; score: number | null; omega: number | null }[];
    form: string;
    packs: number[][];
    bits?: number[];
    budgetBits?: number;
    budgetActBits?: number;
    mpRule?: string;
  } | null;
  units: { name: string; kind: string; layers: string[]; iters: number; seconds: number; lossStart: number | null; lossEnd: number | null; curve: { iter: number; recLoss: number | null; regLoss: number | null }[] }[];
  times: Record<string, number>;
  seconds: number;
  /** Present when the run used --equalize. */
  equalization?: { alpha: number; links: { producer: string; consumer: string; channels: number; spreadBefore: number | null; spreadAfter: number | null; deadChannels: number }[] };
}

/**
 * Checks that parsed JSON is a run report before rendering it, so a wrong file fails with one
 * message naming it and the missing field, not with a TypeError half-way through the page.
 */
export function checkRunReport(data: unknown, file: string): RunReport {
  const fail = (what: string) => new BadDataError(`${file} is not a packptq run report (written by quantize --report): ${what}`);
  if (data === null || typeof data !== 'object' || Array.isArray(data)) throw fail('expected a JSON object');
  const r = data as Record<string, unknown>;
  const isObj = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (typeof r.model !== 'string') throw fail('"model" is missing or not a string');
  if (typeof r.method !== 'string') throw fail('"method" is missing or not a string');
  if (!isObj(r.size) || typeof (r.size as Record<string, unknown>).avgWeightBits !== 'number') throw fail('"size.avgWeightBits" is missing');
  if (!Array.isArray(r.layers)) throw fail('"layers" is missing or not an array');
  if (!Array.isArray(r.units)) throw fail('"units" is missing or not an array');
  for (const u of r.units as unknown[]) if (!isObj(u) || !Array.isArray((u as Record<string, unknown>).curve)) throw fail('a unit without a "curve" array');
  if (!isObj(r.times)) throw fail('"times" is missing or not an object');
  if (typeof r.seconds !== 'number') throw fail('"seconds" is missing or not a number');
  if (r.pack !== undefined && r.pack !== null) {
    const p = r.pack as Record<string, unknown>;
    if (!isObj(p) || !Array.isArray(p.scores) || !Array.isArray(p.packs)) throw fail('"pack" needs "scores" and "packs" arrays');
  }
  return data as RunReport;
}

/** Reads and checks a JSON run report: IoError when unreadable, BadDataError when not a report. */
export function readRunReport(file: string): RunReport {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new IoError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new BadDataError(`${file} is not valid JSON: ${(err as Error).message}`);
  }
  return checkRunReport(data, file);
}

/** Renders and writes the page through a temporary file and a rename (no partial file ever). */
export function writeHtmlReport(file: string, report: RunReport): void {
  const html = renderHtmlReport(report);
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, html);
    fs.renameSync(tmp, file);
  } catch (err) {
    try { fs.rmSync(tmp, { force: true }); } catch { /* nothing to clean */ }
    throw new IoError(`cannot write ${file}: ${(err as Error).message}`, { cause: err });
  }
}

const signed = (x: number) => `${x < 0 ? '−' : '+'}${Math.abs(x).toFixed(2)}`;
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const pct = (x: number | null | undefined) => (x === null || x === undefined ? 'n/a' : `${(100 * x).toFixed(2)}%`);
const bytes = (n: number) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(2)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);
const secs = (s: number | null) => (s === null ? 'n/a' : s >= 100 ? `${s.toFixed(0)} s` : s >= 1 ? `${s.toFixed(1)} s` : `${(s * 1000).toFixed(0)} ms`);

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d2330;background:#fff;margin:0;padding:24px 32px;max-width:1180px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dce4;padding-bottom:4px}h3{font-size:14px;margin:14px 0 6px}
.meta{color:#5a6272;font-size:12px;word-break:break-all}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:10px;margin:12px 0}
.card{border:1px solid #d8dce4;border-radius:6px;padding:8px 12px}.card .k{color:#5a6272;font-size:12px}.card .v{font-size:18px;font-weight:600}.card .s{color:#5a6272;font-size:12px}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0}th,td{border-bottom:1px solid #e6e9ef;padding:3px 10px 3px 0;text-align:left;vertical-align:top}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.note{background:#f4f6fa;border-left:3px solid #9aa3b5;padding:6px 10px;margin:8px 0;color:#3b4252}
.multiples{display:flex;flex-wrap:wrap;gap:8px 24px}.curves figure{width:340px}
figure{margin:6px 0}figcaption{font-size:12px;color:#5a6272;max-width:1100px}
svg.chart{display:block;max-width:100%;height:auto;background:#fff}
svg .grid{stroke:#eceff4}svg .axis{stroke:#5a6272}svg .tick,svg .bar-label,svg .legend,svg .value,svg .na{font-size:10.5px;fill:#3b4252}
svg .axis-label{font-size:11px;fill:#5a6272}svg .boundary{stroke:#d55e00;stroke-width:1.5;stroke-dasharray:4 3}
svg .series{stroke-linejoin:round}
details pre{font-size:12px;background:#f4f6fa;padding:8px;overflow:auto}
.pack-swatch{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:baseline}
`;

/** The whole page as one string. Pure: the same report gives the same bytes. */
export function renderHtmlReport(report: RunReport): string {
  const r = report;
  const opt = r.options ?? {};
  const title = `packptq run report: ${path.basename(r.model)}, ${r.method}`;
  const body = [
    `<h1>${esc(title)}</h1>`,
    `<div class="meta">${esc(r.model)}${r.date ? ` · ${esc(r.date)}` : ''}${r.packptq ? ` · packptq ${esc(r.packptq)}` : ''}</div>`,
    r.command ? `<div class="meta">command: <code>packptq ${esc(r.command)}</code></div>` : '',
    summarySection(r, opt),
    equalizationSection(r),
    scoresSection(r),
    bitsSection(r),
    unitsSection(r),
    timesSection(r),
    `<h2 id="options">Options</h2><details><summary>All options of the run</summary><pre>${esc(JSON.stringify(opt, null, 1))}</pre></details>`,
  ];
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="packptq${r.packptq ? ` ${esc(r.packptq)}` : ''}">
<title>${esc(title)}</title>
<style>${CSS}</style></head>
<body>
${body.filter(Boolean).join('\n')}
</body></html>
`;
}

function card(section: string, key: string, value: string, sub = ''): string {
  return `<div class="card" data-summary="${esc(section)}"><div class="k">${esc(key)}</div><div class="v">${value}</div>${sub ? `<div class="s">${sub}</div>` : ''}</div>`;
}

function summarySection(r: RunReport, opt: Record<string, unknown>): string {
  const wBits = num(opt.wBits), aBits = num(opt.aBits);
  const fp = num(r.accuracy?.fp), q = num(r.accuracy?.quantized), samples = num(r.accuracy?.samples);
  const fpBytes = num(r.size.fpWeightBytes), qBytes = num(r.size.weightBytes);
  const phases = Object.entries(r.times).map(([k, v]) => `${esc(k)} ${esc(secs(num(v)))}`).join(' · ');
  const cards = [
    card('method', 'method', esc(r.method), [
      typeof opt.init === 'string' ? `init ${esc(opt.init)}` : '',
      typeof opt.firstLast === 'string' ? `first/last layer ${esc(opt.firstLast)}` : '',
      r.pack ? `${esc(r.pack.form)} score` : '',
    ].filter(Boolean).join(' · ')),
    card('target-bits', 'target bits', wBits !== null && aBits !== null ? `W${wBits}A${aBits}` : 'n/a',
      r.pack?.bits ? `mixed precision, budget ${esc(fmt(r.pack.budgetBits ?? NaN))} average weight bits` : ''),
    card('effective-bits', 'effective average bits', `W ${esc(r.size.avgWeightBits.toFixed(2))} · A ${esc(num(r.size.avgActBits)?.toFixed(2) ?? 'n/a')}`,
      'weights: averaged over parameters; activations: over quantizers'),
    card('accuracy', 'top-1 accuracy, FP → quantized', `${pct(fp)} → ${pct(q)}`,
      fp !== null && q !== null ? `${signed(100 * (q - fp))} points${samples !== null ? `, ${samples} samples` : ''}` : 'no evaluation set given (--eval)'),
    card('size', 'weights, FP32 → quantized', fpBytes !== null && qBytes !== null ? `${bytes(fpBytes)} → ${bytes(qBytes)}` : 'n/a',
      fpBytes && qBytes ? `${(fpBytes / qBytes).toFixed(2)}× smaller (${fpBytes.toLocaleString('en-US')} → ${qBytes.toLocaleString('en-US')} bytes)` : ''),
    card('time', 'total time', esc(secs(num(r.seconds))), phases),
  ];
  return `<h2 id="summary">Summary</h2><div class="cards">${cards.join('')}</div>`;
}

/** --equalize's layer pairs: how far apart the channels' ranges were before and after. */
function equalizationSection(r: RunReport): string {
  const e = r.equalization;
  if (!e) return '';
  const head = `<h2 id="equalization">Equalization</h2><p>Before quantizing, ${e.links.length} layer pairs were rescaled (alpha ${esc(fmt(e.alpha))}): the FP model is unchanged, and each activation between a pair has its channels' ranges brought together. Spread = largest / smallest channel range on the calibration set.</p>`;
  if (!e.links.length) return `${head}<p>No Conv/Gemm/MatMul pair is joined only by ReLU or pooling in this model: nothing was rescaled.</p>`;
  const rows = e.links.map((l) => `<tr><td>${esc(l.producer)}</td><td>${esc(l.consumer)}</td><td class="n">${l.channels}</td><td class="n">${esc(fmtOrNa(l.spreadBefore))}</td><td class="n">${esc(fmtOrNa(l.spreadAfter))}</td><td class="n">${l.deadChannels}</td></tr>`);
  return `${head}<table data-table="equalization"><thead><tr><th>layer A (output channels ÷ s)</th><th>layer B (input channels × s)</th><th>channels</th><th>spread before</th><th>spread after</th><th>never active</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

/** Pack index of every block, from the packs' block lists. */
function packOfBlock(r: RunReport): Map<number, number> {
  const m = new Map<number, number>();
  r.pack?.packs.forEach((p, k) => { for (const b of p) m.set(b, k); });
  return m;
}

function scoresSection(r: RunReport): string {
  const head = '<h2 id="scores">Block scores and packs</h2>';
  if (!r.pack) {
    const why = r.method === 'packptq'
      ? 'the model has no blocks (no residual structure was found), so every layer is its own unit and there is nothing to score or pack.'
      : `method ${esc(r.method)} does not score blocks; only --method packptq computes the Hessian-guided scores S<sub>b</sub>, Ω<sub>b</sub> and groups blocks into packs.`;
    return `${head}<p class="note" data-omitted="scores">No scores or packs: ${why}</p>`;
  }
  const p = r.pack;
  const packOf = packOfBlock(r);
  const starts = p.packs.map((pk) => pk[0]).filter((b) => b > 0);
  const legend: [string, number][] = p.packs.map((pk, k) => [`pack ${k}${p.bits ? ` (${p.bits[k]} bit)` : ''}`, k]);
  const bars = (field: 'score' | 'omega') => p.scores.map((s) => ({ label: s.block, value: num(s[field]), colour: packOf.get(s.index) ?? 0 }));
  const chart = (id: string, name: string, field: 'score' | 'omega') => {
    const b = bars(field);
    return barChart({ chart: id, title: `${name} per block, coloured by pack; dashed lines mark where a pack starts`, yLabel: name, bars: b, boundaries: starts, legend, log: wantsLog(b.map((x) => x.value ?? NaN)) });
  };
  const rows = p.scores.map((s) => {
    const k = packOf.get(s.index);
    return `<tr><td class="n">${s.index}</td><td>${esc(s.block)}</td><td class="n">${esc(fmtOrNa(s.loss))}</td><td class="n">${esc(fmtOrNa(s.score))}</td><td class="n">${esc(fmtOrNa(s.omega))}</td><td>${k === undefined ? '' : `<span class="pack-swatch" style="background:${PALETTE[k % PALETTE.length]}"></span>${k}`}</td></tr>`;
  });
  return `${head}
<p>S<sub>b</sub> = (L<sub>b</sub> − E[gᵀΔz]) / (½E‖Δz‖²), the paper's Hessian-guided score of block b's output when only b is quantized (${esc(p.form)} form); Ω<sub>b</sub> = S<sub>b</sub>·E|Δz| its sensitivity, which mixed precision uses. A pack starts at every block whose score is below all scores before it: ${esc(p.packs.length)} pack${p.packs.length === 1 ? '' : 's'}, ${p.packs.map((pk) => `[${pk.join(',')}]`).join(' ')}.</p>
<div class="multiples"><figure>${chart('scores', 'score S', 'score')}<figcaption>Block score S<sub>b</sub>.</figcaption></figure>
<figure>${chart('omega', 'sensitivity Ω', 'omega')}<figcaption>Block sensitivity Ω<sub>b</sub>.</figcaption></figure></div>
<table data-table="scores"><thead><tr><th class="n">#</th><th>block</th><th class="n">L<sub>b</sub> (KL)</th><th class="n">S<sub>b</sub></th><th class="n">Ω<sub>b</sub></th><th>pack</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function fmtOrNa(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : fmt(v);
}

function bitsSection(r: RunReport): string {
  const parts = ['<h2 id="bits">Bits per pack and per layer</h2>'];
  const p = r.pack;
  if (p?.bits) {
    parts.push(`<p>Pack-level mixed precision (${esc(p.mpRule ?? 'exact')} rule) under a budget of ${esc(fmt(p.budgetBits ?? NaN))} average weight bits${p.budgetActBits !== undefined && p.budgetActBits !== null ? ` and ${esc(fmt(p.budgetActBits))} activation bits` : ''}; each pack's weights and activations share its width.</p>`);
    parts.push(`<figure>${barChart({ chart: 'pack-bits', title: 'bits of each pack', yLabel: 'bits', bars: p.bits.map((b, k) => ({ label: `pack ${k} [${p.packs[k]?.join(',') ?? ''}]`, value: b, colour: k })) })}<figcaption>Bits per pack.</figcaption></figure>`);
  } else {
    const why = p ? 'this packptq run used one width for every pack (no --mixed-precision).' : `method ${esc(r.method)} has no packs; widths come from --w-bits/--a-bits, --first-last and --layer-bits.`;
    parts.push(`<p class="note" data-omitted="pack-bits">No bits per pack: ${why}</p>`);
  }
  // Activation bits of a layer: the widths of the quantizers on its data inputs.
  const actBits = new Map<string, number>();
  for (const a of r.activations ?? []) actBits.set(a.tensor, a.bits);
  const unitOf = new Map<string, number>();
  r.units.forEach((u, k) => { for (const l of u.layers) unitOf.set(l, k); });
  const withWeights = r.layers.filter((l) => l.wBits !== null);
  if (withWeights.length) {
    const coloured = r.units.length > 0;
    parts.push(`<figure>${barChart({
      chart: 'layer-bits', title: 'weight bits of each layer', yLabel: 'weight bits',
      bars: withWeights.map((l) => ({ label: l.name, value: l.wBits, colour: coloured ? unitOf.get(l.name) ?? 0 : 0 })),
    })}<figcaption>Weight bits per layer${coloured ? ', coloured by reconstruction unit (the order of the loss curves below)' : ''}.</figcaption></figure>`);
  }
  const rows = r.layers.map((l) => {
    const a = l.actInputs.map((t) => actBits.get(t)).filter((b): b is number => b !== undefined);
    return `<tr><td>${esc(l.name)}</td><td>${esc(l.op)}</td><td class="n">${l.excluded ? 'FP (excluded)' : l.wBits ?? '—'}</td><td class="n">${a.length ? esc(a.join(', ')) : '—'}</td></tr>`;
  });
  parts.push(`<details><summary>All ${r.layers.length} layers</summary><table data-table="layers"><thead><tr><th>layer</th><th>op</th><th class="n">W bits</th><th class="n">input A bits</th></tr></thead><tbody>${rows.join('')}</tbody></table></details>`);
  return parts.join('\n');
}

function unitsSection(r: RunReport): string {
  const head = '<h2 id="units">Reconstruction</h2>';
  if (!r.units.length) {
    const why = r.method === 'rtn'
      ? 'method rtn rounds every weight to nearest after calibration; nothing is reconstructed, so there are no loss curves.'
      : 'the run reconstructed no unit.';
    return `${head}<p class="note" data-omitted="units">No loss curves: ${why}</p>`;
  }
  const charts = r.units.map((u, k) => {
    const rec = u.curve.map((c) => ({ x: c.iter, y: num(c.recLoss) }));
    const ys = rec.map((p) => p.y ?? NaN).filter(Number.isFinite);
    // The regulariser is not drawn: it is often 10-100× the reconstruction loss and would flatten
    // its curve; its last value is in the table.
    const svg = lineChart({
      chart: 'loss', attrs: { 'data-unit-index': k }, title: `unit ${k}: ${u.name}`, xLabel: 'iteration', yLabel: 'reconstruction loss',
      series: [{ name: 'reconstruction loss', points: rec, colour: 0 }], xDomain: [0, Math.max(1, num(u.iters) ?? 1)], log: wantsLog(ys),
    });
    return `<figure data-unit="${esc(u.name)}">${svg}<figcaption>${k}. ${esc(u.kind)} ${esc(u.name)}: ${esc(u.layers.length)} layer${u.layers.length === 1 ? '' : 's'}, ${esc(u.iters)} iterations</figcaption></figure>`;
  });
  const rows = r.units.map((u, k) => `<tr><td class="n">${k}</td><td>${esc(u.kind)}</td><td>${esc(u.name)}</td><td class="n">${esc(u.layers.length)}</td><td class="n">${esc(u.iters)}</td><td class="n">${esc(secs(num(u.seconds)))}</td><td class="n">${esc(fmtOrNa(u.lossStart))}</td><td class="n">${esc(fmtOrNa(u.lossEnd))}</td><td class="n">${esc(fmtOrNa(u.curve[u.curve.length - 1]?.regLoss))}</td></tr>`);
  return `${head}
<p>${r.units.length} unit${r.units.length === 1 ? '' : 's'} reconstructed in network order. Each chart shows the reconstruction loss ‖f(x̃) − y<sub>fp</sub>‖² (the mean over each progress report, so a short unit may have a single point); the AdaRound rounding regulariser's last value is in the table.</p>
<div class="multiples curves">${charts.join('')}</div>
<table data-table="units"><thead><tr><th class="n">#</th><th>kind</th><th>unit</th><th class="n">layers</th><th class="n">iterations</th><th class="n">time</th><th class="n">loss start</th><th class="n">loss end</th><th class="n">regulariser at end</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

const UNIT_KINDS = ['layer', 'block', 'pack'];

function timesSection(r: RunReport): string {
  const phases = Object.entries(r.times).map(([k, v]) => ({ label: k, value: num(v) }));
  const accounted = phases.reduce((a, p) => a + (p.value ?? 0), 0);
  const total = num(r.seconds);
  // Planning, block discovery and the graph passes are not timed as phases; show them as the rest.
  if (total !== null && total - accounted > 0.0005) phases.push({ label: 'other (planning, graph work)', value: total - accounted });
  const bars = phases.map((p, k) => ({ ...p, colour: k }));
  // A pack's name is "pack[1..4] first … last"; its range is enough on an axis.
  const unitBars = r.units.map((u, k) => ({ label: `${k}. ${u.kind === 'pack' ? u.name.split(' ')[0] : u.name}`, value: num(u.seconds), colour: UNIT_KINDS.indexOf(u.kind) }));
  return `<h2 id="times">Timings</h2>
<figure>${hBarChart({ chart: 'times', title: 'seconds per phase', xLabel: 'seconds', bars })}<figcaption>Seconds per phase; total ${esc(secs(total))}.</figcaption></figure>
${unitBars.length ? `<figure>${hBarChart({ chart: 'unit-times', title: 'seconds per reconstruction unit', xLabel: 'seconds', bars: unitBars, width: 760 })}<figcaption>Reconstruction seconds per unit (colour: layer, block or pack).</figcaption></figure>` : ''}`;
}
