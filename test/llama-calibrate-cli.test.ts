/**
 * `capibara calibrate --model DIR --text FILE`: captures on a Llama-family model, writes the
 * pattern files with a progress bar; the pattern loads back into LlamaDecoder.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeadPattern, LlamaDecoder } from '../src/index';
import { makeTinyHfModel } from '../scripts/make-tiny-model.mjs';

const root = resolve(__dirname, '..');
const capibara = (...args: string[]) => {
  const r = spawnSync(process.execPath, [resolve(root, 'lib/cli/capibara.js'), ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

let dir: string;
let modelDir: string;
let textFile: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'capibara-llama-cli-'));
  ({ dir: modelDir } = (await makeTinyHfModel(join(dir, 'tiny'), {})) as { dir: string });
  textFile = join(dir, 'text.txt');
  writeFileSync(textFile, 'The capybara is the largest rodent in the world. It lives near rivers and lakes in South America. '.repeat(4));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('capibara calibrate --model', () => {
  it('captures q, k, v on the model, scores the heads and writes the pattern files', async () => {
    const out = join(dir, 'pattern');
    const r = capibara('calibrate', '--model', modelDir, '--text', textFile, '--out', out, '--sink', '4', '--recent', '8', '--ratio', '0.5', '--threads', '1');
    expect(r.code).toBe(0);
    const d = await LlamaDecoder.load(modelDir, { threads: 1 });
    const n = d.encode(readFileSync(textFile, 'utf8')).length + 1; // + BOS
    const pattern = await HeadPattern.load(out, { modelConfig: modelDir });
    expect(r.stdout).toBe(
      `capibara calibrate: 2 samples, ${2 * (n - 12)} query positions scored (output-error); 2 of 4 KV heads are retrieval heads (per layer: ${pattern.retrievalHeads(0).length}, ${pattern.retrievalHeads(1).length}); saved ${out}/full_attention_heads.tsv and config.json (sink 4, recent 8)\n`,
    );
    expect(r.stderr).toMatch(/^calibrate \[\.+\] 0\/2 /);
    expect(r.stderr).toMatch(/\ncalibrate \[#+\] 2\/2 /);
    // The same scores as the API on the same text.
    const api = await d.calibrate([readFileSync(textFile, 'utf8')], { retrievalRatio: 0.5, sink: 4, recent: 8 });
    expect(Array.from(pattern.retrieval)).toEqual(Array.from(api.pattern.retrieval));
    await d.close();
    const duo = await LlamaDecoder.load(modelDir, { headPattern: out, threads: 1 });
    expect([duo.sink, duo.recent, duo.headPattern.retrievalCount]).toEqual([4, 8, 2]);
    await duo.close();
  });

  it('exits 1 naming the problem, 2 for a bad command line', () => {
    const short = join(dir, 'short.txt');
    writeFileSync(short, 'Too short.');
    const r = capibara('calibrate', '--model', modelDir, '--text', short, '--out', join(dir, 'x'), '--sink', '4', '--recent', '8');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('capibara calibrate: Expected more than sink + recent = 12 tokens in texts[0] but received 8: no position loses keys to the window\n');
    const missing = capibara('calibrate', '--model', join(dir, 'none'), '--text', short, '--out', join(dir, 'x'));
    expect([missing.code, missing.stderr]).toEqual([1, `capibara calibrate: LlamaDecoder.load: model folder ${join(dir, 'none')} does not exist\n`]);
    expect(capibara('calibrate', '--model', modelDir, '--out', join(dir, 'x')).stderr).toContain('calibrate --model needs --text FILE');
    expect(capibara('calibrate', 'a.safetensors', '--model', modelDir, '--text', short, '--out', 'x').stderr).toContain('calibrate takes capture files or --model DIR --text FILE, not both');
    expect(capibara('calibrate', '--out', 'x').code).toBe(2);
  });
});
