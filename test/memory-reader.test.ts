import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { type GenerateResult, type Generator, OnnxCausalLM, type OnnxGenerateResult } from '../src/llm/index';
import {
  MEMAGENT_NO_MEMORY,
  MemAgentReader,
  type MemAgentReaderOptions,
  type ReaderStep,
  memAgentAnswerPrompt,
  memAgentMemoryPrompt,
} from '../src/memory/reader';
import { rng } from './support/random';
import { type Script, ScriptedGenerator } from './support/scripted-generator';
import { makeTinyModel } from '../scripts/make-tiny-model.mjs';

// The fake tokenizer is one token per code point, so every count below is a string length.
const Q = 'Where is the key?';
const FACT = 'The key is under the mat.';

/** Memory and section of a default memory prompt (or memory only, for the answer prompt). */
function parts(prompt: string): { memory: string; section?: string } {
  const memory = /<memory>\n([\s\S]*)\n<\/memory>/.exec(prompt)![1]!;
  const section = /<section>\n([\s\S]*)\n<\/section>/.exec(prompt)?.[1];
  return section === undefined ? { memory } : { memory, section };
}

/**
 * A reader model: each memory update writes the facts it saw (memory or section) as `KEY=<where>`,
 * or `nothing yet (n)` counting the chunks read; the answer repeats what the memory says.
 */
const reader: Script = (prompt) => {
  const { memory, section } = parts(prompt);
  if (section === undefined) return `Therefore, the answer is ${/KEY=(\w+)/.exec(memory)?.[1] ?? 'unknown'}`;
  if (/key is under the (\w+)/.test(section)) return `KEY=${/key is under the (\w+)/.exec(section)![1]}`;
  if (memory.startsWith('KEY=')) return memory;
  const n = Number(/\((\d+)\)/.exec(memory)?.[1] ?? 0);
  return `nothing yet (${n + 1})`;
};

/** The generator without encode/decode: chunks are then cut at whitespace with countTokens. */
function untokenized(g: Generator, countTokens = (t: string) => g.countTokens(t)): Generator {
  return { generate: (p, o) => g.generate(p, o), countTokens };
}

const filler = (n: number, c = 'x') => c.repeat(n);

