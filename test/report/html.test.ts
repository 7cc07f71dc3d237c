/**
 * The HTML run report, from real runs of the command: a short Pack-PTQ run with mixed precision and
 * an rtn run on the shipped ResNet-20. The page's structure is checked against the JSON report it
 * was drawn from; then headless Chromium lays it out and screenshots it, and the charts must be
 * there, inside the page, with marks of the sizes the data says (bar heights in proportion to the
 * scores) and pixels actually painted in each chart's colours.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { cli } from '../helpers/cli';
import { shipped } from '../helpers/fixtures';
import { RunReport, renderHtmlReport } from '../../lib/report/html';

const MODEL = shipped('resnet20.onnx');
const CALIB = shipped('calib-1024-images-idx3-ubyte.gz');
const EVAL = shipped('test-2000-images-idx3-ubyte.gz');
const NORM = ['--mean', '0.2860', '--std', '0.3530'];
const SHORT = ['--calib-size', '64', '--iters', '20', '--eval-limit', '300', '--threads', '2', '--quiet'];
const CHROMIUM = '/usr/bin/chromium';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'packptq-html-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const t = (name: string) => path.join(tmp, name);

let packJson: RunReport, packHtml: string, rtnJson: RunReport, rtnHtml: string;

beforeAll(() => {
  const a = cli(['quantize', MODEL, '--calib', CALIB, '--eval', EVAL, ...NORM, ...SHORT, '--method', 'packptq',
    '--w-bits', '3', '--a-bits', '3', '--mixed-precision', '--score-form', 'release', '--report', t('pack.json'), '--html', t('pack.html')]);
  expect(a.stderr).toBe('');
  expect(a.code).toBe(0);
  packJson = JSON.parse(fs.readFileSync(t('pack.json'), 'utf8'));
  packHtml = fs.readFileSync(t('pack.html'), 'utf8');
  const b = cli(['quantize', MODEL, '--calib', CALIB, '--eval', EVAL, ...NORM, ...SHORT, '--method', 'rtn', '--w-bits', '4', '--a-bits', '4', '--equalize', '--report', t('rtn.json')]);
  expect(b.code).toBe(0);
  const c = cli(['report', t('rtn.json'), '--out', t('rtn.html')]);
  expect(c.stderr).toBe('');
  expect(c.code).toBe(0);
  rtnJson = JSON.parse(fs.readFileSync(t('rtn.json'), 'utf8'));
  rtnHtml = fs.readFileSync(t('rtn.html'), 'utf8');
}, 300000);

/** The <svg> element of one chart (the first one with that data-chart). */
function chart(html: string, id: string): string {
  const m = new RegExp(`<svg class="chart" data-chart="${id}"[^>]*>[\\s\\S]*?</svg>`).exec(html);
  if (!m) throw new Error(`no chart ${id}`);
  return m[0];
}
const count = (s: string, re: RegExp) => (s.match(re) ?? []).length;

