/**
 * Scenario 4: hostile HTTP clients against the completions server.
 *
 * The server (`createCompletionsServer` over a scripted fake generator that writes a token every
 * couple of milliseconds and never stops by itself) runs in a child process, so that its death is
 * counted. Hostile clients speak raw HTTP over loopback sockets: slowloris (headers or body
 * dribbled), oversized bodies, bodies that are not JSON or have the wrong Content-Type, huge prompt
 * arrays, `max_tokens` 1e9, streams dropped mid-way, invalid UTF-8, deep nesting, oversized
 * headers. Meanwhile a well-behaved client measures how long it waits. A clean error is a 4xx/5xx
 * whose body is an OpenAI-style JSON error.
 */
import * as net from 'node:net';
import { fileURLToPath } from 'node:url';

import { childMain, describeEnd, isChild, loadPackage, outcome, Rng, row, sleep, startChild, within } from './child.mjs';

const FILE = fileURLToPath(import.meta.url);
const TOKEN_MS = 2;
const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Child: the server over a fake generator

/** A model that never emits end-of-sequence: only `maxTokens` or the abort signal stops it. */
const fakeGenerator = {
  async generate(prompt, options) {
    let text = '';
    let tokens = 0;
    while (tokens < options.maxTokens) {
      if (options.signal?.aborted) return { text, tokens, finishReason: 'abort' };
      await sleep(TOKEN_MS);
      const piece = ` w${tokens % 10}`;
      text += piece;
      tokens++;
      options.onToken?.(piece);
    }
    return { text, tokens, finishReason: 'length' };
  },
  countTokens: (text) => Math.ceil(text.length / 4),
};

async function child() {
  const { createCompletionsServer } = loadPackage();
  const server = createCompletionsServer(fakeGenerator, { model: 'chaos' });
  const { url } = await server.listen(0, '127.0.0.1');
  const rss = () => process.memoryUsage().rss;
  let peak = rss();
  const sampler = setInterval(() => (peak = Math.max(peak, rss())), 50);
  await new Promise((resolve) => {
    process.on('message', async (m) => {
      if (m === 'rss') {
        globalThis.gc?.();
        process.send({ rss: rss(), peak });
      } else if (m === 'close') {
        clearInterval(sampler);
        await server.close();
        resolve();
      }
    });
    process.send({ url });
  });
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client: full control over what is sent and when, and no client-side limits

function parseResponse(buf) {
  const head = buf.indexOf('\r\n\r\n');
  if (head < 0) return null;
  const lines = buf.subarray(0, head).toString('latin1').split('\r\n');
  const status = Number(lines[0].split(' ')[1]);
  const headers = Object.fromEntries(lines.slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  let body = buf.subarray(head + 4);
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    const parts = [];
    for (let at = 0; at < body.length; ) {
      const eol = body.indexOf('\r\n', at);
      if (eol < 0) break;
      const size = parseInt(body.subarray(at, eol).toString('latin1'), 16);
      if (!(size > 0)) break;
      parts.push(body.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  }
  return { status, headers, body: body.toString('utf8') };
}

/**
 * Sends one request: `head` (request line and headers, without the blank line), then `body`
 * at once or `dribble` bytes per `everyMs`. Gives up after `holdMs` (outcome `held`, or
 * `aborted` for `abortOnData` / `abortAfterMs`, which drop the connection on purpose).
 */
function request(port, { head, body = Buffer.alloc(0), dribble = 0, everyMs = 0, holdMs = 10_000, abortOnData = false, abortAfterMs = 0 }) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    let done = false;
    const finish = (how) => {
      if (done) return;
      done = true;
      clearTimeout(hold);
      clearTimeout(abort);
      clearInterval(drip);
      sock.destroy();
      const res = parseResponse(Buffer.concat(chunks));
      resolve(classify(res, how));
    };
    const hold = setTimeout(() => finish('held'), holdMs);
    const abort = abortAfterMs ? setTimeout(() => finish('aborted'), abortAfterMs) : null;
    let drip = null;
    sock.on('data', (d) => {
      chunks.push(d);
      const res = parseResponse(Buffer.concat(chunks));
      if (abortOnData && res && res.status === 200 && res.body.length > 0) finish('aborted'); // mid-stream
    });
    sock.on('end', () => finish('closed'));
    sock.on('close', () => finish('closed'));
    sock.on('error', () => finish('reset'));
    sock.on('connect', () => {
      const bytes = Buffer.concat([Buffer.from(`${head}\r\n\r\n`, 'latin1'), Buffer.from(body)]);
      if (!dribble) return void sock.write(bytes);
      const headerEnd = body.length ? bytes.length - body.length : 0;
      let at = 0;
      if (headerEnd) sock.write(bytes.subarray(0, (at = headerEnd))); // body slowloris: headers at once
      drip = setInterval(() => {
        if (at >= bytes.length) return clearInterval(drip);
        sock.write(bytes.subarray(at, (at += dribble)));
      }, everyMs);
    });
  });
}