describe('MemAgentReader: the reading loop', () => {
  it('carries a fact planted in chunk 2 through memory overwrites to the answer', async () => {
    const gen = new ScriptedGenerator(reader);
    // Chunks of 100 tokens: the fact sits wholly inside chunk index 1.
    const doc = filler(120) + FACT + filler(155);
    expect(doc.length).toBe(300);
    const steps: ReaderStep[] = [];
    const r = await new MemAgentReader({ generator: gen, chunkTokens: 100, memoryTokens: 64, answerMaxTokens: 40 })
      .read(doc, Q, { onStep: (s) => void steps.push(s) });

    expect(r.answer).toBe('Therefore, the answer is mat');
    expect(r.memory).toBe('KEY=mat');
    expect(r.chunks).toBe(3);
    expect(r.steps).toEqual(steps);
    expect(steps.map((s) => [s.kind, s.chunk, s.chunkTokens, s.memoryBefore, s.memoryAfter, s.tokens, s.finishReason, s.truncated])).toEqual([
      ['memory', 0, 100, MEMAGENT_NO_MEMORY, 'nothing yet (1)', 15, 'eos', false],
      ['memory', 1, 100, 'nothing yet (1)', 'KEY=mat', 7, 'eos', false],
      ['memory', 2, 100, 'KEY=mat', 'KEY=mat', 7, 'eos', false],
      ['answer', 3, 0, 'KEY=mat', 'KEY=mat', 28, 'eos', false],
    ]);
    expect(steps[3]!.answer).toBe(r.answer);
    expect(steps.slice(0, 3).every((s) => s.answer === undefined)).toBe(true);

    // Each prompt is exactly the paper's template over the exact chunk and the previous output
    // alone: the memory is replaced, never appended to.
    expect(gen.calls.map((c) => c.prompt)).toEqual([
      memAgentMemoryPrompt(Q, MEMAGENT_NO_MEMORY, doc.slice(0, 100)),
      memAgentMemoryPrompt(Q, 'nothing yet (1)', doc.slice(100, 200)),
      memAgentMemoryPrompt(Q, 'KEY=mat', doc.slice(200, 300)),
      memAgentAnswerPrompt(Q, 'KEY=mat'),
    ]);
    expect(gen.calls.map((c) => c.options)).toEqual([{ maxTokens: 64 }, { maxTokens: 64 }, { maxTokens: 64 }, { maxTokens: 40 }]);
    expect(r.generatedTokens).toBe(15 + 7 + 7 + 28);
    // encode is present, so prompts are counted (on their own, with countTokens).
    expect(steps.map((s) => s.promptTokens)).toEqual(gen.calls.map((c) => Array.from(c.prompt).length));
    expect(r.promptTokens).toBe(gen.calls.reduce((a, c) => a + c.prompt.length, 0));
  });

  it('uses the MemAgent prompt wording with <problem>, <memory> and <section> parts', () => {
    expect(memAgentMemoryPrompt('P', 'M', 'S')).toBe(
      'You are presented with a problem, a section of an article that may contain the answer to the problem, and a previous memory. '
      + 'Please read the provided section carefully and update the memory with the new information that helps to answer the problem. '
      + 'Be sure to retain all relevant details from the previous memory while adding any new, useful information.\n\n'
      + '<problem> \nP\n</problem>\n\n<memory>\nM\n</memory>\n\n<section>\nS\n</section>\n\nUpdated memory:\n',
    );
    expect(memAgentAnswerPrompt('P', 'M')).toBe(
      'You are presented with a problem and a previous memory. Please answer the problem based on the previous memory '
      + 'and format your response as follows "Therefore, the answer is (insert answer here)".\n\n'
      + '<problem> \nP\n</problem>\n\n<memory>\nM\n</memory>\n\nYour answer:\n',
    );
    expect(MEMAGENT_NO_MEMORY).toBe('No previous memory');
  });

  it('keeps a memory cut at memoryTokens, flags it, and passes sampling options', async () => {
    const gen = new ScriptedGenerator((p) => (parts(p).section === undefined ? 'the answer is long' : 'abcdefghij'));
    const r = await new MemAgentReader({ generator: gen, chunkTokens: 10, memoryTokens: 4, answerMaxTokens: 6, temperature: 0.5, seed: 7 })
      .read(filler(25), Q);
    expect(r.steps.map((s) => [s.memoryAfter, s.finishReason, s.truncated])).toEqual([
      ['abcd', 'length', true], ['abcd', 'length', true], ['abcd', 'length', true], ['abcd', 'length', true],
    ]);
    expect(r.answer).toBe('the an');
    expect(r.memory).toBe('abcd');
    expect(parts(gen.calls[1]!.prompt).memory).toBe('abcd');
    expect(gen.calls[0]!.options).toEqual({ maxTokens: 4, temperature: 0.5, seed: 7 });
    expect(gen.calls[3]!.options).toEqual({ maxTokens: 6, temperature: 0.5, seed: 7 });
    expect(r.steps.map((s) => s.chunkTokens)).toEqual([10, 10, 5, 0]);
  });

  it('wraps every prompt with template, and takes its own prompt builders', async () => {
    const gen = new ScriptedGenerator(() => 'm');
    const template = (p: string) => `<user>${p}</user><assistant>`;
    const r = await new MemAgentReader({
      generator: gen, chunkTokens: 3, template,
      memoryPrompt: (q, m, s) => `${q}|${m}|${s}|`, answerPrompt: (q, m) => `${q}|${m}|?`,
    }).read('abcdefg', 'Q');
    expect(gen.calls.map((c) => c.prompt)).toEqual([
      template(`Q|${MEMAGENT_NO_MEMORY}|abc|`), template('Q|m|def|'), template('Q|m|g|'), template('Q|m|?'),
    ]);
    expect(r.answer).toBe('m');
    expect(r.steps.map((s) => s.promptTokens)).toEqual(gen.calls.map((c) => c.prompt.length));
  });

  it('bounds every prompt by chunkTokens + memory + template, so the total grows linearly', async () => {
    const chunkTokens = 200;
    const memoryTokens = 50;
    const overhead = memAgentMemoryPrompt(Q, '', '').length;
    const total = async (n: number) => {
      // A model whose memory always fills its cap: the worst case for prompt size.
      const gen = new ScriptedGenerator(() => filler(10_000, 'm'));
      const doc = Array.from({ length: n }, (_, i) => `w${i}`).join(' ');
      const r = await new MemAgentReader({ generator: gen, chunkTokens, memoryTokens, answerMaxTokens: 5 }).read(doc, Q);
      for (const c of gen.calls) expect(c.prompt.length).toBeLessThanOrEqual(overhead + chunkTokens + Math.max(memoryTokens, MEMAGENT_NO_MEMORY.length));
      expect(r.promptTokens).toBe(gen.calls.reduce((a, c) => a + c.prompt.length, 0));
      return { prompt: r.promptTokens!, doc: doc.length, chunks: r.chunks };
    };
    const small = await total(2_000);
    const large = await total(20_000);
    expect(small.chunks).toBe(Math.ceil(small.doc / chunkTokens));
    expect(large.chunks).toBe(Math.ceil(large.doc / chunkTokens));
    // ~11.8× the text → prompt tokens grow by about the same factor, not its square.
    const ratio = large.prompt / small.prompt;
    expect(ratio).toBeGreaterThan(0.9 * (large.doc / small.doc));
    expect(ratio).toBeLessThan(1.1 * (large.doc / small.doc));
  });
});

