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

const COMMANDS = ['serve', 'bench', 'demo', 'calibrate', 'memory', 'think'];

describe('capibara CLI', () => {
  it('--help lists every subcommand; --version prints the package version', () => {
    const help = capibara('--help');
    expect(help.code).toBe(0);
    expect(help.stdout.startsWith('Usage: capibara [options] [command]\n')).toBe(true);
    for (const c of COMMANDS) expect(help.stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
    const { version } = JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as { version: string };
    expect(capibara('--version')).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
  });

  it.each([
    ['serve', ['--model <dir>', '--config <file>', '--max-queue <n>', '--max-prompts <n>', '--headers-timeout <ms>', '--request-timeout <ms>']],
    ['bench', ['[filters...]', '--quick']],
    ['demo', ['--config <file>', '--max-tokens <n>', '--json']],
    ['calibrate', ['[captures...]', '--model <dir>', '--text <files...>', '--out <dir>', '--sink <n>', '--recent <n>', '--ratio <r>', '--method <m>']],
    ['memory', ['import', 'query']],
    ['think', ['<problem>', '--rounds <n>', '--mode <mode>', '--base-url <url>', '--store <file>']],
  ])('%s --help describes its options', (command, expected) => {
    const r = capibara(command, '--help');
    expect(r.code).toBe(0);
    expect(r.stdout.startsWith(`Usage: capibara ${command} `)).toBe(true);
    for (const e of expected) expect(r.stdout).toContain(e);
  });

  it('memory import --help and memory query --help', () => {
    expect(capibara('memory', 'import', '--help').stdout).toContain('--chunk-chars <n>');
    expect(capibara('memory', 'query', '--help').stdout).toContain('--top-k <n>');
  });

  it('the package declares the command, with a shebang', () => {
    const pkg = JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    expect(pkg.bin).toEqual({ capibara: './lib/cli/capibara.js' });
    expect(readFileSync(resolve(root, 'lib/cli/capibara.js'), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });

  it.each([
    [[], 'missing command', 'capibara'],
    [['frobnicate'], "unknown command 'frobnicate'", 'capibara'],
    [['serve'], 'serve needs --model DIR or --config FILE', 'capibara serve'],
    [['serve', '--model', '.', '--config', 'x.json'], 'serve takes --model DIR or --config FILE, not both', 'capibara serve'],
    [['serve', 'extra', '--model', '.'], "too many arguments for 'serve'. Expected 0 arguments but got 1.", 'capibara serve'],
    [['serve', '--model', 'no/such/folder'], '--model: no folder at no/such/folder', 'capibara serve'],
    [['serve', '--model', 'package.json'], '--model: no folder at package.json', 'capibara serve'],
    [['serve', '--model', '.', '--port', 'http'], "Expected integer in [0, 65535] for --port but received 'http' of type string", 'capibara serve'],
    [['serve', '--model', '.', '--port', '65536'], 'Expected integer in [0, 65535] for --port but received 65536 of type number', 'capibara serve'],
    [['serve', '--model', '.', '--threads', '0'], 'Expected integer in [1, 256] for --threads but received 0 of type number', 'capibara serve'],
    [['serve', '--model', '.', '--max-queue=-1'], 'Expected integer in [0, 1000000] for --max-queue but received -1 of type number', 'capibara serve'],
    [['serve', '--model', '.', '--max-queue', '1.5'], "Expected integer in [0, 1000000] for --max-queue but received '1.5' of type string", 'capibara serve'],
    [['serve', '--model', '.', '--name', ''], "Expected non-empty string for --name but received '' of type string", 'capibara serve'],
    [['serve', '--model', '.', '--max-prompts', '0'], 'Expected integer in [1, 1000000] for --max-prompts but received 0 of type number', 'capibara serve'],
    [['serve', '--model', '.', '--max-request-tokens', 'lots'], "Expected integer in [1, 2147483647] for --max-request-tokens but received 'lots' of type string", 'capibara serve'],
    [['serve', '--modle', '.'], "unknown option '--modle'\n(Did you mean --model?)", 'capibara serve'],
    [['serve', '--model'], "option '--model <dir>' argument missing", 'capibara serve'],
    [['memory'], 'memory needs a subcommand', 'capibara memory'],
    [['memory', 'query', 'x'], 'memory needs --db FILE (the MemAgent SQLite file)', 'capibara memory query'],
    [['calibrate', 'a.safetensors'], 'calibrate needs --out DIR', 'capibara calibrate'],
    [['calibrate', 'a.safetensors', '--out', 'o', '--ratio', '1.5'], 'Expected number in [0, 1] for --ratio but received 1.5 of type number', 'capibara calibrate'],
    [['think'], "missing required argument 'problem'", 'capibara think'],
    [['think', 'q', '--mode', 'sleepy'], "Expected one of 'analytical', 'creative', 'critical', 'intuitive', 'systematic', 'adaptive' for --mode but received 'sleepy' of type string", 'capibara think'],
    [['think', 'q', '--base-url', 'http://x'], '--base-url and --remote-model go together', 'capibara think'],
    [['demo', '--max-tokens', '0'], 'Expected integer in [1, 4096] for --max-tokens but received 0 of type number', 'capibara demo'],
  ])('exit 2 with the reason and the usage on stderr: %j', (args, reason, usage) => {
    const r = capibara(...args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.startsWith(`capibara: ${reason}\n\nUsage: ${usage} `)).toBe(true);
  });
});
