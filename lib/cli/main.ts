/**
 * The packptq command. Each subcommand parses and checks its options, calls the library, and prints
 * either human-readable lines or (with --json) exactly one JSON object on stdout.
 *
 * Exit codes: 0 success; 1 the work failed (bad model, bad data, unsupported op, ...); 2 the
 * command line itself is wrong (unknown command or option, bad option value).
 */
import { Command, CommanderError } from 'commander';
import { PackPtqError } from '../errors';
import { registerEval } from './eval';
import { registerInspect } from './inspect';
import { registerQuantize } from './quantize';
import { registerAnalyze } from './analyze';
import { registerReport } from './report';
import { registerBench } from './bench';
import { registerExport } from './export';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export function buildProgram(): Command {
  const program = new Command('packptq')
    .description('Post-training quantization of ONNX models on CPU (Pack-PTQ, BRECQ, QDrop, AdaRound).')
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', `
Exit codes: 0 success; 1 the work failed; 2 bad usage (unknown option, bad value, [BAD_OPTION]).

Examples:
  packptq inspect test/fixtures/resnet20.onnx
  packptq quantize test/fixtures/resnet20.onnx --calib test/fixtures/calib-1024-images-idx3-ubyte.gz --mean 0.2860 --std 0.3530 --w-bits 4 --a-bits 4 --out w4a4.onnx
  packptq bench test/fixtures/resnet20.onnx --json
  packptq <command> --help`);
  registerEval(program);
  registerInspect(program);
  registerQuantize(program);
  registerAnalyze(program);
  registerReport(program);
  registerBench(program);
  registerExport(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return EXIT_OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit "successfully" through the same path.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT_OK;
      return EXIT_USAGE;
    }
    if (err instanceof PackPtqError) {
      process.stderr.write(`packptq: ${err.message} [${err.code}]\n`);
      return err.code === 'BAD_OPTION' ? EXIT_USAGE : EXIT_FAILED;
    }
    process.stderr.write(`packptq: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    return EXIT_FAILED;
  }
}