/** Independent reference for the whitespace cut under an additive tokenizer: a linear greedy scan. */
function referenceChunks(doc: string, limit: number, count: (t: string) => number): string[] {
  const pieces = doc.match(/\S+\s*/g) ?? [];
  const lead = /^\s*/.exec(doc)![0];
  if (lead && pieces.length) pieces[0] = lead + pieces[0];
  else if (lead) pieces.push(lead);
  const out: string[] = [];
  let i = 0;
  while (i < pieces.length) {
    if (count(pieces[i]!) > limit) {
      const chars = Array.from(pieces[i]!);
      let k = 1;
      while (k + 1 < chars.length && count(chars.slice(0, k + 1).join('')) <= limit) k++;
      out.push(chars.slice(0, k).join(''));
      const rest = chars.slice(k).join('');
      if (rest) pieces[i] = rest;
      else i++;
      continue;
    }
    let n = 1;
    while (i + n < pieces.length && count(pieces.slice(i, i + n + 1).join('')) <= limit) n++;
    const para = (p: number) => /\n[ \t]*\n\s*$/.test(pieces[i + p - 1]!);
    if (i + n < pieces.length && !para(n)) {
      for (let p = n - 1; p >= Math.ceil(n / 2); p--) if (para(p)) { n = p; break; }
    }
    out.push(pieces.slice(i, i + n).join(''));
    i += n;
  }
  return out;
}

