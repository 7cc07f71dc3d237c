/** `packptq report`: renders a JSON run report (quantize --report) as a self-contained HTML page. */
import * as path from 'path';
import { Command } from 'commander';
import { readRunReport, writeHtmlReport } from '../report/html';

export interface ReportCliOptions { out?: string }

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('Render a JSON run report (written by quantize --report) as one self-contained HTML page: summary, block scores and packs, bits, loss curves, timings')
    .argument('<run.json>', 'JSON run report')
    .option('--out <file>', 'HTML file to write (default: the report\'s name with .html)')
    .addHelpText('after', `
The page has inline CSS and SVG charts only (no scripts, nothing fetched), so it opens offline.

Examples:
  packptq quantize test/fixtures/resnet20.onnx --calib test/fixtures/calib-1024-images-idx3-ubyte.gz \\
      --mean 0.2860 --std 0.3530 --w-bits 3 --a-bits 3 --method packptq --report run.json
  packptq report run.json --out run.html`)
    .action((file: string, o: ReportCliOptions) => {
      const out = o.out ?? defaultOut(file);
      writeHtmlReport(out, readRunReport(file));
      process.stdout.write(`wrote        ${out}\n`);
    });
}

/** run.json → run.html beside it; a name without .json gets .html appended. */
function defaultOut(file: string): string {
  const ext = path.extname(file);
  return ext.toLowerCase() === '.json' ? file.slice(0, -ext.length) + '.html' : `${file}.html`;
}