/** clean: 4xx/5xx with `{ error: { message } }`; bare: 4xx/5xx without it; ok: 2xx. */
function classify(res, how) {
  if (res) {
    // A 2xx we hung up on (mid-stream, or held too long) is ours to count, not the server's answer.
    if (res.status >= 200 && res.status < 300) return { kind: how === 'aborted' || how === 'held' ? how : 'ok', status: res.status };
    let json = null;
    try {
      json = JSON.parse(res.body);
    } catch {
      // not JSON
    }
    const clean = res.status >= 400 && typeof json?.error?.message === 'string' && json.error.message.length > 0;
    return { kind: clean ? 'clean' : 'bare', status: res.status };
  }
  return { kind: how === 'closed' || how === 'reset' ? 'dropped' : how, status: null };
}

const post = (body, { type = 'application/json', extra = '' } = {}) => {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const head = `POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${type ? `Content-Type: ${type}\r\n` : ''}Content-Length: ${b.length}${extra}`;
  return { head, body: b };
};

/**
 * The hostile cases. Each attempt returns one outcome or a list; `cap` bounds attempts per run.
 * `hold` is how long a client keeps a request that the server does not answer (it then hangs up).
 * Cases marked `slot` try to hold the one generation slot: they run in a second phase, so that
 * the first phase measures the rest (streams that do start and then drop, among others).
 */