describe('MemAgentReader: chunking', () => {
  const cut = (doc: string, chunkTokens: number, g: Generator = new ScriptedGenerator(() => '')) =>
    new MemAgentReader({ generator: g, chunkTokens }).chunk(doc);

  it('cuts at exact token boundaries when the generator has encode/decode', async () => {
    const doc = 'one two three four five six seven eight nine ten';
    expect(await cut(doc, 7)).toEqual([
      { text: 'one two', tokens: 7 }, { text: ' three ', tokens: 7 }, { text: 'four fi', tokens: 7 },
      { text: 've six ', tokens: 7 }, { text: 'seven e', tokens: 7 }, { text: 'ight ni', tokens: 7 }, { text: 'ne ten', tokens: 6 },
    ]);
    expect(await cut('ab', 5)).toEqual([{ text: 'ab', tokens: 2 }]);
  });

  it('cuts at whitespace without a tokenizer, never over the limit, losing nothing', async () => {
    const g = untokenized(new ScriptedGenerator(() => ''));
    expect(await cut('one two three four five six', 10, g)).toEqual([
      { text: 'one two ', tokens: 8 }, { text: 'three ', tokens: 6 }, { text: 'four five ', tokens: 10 }, { text: 'six', tokens: 3 },
    ]);
    // A word over the limit is cut between characters; its rest starts the next chunk.
    expect((await cut('abcdefghijklmnopqrstuvwxy z', 10, g)).map((c) => c.text)).toEqual(['abcdefghij', 'klmnopqrst', 'uvwxy z']);
    // Leading and trailing whitespace stay in the chunks.
    expect((await cut('  ab  cd  ', 4, g)).map((c) => c.text)).toEqual(['  ab', '  ', 'cd  ']);
    expect((await cut('   ', 2, g)).map((c) => c.text)).toEqual(['  ', ' ']);
  });

  it('ends a chunk at a paragraph break in its second half', async () => {
    const g = untokenized(new ScriptedGenerator(() => ''));
    expect((await cut('aaaa bbbb\n\ncccc dddd eeee ffff', 20, g)).map((c) => c.text)).toEqual(['aaaa bbbb\n\n', 'cccc dddd eeee ffff']);
    // A break in the first half would waste most of the chunk: ignored.
    const b = 'bbbbbbbbb ';
    expect((await cut(`aa\n\n${b}${b}${b}${b}`, 40, g)).map((c) => c.text)).toEqual([`aa\n\n${b}${b}${b}`, b]);
    // Plain characters: the break wins.
    const doc = 'w w w w w\n\nw w w w w ';
    expect((await cut(doc, 15, g)).map((c) => c.text)).toEqual(['w w w w w\n\n', 'w w w w w ']);
    // A tokenizer that counts the shorter text as more tokens (here: a text ending in a blank
    // line costs 100 more; the search probed 2, 4, 8, 6, 7 words, never the break at 5): the
    // measured longer chunk is kept rather than exceed the limit.
    const seam = untokenized(new ScriptedGenerator(() => ''), (t) => t.length + (t.endsWith('\n\n') ? 100 : 0));
    expect(await cut(doc, 15, seam)).toEqual([{ text: 'w w w w w\n\nw w ', tokens: 15 }, { text: 'w w w ', tokens: 6 }]);
  });

  it('counts chunks with countTokens when tokens are not characters', async () => {
    const words = (t: string) => (t.match(/\S+/g) ?? []).length;
    const g = untokenized(new ScriptedGenerator(() => ''), words);
    const doc = Array.from({ length: 23 }, (_, i) => `w${i}`).join(' ');
    const chunks = await cut(doc, 5, g);
    expect(chunks.map((c) => c.tokens)).toEqual([5, 5, 5, 5, 3]);
    expect(chunks[1]!.text).toBe('w5 w6 w7 w8 w9 ');
    expect(chunks.map((c) => c.text).join('')).toBe(doc);
  });

  it('makes a single character that alone exceeds the limit a chunk of its own', async () => {
    const bytes = (t: string) => Buffer.byteLength(t);
    const g = untokenized(new ScriptedGenerator(() => ''), bytes);
    expect(await cut('aé', 1, g)).toEqual([{ text: 'a', tokens: 1 }, { text: 'é', tokens: 2 }]);
  });

  it('matches a linear greedy reference on random documents', async () => {
    const rand = rng(11);
    const g = untokenized(new ScriptedGenerator(() => ''));
    const len = (t: string) => Array.from(t).length;
    for (let trial = 0; trial < 200; trial++) {
      const limit = 1 + Math.floor(rand() * 40);
      let doc = '';
      const n = 1 + Math.floor(rand() * 60);
      for (let w = 0; w < n; w++) {
        doc += Array.from('abcdefghé😀').slice(0, 1 + Math.floor(rand() * 10)).join('').repeat(1 + Math.floor(rand() * 3));
        doc += [' ', '  ', '\n', '\n\n', ' \n \n', '\t'][Math.floor(rand() * 6)];
      }
      if (rand() < 0.3) doc = ' \n' + doc;
      const got = await cut(doc, limit, g);
      expect(got.map((c) => c.text), `trial ${trial}`).toEqual(referenceChunks(doc, limit, len));
      expect(got.map((c) => c.text).join('')).toBe(doc);
      for (const c of got) {
        expect(c.tokens).toBe(len(c.text));
        expect(c.tokens).toBeLessThanOrEqual(limit);
      }
    }
  });

  it('reads the chunks it cuts', async () => {
    const gen = new ScriptedGenerator(() => 'm');
    const r = await new MemAgentReader({ generator: untokenized(gen), chunkTokens: 10 }).read('one two three four five six', Q);
    expect(gen.calls.slice(0, -1).map((c) => parts(c.prompt).section)).toEqual(['one two ', 'three ', 'four five ', 'six']);
    expect(r.steps.map((s) => s.chunkTokens)).toEqual([8, 6, 10, 3, 0]);
    // No encode: prompts are not counted.
    expect(r.steps.every((s) => s.promptTokens === undefined)).toBe(true);
    expect(r.promptTokens).toBeUndefined();
  });
});

