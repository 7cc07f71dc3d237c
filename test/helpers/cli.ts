/** Runs the real packptq command in a child process, as a user would. */
import { spawnSync } from 'child_process';
import * as path from 'path';
import { ROOT } from './fixtures';

export interface CliResult { code: number | null; stdout: string; stderr: string; signal: NodeJS.Signals | null }

export function cli(args: string[], env: Record<string, string> = {}): CliResult {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'packptq.js'), ...args], {
    encoding: 'utf8', env: { ...process.env, ...env }, cwd: ROOT, timeout: 300000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, signal: r.signal };
}
