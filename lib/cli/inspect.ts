/** `packptq inspect`: the graph after the canonicalising passes, and its discovered structure. */
import { Command } from 'commander';
import { Model } from '../engine/model';
import { summarize } from '../graph/summary';

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('Show a model after the graph passes: ops, parameters, MACs, shapes, blocks, stem and head layers')
    .argument('<model>', 'ONNX model file')
    .option('--split', 'one block per transformer residual (attention, MLP) instead of one per transformer block')
    .option('--blocks <prefix,...>', 'define blocks yourself by node-name prefix (comma-separated)', (v: string) => v.split(',').filter(Boolean))
    .option('--raw', 'show the graph as decoded, without the passes')
    .option('--json', 'print one JSON object: {ops, params, macs, inputs, outputs, blocks, stem, head, ...}')
    .addHelpText('after', `
Examples:
  packptq inspect test/fixtures/resnet20.onnx
  packptq inspect vit.onnx --split --json`)
    .action((file: string, o: { split?: boolean; blocks?: string[]; raw?: boolean; json?: boolean }) => {
      const model = Model.load(file, { raw: o.raw });
      const s = summarize(model.graph, { split: o.split, blockPrefixes: o.blocks });
      const blocks = s.structure.blocks.map((b) => ({ name: b.name, layers: b.layers, input: b.input, output: b.output, found: b.found }));
      if (o.json) {
        process.stdout.write(JSON.stringify({
          model: file, ops: s.ops, nodes: s.nodes, params: s.params, macs: s.macs, inputs: s.inputs, outputs: s.outputs,
          blocks, stem: s.structure.stem, head: s.structure.head, between: s.structure.between, layers: s.layers,
        }) + '\n');
        return;
      }
      const out: string[] = [];
      out.push(`model     ${file}`);
      out.push(`nodes     ${s.nodes}   params ${s.params.toLocaleString('en-US')}   MACs/sample ${s.macs.toLocaleString('en-US')}`);
      for (const v of s.inputs) out.push(`input     ${v.name} [${v.shape.join(',')}]`);
      for (const v of s.outputs) out.push(`output    ${v.name} [${v.shape.join(',')}]`);
      out.push(`ops       ${Object.entries(s.ops).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}×${v}`).join(' ')}`);
      const macsOf = new Map(s.layers.map((l) => [l.name, l]));
      const layerLine = (name: string) => {
        const l = macsOf.get(name)!;
        return `${l.op.padEnd(6)} ${name}${l.weightShape ? `  w[${l.weightShape.join(',')}]` : '  (activation × activation)'}  ${(l.macs / 1e6).toFixed(2)}M MACs`;
      };
      out.push(`stem      ${s.structure.stem.length} layer(s)`);
      for (const l of s.structure.stem) out.push(`  ${layerLine(l)}`);
      out.push(`blocks    ${s.structure.blocks.length}`);
      s.structure.blocks.forEach((b, k) => {
        out.push(`  [${k}] ${b.name}  (${b.found}, ${b.layers.length} layers)`);
        for (const l of b.layers) out.push(`      ${layerLine(l)}`);
      });
      if (s.structure.between.length) {
        out.push(`other     ${s.structure.between.length} layer(s) between blocks`);
        for (const l of s.structure.between) out.push(`  ${layerLine(l)}`);
      }
      out.push(`head      ${s.structure.head.length} layer(s)`);
      for (const l of s.structure.head) out.push(`  ${layerLine(l)}`);
      if (!s.structure.blocks.length) {
        out.push(`units     no blocks found: every layer is its own unit (${s.structure.units.length})`);
        for (const u of s.structure.units) if (u.kind === 'layer') out.push(`  ${layerLine(u.layer)}`);
      }
      process.stdout.write(out.join('\n') + '\n');
    });
}