describe('MemAgentReader: charging, hooks and abort', () => {
  const doc = filler(120) + FACT + filler(155);

  it('charges each step before onStep, summing to generatedTokens, skipping empty steps', async () => {
    const events: string[] = [];
    const charges: number[] = [];
    const gen = new ScriptedGenerator((p, call) => (call === 1 ? '' : reader(p, call)));
    const r = await new MemAgentReader({ generator: gen, chunkTokens: 100 }).read(doc, Q, {
      charge: async (t, s) => {
        charges.push(t);
        events.push(`charge ${s.kind} ${s.chunk} ${t}`);
      },
      onStep: async (s) => void events.push(`step ${s.kind} ${s.chunk}`),
    });
    expect(events).toEqual([
      'charge memory 0 15', 'step memory 0',
      'step memory 1', // generated nothing: nothing to charge
      'charge memory 2 15', 'step memory 2',
      'charge answer 3 32', 'step answer 3',
    ]);
    expect(r.steps[1]!.memoryAfter).toBe(''); // an empty update still replaces the memory
    expect(charges.reduce((a, b) => a + b, 0)).toBe(r.generatedTokens);
    expect(r.generatedTokens).toBe(r.steps.reduce((a, s) => a + s.tokens, 0));
  });

  it('stops when charge or onStep throws', async () => {
    const over = new Error('budget exhausted');
    const gen = new ScriptedGenerator(reader);
    await expect(new MemAgentReader({ generator: gen, chunkTokens: 100 }).read(doc, Q, {
      charge: (_t, s) => { if (s.chunk === 1) throw over; },
    })).rejects.toBe(over);
    expect(gen.calls).toHaveLength(2);
    const gen2 = new ScriptedGenerator(reader);
    await expect(new MemAgentReader({ generator: gen2, chunkTokens: 100 }).read(doc, Q, {
      onStep: () => { throw over; },
    })).rejects.toBe(over);
    expect(gen2.calls).toHaveLength(1);
  });

  it('rejects with the reason at once when the signal is already aborted', async () => {
    const gen = new ScriptedGenerator(reader);
    const controller = new AbortController();
    controller.abort();
    const err = await new MemAgentReader({ generator: gen }).read(doc, Q, { signal: controller.signal }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DOMException);
    expect((err as DOMException).name).toBe('AbortError');
    expect(gen.calls).toHaveLength(0);
  });

  it('aborts between steps', async () => {
    const gen = new ScriptedGenerator(reader);
    const controller = new AbortController();
    const reason = new Error('user left');
    const charges: number[] = [];
    await expect(new MemAgentReader({ generator: gen, chunkTokens: 100 }).read(doc, Q, {
      signal: controller.signal,
      charge: (t) => void charges.push(t),
      onStep: (s) => { if (s.chunk === 1) controller.abort(reason); },
    })).rejects.toBe(reason);
    expect(gen.calls).toHaveLength(2);
    expect(gen.calls[0]!.options.signal).toBe(controller.signal);
    expect(charges).toEqual([15, 7]);
  });

  it('aborts during a step, charging what a resolving generator reports', async () => {
    for (const rejectOnAbort of [false, true]) {
      const controller = new AbortController();
      const gen = new ScriptedGenerator(reader, {
        rejectOnAbort,
        beforeToken: (call, token) => { if (call === 1 && token === 3) controller.abort(); },
      });
      const charges: number[] = [];
      const steps: ReaderStep[] = [];
      const err = await new MemAgentReader({ generator: gen, chunkTokens: 100 }).read(doc, Q, {
        signal: controller.signal, charge: (t) => void charges.push(t), onStep: (s) => void steps.push(s),
      }).catch((e: unknown) => e);
      expect((err as DOMException).name).toBe('AbortError');
      expect(gen.calls).toHaveLength(2); // nothing is called after the abort
      // A generator that resolves reports its partial tokens, which are charged; one that rejects cannot.
      expect(charges).toEqual(rejectOnAbort ? [15] : [15, 3]);
      expect(steps.map((s) => s.finishReason)).toEqual(rejectOnAbort ? ['eos'] : ['eos', 'abort']);
    }
  });

  it('aborts while chunking, before any generate call', async () => {
    const gen = new ScriptedGenerator(reader);
    const controller = new AbortController();
    let counted = 0;
    const g = untokenized(gen, (t) => {
      if (++counted === 3) controller.abort();
      return gen.countTokens(t);
    });
    const doc2 = Array.from({ length: 100 }, (_, i) => `w${i}`).join(' ');
    const err = await new MemAgentReader({ generator: g, chunkTokens: 10 }).read(doc2, Q, { signal: controller.signal }).catch((e: unknown) => e);
    expect((err as DOMException).name).toBe('AbortError');
    expect(gen.calls).toHaveLength(0);
  });

  it('rejects when the generator reports an abort nobody asked for, or breaks its contract', async () => {
    const fake = (r: unknown): Generator => ({ generate: async () => r as GenerateResult, countTokens: (t) => t.length });
    await expect(new MemAgentReader({ generator: fake({ text: 'a', tokens: 1, finishReason: 'abort' }) }).read('doc', Q))
      .rejects.toThrow(new Error("generator.generate() finished with 'abort' although the signal was not aborted"));
    await expect(new MemAgentReader({ generator: fake({ text: 'a', tokens: 5, finishReason: 'length' }), memoryTokens: 4 }).read('doc', Q))
      .rejects.toThrow(new RangeError('Expected integer in [0, 4] for generator.generate() result.tokens but received 5 of type number'));
    await expect(new MemAgentReader({ generator: fake(null) }).read('doc', Q))
      .rejects.toThrow(new TypeError('Expected a GenerateResult object for the result of generator.generate() but received null'));
    const badCount: Generator = { generate: async () => ({ text: '', tokens: 0, finishReason: 'eos' }), countTokens: () => -1 };
    await expect(new MemAgentReader({ generator: badCount }).read('doc', Q))
      .rejects.toThrow(new RangeError('Expected integer >= 0 for generator.countTokens() result but received -1 of type number'));
  });
});

