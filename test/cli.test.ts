import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// The built command, as npm links it: `npm test` rebuilds lib/ first.
const root = resolve(__dirname, '..');
const capibara = (...args: string[]) => {
  const r = spawnSync(process.execPath, [resolve(root, 'lib/cli/capibara.js'), ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, CAPIBARA_API_KEY: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

describe('capibara CLI', () => {
  it('--help prints the usage; --version the package version', () => {
    const help = capibara('--help');
    expect(help.code).toBe(0);
    expect(help.stdout.startsWith('Usage:\n  capibara serve --model DIR [options]')).toBe(true);
    expect(help.stdout).toContain('--max-queue N');
    expect(help.stdout).toContain('--max-prompts N');
    expect(capibara('serve', '-h').stdout).toBe(help.stdout);
    const { version } = JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as { version: string };
    expect(capibara('--version')).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
  });

  it('the package declares the command, with a shebang', () => {
    const pkg = JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    expect(pkg.bin).toEqual({ capibara: './lib/cli/capibara.js' });
    expect(readFileSync(resolve(root, 'lib/cli/capibara.js'), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });

  it.each([
    [[], 'missing command'],
    [['frobnicate'], "unknown command 'frobnicate'"],
    [['serve', 'extra', '--model', '.'], "unexpected argument 'extra'"],
    [['serve'], 'serve needs --model DIR'],
    [['serve', '--model', 'no/such/folder'], '--model: no folder at no/such/folder'],
    [['serve', '--model', 'package.json'], '--model: no folder at package.json'],
    [['serve', '--model', '.', '--port', 'http'], "Expected integer in [0, 65535] for --port but received 'http' of type string"],
    [['serve', '--model', '.', '--port', '65536'], 'Expected integer in [0, 65535] for --port but received 65536 of type number'],
    [['serve', '--model', '.', '--threads', '0'], 'Expected integer in [1, 256] for --threads but received 0 of type number'],
    [['serve', '--model', '.', '--max-queue=-1'], 'Expected integer in [0, 1000000] for --max-queue but received -1 of type number'],
    [['serve', '--model', '.', '--max-queue', '1.5'], "Expected integer in [0, 1000000] for --max-queue but received '1.5' of type string"],
    [['serve', '--model', '.', '--name', ''], "Expected non-empty string for --name but received '' of type string"],
    [['serve', '--model', '.', '--max-prompts', '0'], 'Expected integer in [1, 1000000] for --max-prompts but received 0 of type number'],
    [['serve', '--model', '.', '--max-request-tokens', 'lots'], "Expected integer in [1, 2147483647] for --max-request-tokens but received 'lots' of type string"],
  ])('exit 2 with the reason and the usage on stderr: %j', (args, reason) => {
    const r = capibara(...args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.startsWith(`capibara: ${reason}\n\nUsage:\n`)).toBe(true);
  });

  it('exit 2 for an unknown option or a missing value (node:util parseArgs)', () => {
    for (const args of [['serve', '--modle', '.'], ['serve', '--model']]) {
      const r = capibara(...args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^capibara: .*'--(modle|model)/);
      expect(r.stderr).toContain('\n\nUsage:\n');
    }
  });
});