describe('structure, against the JSON report', () => {
  test('quantize --html and `packptq report` on its --report file give the same page', () => {
    const r = cli(['report', t('pack.json'), '--out', t('pack-again.html')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('pack-again.html');
    expect(fs.readFileSync(t('pack-again.html'), 'utf8')).toBe(packHtml);
    // Without --out the page goes beside the JSON file.
    fs.copyFileSync(t('pack.json'), t('copy.json'));
    expect(cli(['report', t('copy.json')]).code).toBe(0);
    expect(fs.readFileSync(t('copy.html'), 'utf8')).toBe(packHtml);
  });

  test('self-contained: no script, no link, nothing fetched, and a policy forbidding fetches', () => {
    for (const html of [packHtml, rtnHtml]) {
      expect(html).toMatch(/^<!DOCTYPE html>/);
      expect(html).not.toMatch(/<script|<link|<img|<iframe|\bsrc=|\bhref=|url\(|@import|https?:/i);
      expect(html).toContain(`content="default-src 'none'; style-src 'unsafe-inline'"`);
    }
  });

  test('summary: method, target and effective bits, accuracies, sizes and time from the run', () => {
    const acc = packJson.accuracy!;
    // ResNet-20 W3A3 after 20 iterations: an accuracy was measured on the 300 samples asked for.
    expect(acc.samples).toBe(300);
    expect(packHtml).toContain(`${(100 * acc.fp!).toFixed(2)}% → ${(100 * acc.quantized!).toFixed(2)}%`);
    expect(packHtml).toContain('>W3A3<');
    expect(packHtml).toContain(`W ${packJson.size.avgWeightBits.toFixed(2)} · A ${packJson.size.avgActBits.toFixed(2)}`);
    expect(packHtml).toContain(`${packJson.size.fpWeightBytes.toLocaleString('en-US')} → ${packJson.size.weightBytes.toLocaleString('en-US')} bytes`);
    expect(packHtml).toContain(`${(packJson.size.fpWeightBytes / packJson.size.weightBytes).toFixed(2)}× smaller`);
    for (const phase of ['calibrate', 'score', 'reconstruct', 'evaluate']) expect(Object.keys(packJson.times)).toContain(phase);
  });

  test('block scores: a bar per block of ResNet-20 (9), coloured by pack, a boundary where each later pack starts', () => {
    const p = packJson.pack!;
    expect(p.scores).toHaveLength(9); // resnet20's 9 residual blocks (README, `packptq inspect`)
    // With the release's score form this run splits into several packs (seeded, so always the same).
    expect(p.packs.length).toBeGreaterThan(1);
    for (const id of ['scores', 'omega']) {
      const svg = chart(packHtml, id);
      const finite = p.scores.filter((s) => (id === 'scores' ? s.score : s.omega) !== null).length;
      expect(count(svg, /<rect class="bar"/g)).toBe(finite);
      expect(count(svg, /<line class="boundary"/g)).toBe(p.packs.length - 1);
      for (const s of p.scores) expect(svg).toContain(`${s.block}: `);
    }
    // Each later pack's first block is named in a boundary's title.
    const svg = chart(packHtml, 'scores');
    for (const pk of p.packs.slice(1)) expect(svg).toContain(`<title>boundary before ${p.scores[pk[0]].block}</title>`);
  });

  test('bits per pack and per layer', () => {
    const p = packJson.pack!;
    expect(p.bits).toHaveLength(p.packs.length);
    const packBits = chart(packHtml, 'pack-bits');
    expect(count(packBits, /<rect class="bar"/g)).toBe(p.packs.length);
    p.bits!.forEach((b, k) => expect(packBits).toContain(`pack ${k} [${p.packs[k].join(',')}]: ${b}</title>`));
    const layerBits = chart(packHtml, 'layer-bits');
    const weighted = packJson.layers.filter((l) => l.wBits !== null);
    expect(count(layerBits, /<rect class="bar"/g)).toBe(weighted.length);
    for (const l of weighted) expect(layerBits).toContain(`${l.name}: ${l.wBits}</title>`);
  });

  test('one loss chart per reconstructed unit, with a vertex per curve point (a dot when there is one)', () => {
    expect(packJson.units.length).toBeGreaterThan(0);
    const charts = packHtml.match(/<svg class="chart" data-chart="loss"[\s\S]*?<\/svg>/g)!;
    expect(charts).toHaveLength(packJson.units.length);
    packJson.units.forEach((u, k) => {
      expect(charts[k]).toContain(`data-unit-index="${k}"`);
      const d = /<path class="series" data-series="reconstruction loss" d="([^"]*)"/.exec(charts[k])![1];
      const drawable = u.curve.filter((c) => c.recLoss !== null && c.recLoss > 0).length;
      expect(drawable).toBe(u.curve.length);
      expect(count(d, /[ML]/g)).toBe(drawable);
      expect(count(charts[k], /<circle class="point"/g)).toBe(drawable === 1 ? 1 : 0);
    });
  });

  test('rtn: no scores, packs or loss curves, and the page says why', () => {
    expect(rtnJson.pack).toBeNull();
    expect(rtnJson.units).toHaveLength(0);
    expect(rtnHtml).not.toMatch(/data-chart="(scores|omega|pack-bits|loss)"/);
    expect(rtnHtml).toMatch(/data-omitted="scores">No scores or packs: method rtn does not score blocks/);
    expect(rtnHtml).toMatch(/data-omitted="units">No loss curves: method rtn rounds/);
    expect(rtnHtml).toMatch(/data-omitted="pack-bits">/);
    expect(rtnHtml).toContain('>W4A4<');
    expect(count(chart(rtnHtml, 'layer-bits'), /<rect class="bar"/g)).toBe(rtnJson.layers.filter((l) => l.wBits !== null).length);
    expect(count(chart(rtnHtml, 'times'), /<rect class="bar"/g)).toBeGreaterThanOrEqual(2);
  });

  test('--equalize: the JSON lists each rescaled pair with its spreads, and the page shows them; without it, no section', () => {
    const e = rtnJson.equalization!;
    expect(e.alpha).toBe(1);
    expect(e.links).toHaveLength(9);
    for (const l of e.links) expect(l.spreadAfter!).toBeLessThan(l.spreadBefore!);
    const table = rtnHtml.slice(rtnHtml.indexOf('data-table="equalization"'));
    expect(count(table.slice(0, table.indexOf('</table>')), /<tr><td>/g)).toBe(9);
    expect(rtnHtml).toContain(e.links[0].producer);
    expect(packJson.equalization).toBeUndefined();
    expect(packHtml).not.toContain('id="equalization"');
  });

  test('names are escaped, and NaN scores (null in JSON) render as n/a', () => {
    const evil: RunReport = JSON.parse(JSON.stringify(packJson));
    evil.model = '<script>alert(1)</script>.onnx';
    evil.pack!.scores[0].block = '"><img src=x onerror=alert(2)>';
    evil.pack!.scores[1].score = null;
    evil.units[0].name = '</svg><script>x</script>';
    const html = renderHtmlReport(evil);
    expect(html).not.toMatch(/<script|<img/i);
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;.onnx');
    expect(html).toContain('&quot;&gt;&lt;img src=x onerror=alert(2)&gt;');
    expect(count(chart(html, 'scores'), /<rect class="bar"/g)).toBe(8);
    expect(chart(html, 'scores')).toContain('>n/a</text>');
  });
});

describe('command-line failures leave no file behind', () => {
  function expectFailure(args: string[], code: string, mention: string, out: string): void {
    const r = cli(args);
    expect(r.signal).toBeNull();
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`[${code}]`);
    expect(lines[0]).toContain(mention);
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(path.dirname(out)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  }

  test('a missing report file', () => {
    expectFailure(['report', t('absent.json'), '--out', t('absent.html')], 'IO', 'absent.json', t('absent.html'));
  });

  test('a file that is not JSON, and JSON that is not a run report', () => {
    fs.writeFileSync(t('truncated.json'), fs.readFileSync(t('pack.json'), 'utf8').slice(0, 500));
    expectFailure(['report', t('truncated.json'), '--out', t('truncated.html')], 'BAD_DATA', 'truncated.json is not valid JSON', t('truncated.html'));
    fs.writeFileSync(t('other.json'), JSON.stringify({ model: 'm.onnx', method: 'rtn', size: { avgWeightBits: 4 }, layers: [] }));
    expectFailure(['report', t('other.json'), '--out', t('other.html')], 'BAD_DATA', 'other.json is not a packptq run report', t('other.html'));
    fs.writeFileSync(t('array.json'), '[1,2]');
    expectFailure(['report', t('array.json'), '--out', t('array.html')], 'BAD_DATA', 'array.json is not a packptq run report', t('array.html'));
  });

  test('an output folder that does not exist', () => {
    const out = path.join(tmp, 'no-such-dir', 'run.html');
    const r = cli(['report', t('pack.json'), '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot write .*no-such-dir\/run\.html.*\[IO\]/);
    expect(fs.existsSync(path.dirname(out))).toBe(false);
  });

  test('--help shows examples', () => {
    const r = cli(['report', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain('packptq report run.json --out run.html');
    expect(cli(['quantize', '--help']).stdout).toContain('--html <file>');
  });
});

/** Runs chromium headless on a file; returns stdout. Sandbox off because tests may run as root. */
function chromium(args: string[], file: string): string {
  const profile = fs.mkdtempSync(path.join(tmp, 'chromium-profile-'));
  const r = spawnSync(CHROMIUM, [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--hide-scrollbars', '--force-device-scale-factor=1',
    `--user-data-dir=${profile}`, ...args, `file://${file}`,
  ], { encoding: 'utf8', timeout: 120000, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`chromium exited ${r.status} (${r.signal}): ${r.stderr.slice(-2000)}`);
  return r.stdout;
}

interface Measured {
  page: { width: number; height: number };
  charts: {
    chart: string; unit: string | null; x: number; y: number; w: number; h: number;
    bars: { w: number; h: number; x: number; y: number; fill: string; title: string }[];
    series: { name: string; length: number; w: number; h: number; stroke: string }[];
    points: { w: number; h: number }[];
  }[];
}

/**
 * The page as Chromium lays it out: a copy of the report with a measuring script appended (the
 * report itself has none, and its policy forbids scripts, so the copy allows inline ones). The
 * script writes its findings into the DOM, which --dump-dom prints.
 */
function measure(html: string, name: string): Measured {
  const script = `<script>
const r = (e) => e.getBoundingClientRect();
const out = { page: { width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight }, charts: [] };
for (const svg of document.querySelectorAll('svg.chart')) {
  const b = r(svg);
  out.charts.push({ chart: svg.dataset.chart, unit: svg.dataset.unitIndex ?? null, x: b.x + scrollX, y: b.y + scrollY, w: b.width, h: b.height,
    bars: [...svg.querySelectorAll('rect.bar')].map((e) => { const q = r(e); return { x: q.x + scrollX, y: q.y + scrollY, w: q.width, h: q.height, fill: getComputedStyle(e).fill, title: e.querySelector('title').textContent }; }),
    series: [...svg.querySelectorAll('path.series')].map((e) => { const q = r(e); return { name: e.dataset.series, length: e.getTotalLength(), w: q.width, h: q.height, stroke: getComputedStyle(e).stroke }; }),
    points: [...svg.querySelectorAll('circle.point')].map((e) => { const q = r(e); return { w: q.width, h: q.height }; }) });
}
const pre = document.createElement('pre'); pre.id = 'measured'; pre.textContent = encodeURIComponent(JSON.stringify(out)); document.body.append(pre);
</script>`;
  const file = t(`${name}-measure.html`);
  fs.writeFileSync(file, html.replace("default-src 'none'", "default-src 'none'; script-src 'unsafe-inline'").replace('</body>', `${script}</body>`));
  const dom = chromium(['--window-size=1280,1000', '--dump-dom'], file);
  const m = /<pre id="measured">([^<]*)<\/pre>/.exec(dom);
  if (!m) throw new Error(`the measuring script left no result; chromium printed ${dom.length} characters`);
  return JSON.parse(decodeURIComponent(m[1]));
}

const rgb = (css: string) => css.match(/\d+/g)!.slice(0, 3).map(Number);

/** Pixels of the screenshot inside a box that have colour c (±12 per channel). */
async function pixelsOf(png: { data: Buffer; width: number; height: number }, box: { x: number; y: number; w: number; h: number }, c: number[]): Promise<number> {
  let n = 0;
  for (let y = Math.max(0, Math.floor(box.y)); y < Math.min(png.height, Math.ceil(box.y + box.h)); y++)
    for (let x = Math.max(0, Math.floor(box.x)); x < Math.min(png.width, Math.ceil(box.x + box.w)); x++) {
      const i = 3 * (y * png.width + x);
      if (Math.abs(png.data[i] - c[0]) <= 12 && Math.abs(png.data[i + 1] - c[1]) <= 12 && Math.abs(png.data[i + 2] - c[2]) <= 12) n++;
    }
  return n;
}

describe('in headless Chromium', () => {
  const present = fs.existsSync(CHROMIUM);
  if (!present) console.warn(`SKIPPED: ${CHROMIUM} is absent (apt-get install chromium); the HTML report is not checked in a browser`);
  const it = present ? test : test.skip;

  it('every chart is laid out inside the page, bars and lines have size, bar heights follow the scores', () => {
    const m = measure(packHtml, 'pack');
    const ids = m.charts.map((c) => c.chart);
    for (const id of ['scores', 'omega', 'pack-bits', 'layer-bits', 'times', 'unit-times']) expect(ids).toContain(id);
    expect(ids.filter((c) => c === 'loss')).toHaveLength(packJson.units.length);
    for (const c of m.charts) {
      expect(c.w).toBeGreaterThan(200);
      expect(c.h).toBeGreaterThan(100);
      expect(c.x).toBeGreaterThanOrEqual(0);
      expect(c.x + c.w).toBeLessThanOrEqual(1280);
      for (const b of c.bars) {
        expect(b.w).toBeGreaterThan(0);
        expect(b.h).toBeGreaterThan(0);
        // Inside its chart.
        expect(b.x).toBeGreaterThanOrEqual(c.x - 0.5);
        expect(b.y + b.h).toBeLessThanOrEqual(c.y + c.h + 0.5);
      }
    }
    // Loss lines: the x axis runs from 0 to the unit's iterations over the plot (the chart less 60 px
    // of y axis on the left and 10 px on the right), so a line is as wide as its iterations' share.
    // A unit reported once is a dot.
    for (const c of m.charts.filter((x) => x.chart === 'loss')) {
      const u = packJson.units[Number(c.unit)];
      const rec = c.series.find((s) => s.name === 'reconstruction loss')!;
      const iters = u.curve.map((p) => p.iter);
      if (u.curve.length === 1) {
        expect(c.points).toHaveLength(1);
        expect(c.points[0].w).toBeGreaterThan(4);
        continue;
      }
      expect(c.points).toHaveLength(0);
      expect(rec.length).toBeGreaterThan(20);
      expect(Math.abs(rec.w - ((Math.max(...iters) - Math.min(...iters)) / u.iters) * (c.w - 70))).toBeLessThan(2);
    }
    // Bar heights in the browser against the values in the JSON: proportional on a linear axis,
    // in the same order on a log axis.
    const scores = m.charts.find((c) => c.chart === 'scores')!;
    const values = packJson.pack!.scores.map((s) => s.score!);
    const log = Math.min(...values) > 0 && Math.max(...values) / Math.min(...values) > 100;
    for (let i = 0; i < values.length; i++)
      for (let j = 0; j < values.length; j++) {
        if (log) { if (values[i] > values[j]) expect(scores.bars[i].h).toBeGreaterThan(scores.bars[j].h); }
        else if (values[i] > 0 && values[j] > 0) expect(scores.bars[i].h / scores.bars[j].h).toBeCloseTo(values[i] / values[j], 1);
      }
    // Pack bits: heights proportional to the bits (a linear axis from 0).
    const pb = m.charts.find((c) => c.chart === 'pack-bits')!;
    const bits = packJson.pack!.bits!;
    pb.bars.forEach((b, k) => expect(b.h / pb.bars[0].h).toBeCloseTo(bits[k] / bits[0], 2));
  });

  it('a screenshot shows each chart painted in its colours', async () => {
    const sharp = require('sharp');
    const m = measure(packHtml, 'pack-shot');
    const height = Math.min(16000, Math.ceil(m.page.height));
    const shot = t('pack.png');
    chromium([`--window-size=1280,${height}`, `--screenshot=${shot}`], t('pack.html'));
    const { data, info } = await sharp(shot).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const png = { data, width: info.width, height: info.height };
    expect(png.width).toBe(1280);
    for (const c of m.charts.filter((x) => x.y + x.h <= height)) {
      for (const b of c.bars) {
        // The inner area of every bar is painted in its fill colour.
        const inner = { x: b.x + 1, y: b.y + 1, w: b.w - 2, h: b.h - 2 };
        if (inner.w < 1 || inner.h < 1) continue;
        const area = Math.floor(inner.w) * Math.floor(inner.h);
        expect(await pixelsOf(png, inner, rgb(b.fill))).toBeGreaterThanOrEqual(0.8 * area);
      }
      // A 1.8 px line paints about one pixel of exactly its colour per pixel of length where it runs
      // straight, fewer on steep zigzags (anti-aliasing blends the rest): ask for 0.4 per pixel,
      // still far above the zero of an undrawn line. A dot of radius 3 paints about 20.
      for (const s of c.series) expect(await pixelsOf(png, c, rgb(s.stroke))).toBeGreaterThanOrEqual(s.length > 0 ? 0.4 * s.length : 0.4 * Math.PI * 9);
    }
    // Not a blank page: a real share of it is neither white nor nearly so.
    let ink = 0;
    for (let i = 0; i < data.length; i += 3) if (data[i] + data[i + 1] + data[i + 2] < 600) ink++;
    expect(ink / (png.width * png.height)).toBeGreaterThan(0.01);
  });
});