describe('MemAgentReader: validation', () => {
  const gen = new ScriptedGenerator(() => '');
  const KEYS = 'generator, chunkTokens, memoryTokens, answerMaxTokens, template, memoryPrompt, answerPrompt, temperature, seed';

  it.each<[string, unknown, ErrorConstructor, string]>([
    ['no options', undefined, TypeError, 'Expected a Generator with generate and countTokens functions for generator but received undefined'],
    ['options not an object', 5, TypeError, 'Expected an options object for options but received 5 of type number'],
    ['no countTokens', { generator: { generate: async () => ({}) } }, TypeError,
      'Expected a Generator with generate and countTokens functions for generator but received object'],
    ['generator null', { generator: null }, TypeError, 'Expected a Generator with generate and countTokens functions for generator but received null'],
    ['unknown key', { generator: gen, chunkSize: 5 }, TypeError, `Unknown option 'chunkSize' in options (expected one of: ${KEYS})`],
    ['chunkTokens 0', { generator: gen, chunkTokens: 0 }, RangeError, 'Expected integer >= 1 for chunkTokens but received 0 of type number'],
    ['chunkTokens 1.5', { generator: gen, chunkTokens: 1.5 }, RangeError, 'Expected integer >= 1 for chunkTokens but received 1.5 of type number'],
    ['chunkTokens string', { generator: gen, chunkTokens: '5' }, TypeError, "Expected integer >= 1 for chunkTokens but received '5' of type string"],
    ['memoryTokens 0', { generator: gen, memoryTokens: 0 }, RangeError, 'Expected integer >= 1 for memoryTokens but received 0 of type number'],
    ['answerMaxTokens 0', { generator: gen, answerMaxTokens: 0 }, RangeError, 'Expected integer >= 1 for answerMaxTokens but received 0 of type number'],
    ['template', { generator: gen, template: 'x' }, TypeError, "Expected function for template but received 'x' of type string"],
    ['memoryPrompt', { generator: gen, memoryPrompt: 1 }, TypeError, 'Expected function for memoryPrompt but received 1 of type number'],
    ['answerPrompt', { generator: gen, answerPrompt: {} }, TypeError, 'Expected function for answerPrompt but received object'],
    ['temperature', { generator: gen, temperature: -1 }, RangeError, 'Expected finite number >= 0 for temperature but received -1 of type number'],
    ['seed', { generator: gen, seed: -1 }, RangeError, 'Expected integer >= 0 for seed but received -1 of type number'],
  ])('constructor rejects %s', (_name, options, Err, message) => {
    expect(() => new MemAgentReader(options as MemAgentReaderOptions)).toThrow(new Err(message));
    try {
      new MemAgentReader(options as MemAgentReaderOptions);
    } catch (e) {
      expect(e).toBeInstanceOf(Err);
    }
  });

  it.each<[string, unknown, unknown, unknown, ErrorConstructor, string]>([
    ['empty document', '', Q, undefined, RangeError, "Expected non-empty string for document but received '' of type string"],
    ['document not a string', 5, Q, undefined, TypeError, 'Expected non-empty string for document but received 5 of type number'],
    ['empty question', 'doc', '', undefined, RangeError, "Expected non-empty string for question but received '' of type string"],
    ['question not a string', 'doc', null, undefined, TypeError, 'Expected non-empty string for question but received null'],
    ['options not an object', 'doc', Q, 'x', TypeError, "Expected an options object for options but received 'x' of type string"],
    ['unknown key', 'doc', Q, { onRound: () => {} }, TypeError, "Unknown option 'onRound' in options (expected one of: signal, onStep, charge)"],
    ['signal', 'doc', Q, { signal: {} }, TypeError, 'Expected AbortSignal for signal but received object'],
    ['onStep', 'doc', Q, { onStep: 1 }, TypeError, 'Expected function for onStep but received 1 of type number'],
    ['charge', 'doc', Q, { charge: 'x' }, TypeError, "Expected function for charge but received 'x' of type string"],
  ])('read rejects %s before any call', async (_name, document, question, options, Err, message) => {
    const g = new ScriptedGenerator(() => '');
    const err = await new MemAgentReader({ generator: g }).read(document as string, question as string, options as object).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Err);
    expect((err as Error).message).toBe(message);
    expect(g.calls).toHaveLength(0);
  });

  it('rejects prompt builders that return no string', async () => {
    const g = new ScriptedGenerator(() => '');
    await expect(new MemAgentReader({ generator: g, template: (() => 5) as unknown as (p: string) => string }).read('doc', Q))
      .rejects.toThrow(new TypeError('Expected string for template() result but received 5 of type number'));
    await expect(new MemAgentReader({ generator: g, memoryPrompt: (() => null) as unknown as (p: string) => string }).read('doc', Q))
      .rejects.toThrow(new TypeError('Expected string for memoryPrompt() result but received null'));
    await expect(new MemAgentReader({ generator: g, answerPrompt: (() => undefined) as unknown as (p: string) => string }).read('doc', Q))
      .rejects.toThrow(new TypeError('Expected string for answerPrompt() result but received undefined'));
    expect(g.calls).toHaveLength(1); // only the answerPrompt case reached a memory step
  });

  it('chunk validates its arguments', async () => {
    const r = new MemAgentReader({ generator: gen });
    await expect(r.chunk('')).rejects.toThrow(new RangeError("Expected non-empty string for document but received '' of type string"));
    await expect(r.chunk('doc', { signal: 1 } as unknown as { signal: AbortSignal }))
      .rejects.toThrow(new TypeError('Expected AbortSignal for signal but received 1 of type number'));
    await expect(r.chunk('doc', { x: 1 } as object)).rejects.toThrow(new TypeError("Unknown option 'x' in options (expected one of: signal)"));
  });
});