function cases(hold) {
  const deep = (n) => `{"prompt":${'['.repeat(n)}${']'.repeat(n)}}`;
  return [
    { name: 'slowloris headers', cap: 3, attempt: (port) => Promise.all(Array.from({ length: 8 }, () =>
      request(port, { head: 'POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ' + 'a'.repeat(200), dribble: 1, everyMs: 200, holdMs: hold }))) },
    { name: 'slowloris body', cap: 3, attempt: (port) => Promise.all(Array.from({ length: 8 }, () =>
      request(port, { ...post(`{"prompt":"${'a'.repeat(4000)}"}`), dribble: 1, everyMs: 200, holdMs: hold }))) },
    { name: 'oversized body (2 MiB)', cap: 20, attempt: (port) => request(port, { ...post({ prompt: 'a'.repeat(2 * MiB) }), holdMs: hold }) },
    { name: 'oversized headers (64 KiB)', cap: 20, attempt: (port) => request(port, { ...post({ prompt: 'hi' }, { extra: `\r\nX-Big: ${'b'.repeat(64 * 1024)}` }), holdMs: hold }) },
    { name: 'not JSON', cap: 60, attempt: (port, r) => request(port, { ...post(r.pick(['hello', '{"prompt":', '', 'null', '[]', '"s"', '{"prompt":"a","max_tokens":"many"}', '{"prompt":"a","bogus":1}', '{"prompt":1e999}'])), holdMs: hold }) },
    { name: 'wrong Content-Type', cap: 20, attempt: (port, r) => request(port, { ...post({ prompt: 'hi', max_tokens: 2 }, { type: r.pick(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', '']) }), holdMs: hold }) },
    { name: 'huge prompt array (100k)', slot: true, cap: 5, attempt: (port) => request(port, { ...post({ prompt: Array(100_000).fill('a'), max_tokens: 1 }), holdMs: hold }) },
    // Within the server's default per-request limits (16 prompts, 65,536 tokens), yet minutes of
    // generation: what the normal client's worst wait shows is whether one request can hold the slot.
    { name: '16 prompts × max_tokens 4096', slot: true, cap: 5, attempt: (port) => request(port, { ...post({ prompt: Array(16).fill('hi'), max_tokens: 4096 }), holdMs: hold }) },
    { name: 'max_tokens 1e9', slot: true, cap: 5, attempt: (port, r) => request(port, { ...post({ prompt: r.bool() ? 'hi' : Array(16).fill('hi'), max_tokens: 1e9 }), holdMs: hold }) },
    { name: 'streams dropped mid-way', cap: 4, attempt: (port, r) => Promise.all(Array.from({ length: 24 }, () =>
      request(port, { ...post({ prompt: 'hi', max_tokens: 400, stream: true }), abortOnData: r.bool(), abortAfterMs: r.int(20, 400), holdMs: hold }))) },
    { name: 'invalid UTF-8', cap: 30, attempt: (port, r) => request(port, { ...post(Buffer.concat([Buffer.from(r.pick(['{"prompt":"', '{"pr\xffompt":"'] ), 'latin1'), Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80]), Buffer.from('","max_tokens":2}')])), holdMs: hold }) },
    { name: 'deep JSON nesting', cap: 20, attempt: (port, r) => request(port, { ...post(r.bool() ? deep(200_000) : `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`), holdMs: hold }) },
    { name: 'wrong method / path', cap: 20, attempt: (port, r) => request(port, { head: `${r.pick(['GET', 'PUT', 'DELETE'])} ${r.pick(['/v1/completions', '/v1/../etc', '/%00', '/v1/models?x=' + 'y'.repeat(4000)])} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close`, holdMs: hold }) },
  ];
}

// ---------------------------------------------------------------------------------------------
// Parent

/** The well-behaved client: small requests one after another, each one's wait recorded. */
async function normalClient(port, until) {
  const waits = [];
  const failed = [];
  while (Date.now() < until()) {
    const t = Date.now();
    const res = await request(port, { ...post({ prompt: 'hello', max_tokens: 8 }), holdMs: 120_000 });
    waits.push(Date.now() - t);
    if (res.kind !== 'ok') failed.push(res.status ?? res.kind);
    await sleep(100);
  }
  const sorted = [...waits].sort((a, b) => a - b);
  return { waits, failed, median: sorted[sorted.length >> 1] ?? NaN, worst: sorted.at(-1) ?? NaN };
}

const waitNote = (phase, n) =>
  `normal client, ${phase}: ${n.waits.length} requests, median wait ${n.median} ms, worst ${n.worst} ms${n.failed.length ? `, not 200: ${n.failed.join(',')}` : ''}`;

export async function run({ budgetMs, seed = 1, short = false }) {
  const t0 = Date.now();
  const r = row('http', 'hostile clients vs capibara serve');
  const rng = new Rng(seed);
  const hold = short ? 2500 : 6000;
  let crashed = null;
  const msgs = [];
  let onMsg = null;
  const c = startChild(FILE, [], { ipc: true, nodeArgs: ['--expose-gc'] });
  c.proc.on('message', (m) => (onMsg ? onMsg(m) : msgs.push(m)));
  const next = () => (msgs.length ? Promise.resolve(msgs.shift()) : new Promise((res) => (onMsg = (m) => ((onMsg = null), res(m)))));
  const died = c.done.then((end) => (crashed = end));
  const ask = (m) => (c.proc.connected ? (c.proc.send(m), Promise.race([next(), died.then(() => null)])) : null);
  try {
    const first = await Promise.race([next(), died.then(() => null)]);
    if (!first?.url) throw new Error(`server did not start: ${describeEnd(crashed)}`);
    const port = Number(new URL(first.url).port);
    for (let i = 0; i < 10; i++) await request(port, post({ prompt: 'warm up', max_tokens: 4 })); // warm, then measure
    const before = await ask('rss');
    const tally = {};
    const phase = async (slot, ms) => {
      const end = Date.now() + ms;
      const until = () => (crashed ? 0 : end);
      const hostile = cases(hold).filter((k) => !!k.slot === slot).map(async (k) => {
        const t = (tally[k.name] = {});
        for (let i = 0; i < k.cap && Date.now() < until(); i++) {
          const got = [await k.attempt(port, rng)].flat();
          for (const o of got) {
            const key = o.status ? `${o.kind} ${o.status}` : o.kind;
            t[key] = (t[key] ?? 0) + 1;
            r.tried++;
            if (o.kind === 'clean') r.cleanErrors++;
          }
          await sleep(20);
        }
      });
      return (await Promise.all([normalClient(port, until), ...hostile]))[0];
    };
    const ms = (budgetMs - (Date.now() - t0) - 3000) / 2;
    const flood = await phase(false, ms);
    const slot = await phase(true, ms);
    const after = crashed ? null : await ask('rss');
    if (crashed) {
      r.crashes++;
      r.failures.push(`server process died: ${describeEnd(crashed)}`);
    }
    const mib = (x) => (x / MiB).toFixed(0);
    if (before && after) r.rss = `${mib(before.rss)} → peak ${mib(after.peak)} → ${mib(after.rss)} MiB`;
    r.notes.push(waitNote('flood phase', flood));
    r.notes.push(`${waitNote('slot-holding phase', slot)} (a hostile client hangs up after ${hold} ms)`);
    for (const [name, t] of Object.entries(tally)) r.notes.push(`${name}: ${Object.entries(t).map(([k, n]) => `${k}×${n}`).join(', ')}`);
    r.detail = { tally, normalClient: { flood, slot }, rssBefore: before, rssAfter: after };
    r.worstWaitMs = Math.max(flood.worst, slot.worst);
  } finally {
    if (!crashed) {
      void ask('close');
      if ((await within(c.done, 10_000, 'late')) === 'late') r.notes.push('server.close() did not finish within 10 s');
    }
    c.kill();
    await c.done;
    r.seconds = (Date.now() - t0) / 1000;
  }
  return [r];
}

if (isChild(import.meta.url)) childMain(child);
