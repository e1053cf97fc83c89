import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OnnxCausalLM, OpenAICompatibleGenerator } from '../src/index';
import { makeTinyModel } from '../scripts/make-tiny-model.mjs';

// The real thing end to end: `capibara serve` (the built CLI, a child process) serving the tiny
// ONNX model on 127.0.0.1, read by OpenAICompatibleGenerator over HTTP, checked against the
// same model run in this process.
const root = resolve(__dirname, '..');
let dir: string;
let child: ChildProcess;
let url: string;
let local: OnnxCausalLM;
let client: OpenAICompatibleGenerator;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'capibara-serve-onnx-'));
  const { dir: modelDir } = await makeTinyModel(join(dir, 'tiny'));
  local = await OnnxCausalLM.load(modelDir, { threads: 1 });
  child = spawn(process.execPath, [resolve(root, 'lib/cli/capibara.js'), 'serve', '--model', modelDir, '--port', '0', '--threads', '1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  url = await new Promise<string>((done, fail) => {
    let out = '';
    let err = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c;
      const m = /on (http:\/\/127\.0\.0\.1:\d+)\n/.exec(out);
      if (m) done(m[1]!);
    });
    child.stderr!.on('data', (c: Buffer) => (err += c));
    child.once('exit', (code) => fail(new Error(`capibara serve exited with ${code}: ${err}`)));
  });
  client = new OpenAICompatibleGenerator({ baseURL: url, model: 'tiny', timeoutMs: 10_000 });
}, 30_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  await local?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('capibara serve with the tiny ONNX model', () => {
  it('lists the model named after its folder', async () => {
    const body = (await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ id: string }> };
    expect(body.data.map((m) => m.id)).toEqual(['tiny']);
  });

  it('gives, streaming or not, what the model gives in process', async () => {
    for (const opts of [{ temperature: 0 }, { temperature: 0.9, seed: 4 }, { temperature: 1, topP: 0.8, seed: 11 }]) {
      const want = await local.generate('The capybara', { maxTokens: 20, ...opts });
      const plain = await client.generate('The capybara', { maxTokens: 20, ...opts });
      const pieces: string[] = [];
      const streamed = await client.generate('The capybara', { maxTokens: 20, ...opts, onToken: (p) => pieces.push(p) });
      for (const r of [plain, streamed]) {
        expect(r.text).toBe(want.text);
        expect(r.tokens).toBe(want.tokens);
        expect(r.finishReason).toBe(want.finishReason);
      }
      expect(pieces.join('')).toBe(want.text);
    }
  });

  it('cuts at stop strings as the model does, and counts the tokens it generated', async () => {
    const full = await local.generate('The model reads', { maxTokens: 30, temperature: 0 });
    const stop = full.text.slice(8, 10);
    const want = await local.generate('The model reads', { maxTokens: 30, temperature: 0, stop: [stop] });
    for (const onToken of [undefined, () => undefined]) {
      const r = await client.generate('The model reads', { maxTokens: 30, temperature: 0, stop: [stop], ...(onToken ? { onToken } : {}) });
      expect(r).toMatchObject({ text: want.text, tokens: want.tokens, finishReason: 'stop', stopSequence: stop });
    }
  });

  it('reports usage with the prompt as the model ran it (BOS included)', async () => {
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', prompt: 'The capybara', max_tokens: 5, temperature: 0 }),
    });
    const body = (await res.json()) as { usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } };
    expect(body.usage).toEqual({ prompt_tokens: 1 + local.countTokens('The capybara'), completion_tokens: 5, total_tokens: 6 + local.countTokens('The capybara') });
    expect(await client.countTokens('The capybara 🦫')).toBe(local.countTokens('The capybara 🦫'));
  });

  it('samples without a seed (every unseeded request failed with a 500 before the fix)', async () => {
    for (const onToken of [undefined, () => undefined]) {
      const r = await client.generate('The capybara', { maxTokens: 12, temperature: 0.7, ...(onToken ? { onToken } : {}) });
      expect(r.tokens).toBeGreaterThan(0);
    }
  });

  it('answers the log-probabilities the model gives in process, streaming or not', async () => {
    for (const opts of [{ temperature: 0 }, { temperature: 0.9, seed: 4 }]) {
      const want = await local.generate('The capybara', { maxTokens: 12, logprobs: true, ...opts });
      for (const onToken of [undefined, () => undefined]) {
        const r = await client.generate('The capybara', { maxTokens: 12, logprobs: true, ...opts, ...(onToken ? { onToken } : {}) });
        expect(r.text).toBe(want.text);
        expect(r.logprobs).toHaveLength(want.tokens);
        r.logprobs!.forEach((x, i) => expect(x).toBeCloseTo(want.logprobs![i]!, 9));
      }
    }
  });

  it('answers a bad request with 400, and keeps serving', async () => {
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', prompt: [1, 99999], max_tokens: 5 }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/99999/);
    expect((await client.generate('ok', { maxTokens: 2 })).tokens).toBe(2);
  });
});