// The loop against a real decoder (the tiny ONNX model, random weights): its text is noise, so
// this checks the mechanics — exact token cuts, prompts, caps and accounting — not the answers.
describe('MemAgentReader with the tiny ONNX model', () => {
  let root: string;
  let model: OnnxCausalLM;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'capibara-memagent-onnx-'));
    const { dir } = await makeTinyModel(join(root, 'tiny'));
    model = await OnnxCausalLM.load(dir, { threads: 1 });
  });

  afterAll(async () => {
    await model?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('reads a document in exact 64-token chunks with exact token accounting', async () => {
    const sentences = [
      'The capybara lives near rivers and lakes in South America.',
      'It eats grass and water plants, and it sleeps in the water to keep cool.',
      'The key to the boat house is under the blue stone by the door.',
      'They live in groups, and the group shares the work of watching for danger.',
    ];
    const doc = Array.from({ length: 12 }, (_, i) => `${i + 1}. ${sentences[i % 4]}`).join('\n');
    const question = 'Where is the key to the boat house?';
    const ids = model.encode(doc);
    const expectedChunks = Math.ceil(ids.length / 64);
    expect(expectedChunks).toBeGreaterThanOrEqual(3);

    const calls: Array<{ prompt: string; result: OnnxGenerateResult }> = [];
    const recording: Generator = {
      generate: async (p, o) => {
        const result = await model.generate(p, o);
        calls.push({ prompt: p as string, result });
        return result;
      },
      countTokens: (t) => model.countTokens(t),
      encode: (t) => model.encode(t),
      decode: (x) => model.decode(x),
    };
    const charges: number[] = [];
    const reader = new MemAgentReader({ generator: recording, chunkTokens: 64, memoryTokens: 16, answerMaxTokens: 8, temperature: 1, seed: 3 });
    const r = await reader.read(doc, question, { charge: (t) => void charges.push(t) });

    expect(r.chunks).toBe(expectedChunks);
    expect(r.steps).toHaveLength(expectedChunks + 1);
    expect(calls).toHaveLength(expectedChunks + 1);
    const overhead = model.countTokens(memAgentMemoryPrompt(question, '', ''));
    let memory = MEMAGENT_NO_MEMORY;
    for (let k = 0; k < expectedChunks; k++) {
      const step = r.steps[k]!;
      const { prompt, result } = calls[k]!;
      const slice = ids.slice(64 * k, 64 * (k + 1));
      // The paper's cut: runs of exactly chunkTokens token ids, decoded.
      expect(step.chunkTokens).toBe(k < expectedChunks - 1 ? 64 : ids.length - 64 * (expectedChunks - 1));
      expect(step.chunkTokens).toBe(slice.length);
      expect(prompt).toBe(memAgentMemoryPrompt(question, memory, model.decode(slice)));
      expect(step.memoryBefore).toBe(memory);
      // The generated text replaces the memory; the tokens are the model's own count, within the cap.
      expect(step.memoryAfter).toBe(result.text);
      expect(step.tokens).toBe(result.tokens);
      expect(result.tokenIds).toHaveLength(result.tokens);
      expect(step.tokens).toBeLessThanOrEqual(16);
      expect(step.truncated).toBe(result.finishReason === 'length');
      // Counted on its own; the model ran it with its BOS token.
      expect(step.promptTokens).toBe(model.countTokens(prompt));
      expect(result.promptTokens).toBe(step.promptTokens! + 1);
      expect(step.promptTokens!).toBeLessThanOrEqual(overhead + 64 + model.countTokens(memory));
      memory = step.memoryAfter;
    }
    const last = r.steps.at(-1)!;
    expect(calls.at(-1)!.prompt).toBe(memAgentAnswerPrompt(question, memory));
    expect(last).toMatchObject({ kind: 'answer', memoryBefore: memory, answer: r.answer, tokens: calls.at(-1)!.result.tokens });
    expect(last.tokens).toBeLessThanOrEqual(8);
    expect(r.memory).toBe(memory);
    expect(r.steps.reduce((a, s) => a + s.chunkTokens, 0)).toBe(ids.length);
    expect(r.generatedTokens).toBe(calls.reduce((a, c) => a + c.result.tokens, 0));
    expect(charges.reduce((a, b) => a + b, 0)).toBe(r.generatedTokens);
    expect(r.promptTokens).toBe(calls.reduce((a, c) => a + c.result.promptTokens - 1, 0));
    // A random model rarely ends by itself within 16 tokens: the memory is cut and still kept.
    expect(r.steps.some((s) => s.kind === 'memory' && s.truncated)).toBe(true);
  });
});
