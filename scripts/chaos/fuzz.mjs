/**
 * Scenario 1: bad and edge inputs into every public kernel entry, through the public API (lib/),
 * in child processes. Each call starts from a valid argument list and has one to three of its
 * values (arguments, option fields, tensor fields, cache operations) replaced by something
 * hostile: wrong types, NaN/±Infinity, huge or negative sizes, arrays too short or too long, of
 * the wrong kind, detached, misaligned, on shared or resizable buffers, or option getters that
 * detach an input or re-enter the object. The contract (DESIGN.md, convention 1): a call returns
 * or throws (rejects) an Error with a message; the process never dies.
 *
 * A batch is replayable: `node scripts/chaos/fuzz.mjs child <seed> <calls> <ms> <statusFile>`
 * makes the same calls in the same order; the status file holds the call in flight, so after a
 * crash it names the culprit.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { childMain, describeEnd, isChild, loadPackage, outcome, Rng, row, startChild } from './child.mjs';

// ---------------------------------------------------------------------------------------------
// Valid argument lists, kept small: a hostile size must come from a number we pass, never from
// an array we allocated (a huge allocation of ours would crash the child for our own reasons).

const f32 = (r, n, spread = 4) => Float32Array.from({ length: n }, () => (r.next() - 0.5) * spread);
const i8 = (r, n) => Int8Array.from({ length: n }, () => r.int(-128, 127));
const EXPERTS = [1, 2, 4, 8, 16, 33];

/** Mostly tiny; one call in 50 is large enough for the kernels to use several threads. */
const tokens = (r) => (r.bool(0.02) ? r.int(2048, 8192) : r.int(0, 6));

function gatingShape(r) {
  const E = r.pick(EXPERTS);
  return { E, T: tokens(r), k: r.int(1, Math.min(E, 4)) };
}

function logitsInput(r, T, E) {
  const data = f32(r, T * E, 8);
  return r.bool(0.2) ? { type: 'float32', dims: [T, E], data } : data;
}

function topkOptions(r, T, E, k) {
  const o = { experts: E, k };
  if (r.bool()) o.scoring = r.pick(['softmax', 'sigmoid']);
  if (r.bool(0.3)) o.bias = f32(r, E, 1);
  if (r.bool(0.3)) o.renormalize = r.bool();
  if (r.bool(0.3)) o.routeScale = r.pick([1, 2.5, 0.5]);
  if (E % 2 === 0 && r.bool(0.3)) {
    const topkGroups = r.int(1, 2);
    o.groups = { count: 2, topkGroups, score: r.pick(['top2-sum', 'max']) };
    o.k = Math.min(k, (topkGroups * E) / 2);
  }
  if (r.bool(0.2)) o.expertRange = [0, r.int(1, E)];
  if (r.bool(0.3)) o.threads = r.int(1, 2);
  if (r.bool(0.3)) o.out = { weights: new Float32Array(T * o.k), indices: new Int32Array(T * o.k) };
  return o;
}

const routingIndices = (r, T, k, E) => Int32Array.from({ length: T * k }, () => (r.bool(0.1) ? r.pick([-1, E]) : r.int(0, E - 1)));

function scanOptions(r, n, withOut) {
  const o = {};
  let count = n;
  if (n > 0 && r.bool(0.4)) {
    o.rows = Int32Array.from({ length: r.int(0, 4) }, () => r.int(0, n - 1));
    count = o.rows.length;
  }
  if (r.bool(0.3)) o.threads = r.int(1, 2);
  if (withOut && r.bool(0.3)) o.out = new Float32Array(count);
  return o;
}

function attentionArgs(r) {
  const kvHeads = r.int(1, 2);
  const queryHeads = kvHeads * r.int(1, 2);
  const headDim = r.pick([1, 4, 8, 16, 64]);
  const keys = r.bool(0.02) ? r.int(256, 1024) : r.int(1, 8);
  const queries = r.int(0, keys);
  const half = r.bool(0.2); // float16 bits in a Uint16Array
  const kv = () => (half ? Uint16Array.from({ length: keys * kvHeads * headDim }, () => r.int(0, 0x3bff)) : f32(r, keys * kvHeads * headDim, 2));
  const o = { queryHeads, kvHeads, headDim };
  if (r.bool(0.3)) o.causal = r.bool(0.7);
  if (r.bool(0.3)) o.sink = r.int(0, 2);
  if (r.bool(0.3)) o.streamingHeads = Array.from({ length: kvHeads }, () => r.bool());
  if (o.streamingHeads || r.bool(0.3)) o.recent = r.int(1, 4);
  if (r.bool(0.2)) o.scale = 0.25;
  if (r.bool(0.3)) o.threads = r.int(1, 4);
  if (r.bool(0.2)) o.lse = new Float32Array(queries * queryHeads);
  return [f32(r, queries * queryHeads * headDim, 2), kv(), kv(), o];
}

/** A DuoKVCache's options and a short list of operations on it. */
function cacheArgs(r, lib) {
  const layers = r.int(1, 2);
  const kvHeads = r.int(1, 2);
  const headDim = r.pick([4, 8]);
  const mask = Array.from({ length: layers }, () => Array.from({ length: kvHeads }, () => r.bool()));
  const dtype = r.pick(['float32', 'float16']);
  const o = { layers, kvHeads, headDim, headPattern: lib.HeadPattern.fromMask(mask), sink: r.int(0, 2), recent: r.int(1, 4), maxTokens: r.pick([8, 16, 64]), dtype };
  if (r.bool(0.3)) o.maxRollback = r.int(0, 4);
  const kv = (n) => (dtype === 'float16' ? Uint16Array.from({ length: n * kvHeads * headDim }, () => r.int(0, 0x3bff)) : f32(r, n * kvHeads * headDim, 2));
  const ops = [];
  for (let i = r.int(1, 5); i > 0; i--) {
    const layer = r.int(0, layers - 1);
    const n = r.int(0, 3);
    const queryHeads = kvHeads * r.int(1, 2);
    const what = r.pick(['append', 'append', 'attend', 'attendAsync', 'attend!', 'truncate', 'length']);
    if (what === 'append') ops.push([what, layer, kv(n), kv(n)]);
    else if (what === 'truncate') ops.push([what, r.int(0, 4)]);
    else if (what === 'length') ops.push([what, layer]);
    else ops.push([what, layer, f32(r, n * queryHeads * headDim, 2), kv(n), kv(n), { queryHeads }]);
  }
  return [o, ops];
}

/**
 * `attend!`: the options' `queryHeads` getter appends to the same cache before answering
 * (issue 20, item 7: the room check ran before options were read).
 */
async function runCacheOps(lib, [options, ops]) {
  const cache = new lib.DuoKVCache(options);
  let last;
  for (const op of ops) {
    if (!Array.isArray(op)) throw new TypeError('harness: op is not a list'); // a mutation replaced it
    const [what, ...args] = op;
    if (what === 'attend!' && args[4] && typeof args[4] === 'object') {
      const opts = args[4];
      const queryHeads = opts.queryHeads;
      let entered = false;
      args[4] = Object.defineProperty({ ...opts }, 'queryHeads', {
        enumerable: true,
        get() {
          if (!entered) {
            entered = true;
            cache.append(args[0], args[2], args[3]);
          }
          return queryHeads;
        },
      });
    }
    const method = what === 'attend!' ? 'attend' : what;
    last = await cache[method](...args);
  }
  return last;
}

/** Every public kernel entry: a valid argument list, and how to call it. */
const ENTRIES = {
  topkGating: { valid: (r) => { const { T, E, k } = gatingShape(r); return [logitsInput(r, T, E), topkOptions(r, T, E, k)]; } },
  topkGatingAsync: { valid: (r) => ENTRIES.topkGating.valid(r) },
  dispatchPlan: {
    valid(r) {
      const { T, E, k } = gatingShape(r);
      const routing = r.bool(0.3)
        ? { weights: f32(r, T * k, 1), indices: routingIndices(r, T, k, E), tokens: T, experts: E, k }
        : routingIndices(r, T, k, E);
      const o = { experts: E, k };
      if (r.bool(0.4)) o.capacity = r.int(0, T);
      else if (r.bool(0.4)) {
        o.capacityFactor = r.pick([1, 1.25, 2]);
        if (r.bool(0.3)) o.minCapacity = r.int(0, 8);
      }
      if (r.bool(0.3)) o.blockSize = r.pick([1, 2, 4, 16]);
      if (r.bool(0.3)) {
        o.dropPolicy = r.pick(['position', 'probability']);
        o.weights = f32(r, T * k, 1);
      }
      return [routing, o];
    },
  },
  routerStats: {
    valid(r) {
      const { T, E, k } = gatingShape(r);
      return [logitsInput(r, T, E), routingIndices(r, T, k, E), { experts: E, k, scoring: r.pick(['softmax', 'sigmoid']) }];
    },
  },
  routerStatsAsync: { valid: (r) => ENTRIES.routerStats.valid(r) },
  routerLogits: {
    valid(r) {
      const T = tokens(r);
      const H = r.pick([1, 3, 8, 19]);
      const E = r.pick(EXPERTS);
      const o = { hiddenSize: H };
      if (r.bool(0.3)) o.threads = r.int(1, 2);
      if (r.bool(0.3)) o.out = new Float32Array(T * E);
      return [f32(r, T * H, 1), f32(r, E * H, 1), o];
    },
  },
  routerLogitsAsync: { valid: (r) => ENTRIES.routerLogits.valid(r) },
  int8Scores: {
    valid(r) {
      const dims = r.pick([1, 3, 16, 17, 64]);
      const n = tokens(r);
      return [i8(r, dims), r.pick([0, 0.5, 1 / 127]), i8(r, n * dims), Float32Array.from({ length: n }, () => r.next()), dims, scanOptions(r, n, true)];
    },
  },
  int8ScoresAsync: { valid: (r) => ENTRIES.int8Scores.valid(r) },
  float32Scores: {
    valid(r) {
      const dims = r.pick([1, 3, 16, 17, 64]);
      const n = tokens(r);
      return [f32(r, dims, 1), f32(r, n * dims, 1), dims, scanOptions(r, n, true)];
    },
  },
  float32ScoresAsync: { valid: (r) => ENTRIES.float32Scores.valid(r) },
  quantizeInt8: { valid: (r) => { const n = r.int(0, 40); return r.bool() ? [f32(r, n), new Int8Array(n)] : [f32(r, n)]; } },
  dequantizeInt8: { valid: (r) => { const n = r.int(0, 40); return r.bool() ? [i8(r, n), 1 / 127, new Float32Array(n)] : [i8(r, n), 0.01]; } },
  attention: { valid: attentionArgs },
  attentionAsync: { valid: attentionArgs },
  'MoEGate.route': {
    valid(r) {
      const { T, E, k } = gatingShape(r);
      const o = { experts: E, k, balancer: r.bool(0.4), stats: r.bool(0.3) };
      if (r.bool(0.3)) o.dispatch = { capacityFactor: 1.25 };
      let H = 0;
      if (r.bool(0.3)) {
        H = r.pick([1, 4, 8]);
        o.weight = f32(r, E * H, 1);
      }
      const input = () => (H ? f32(r, T * H, 1) : logitsInput(r, T, E));
      return [o, input(), input()];
    },
    call: (lib, [o, a, b]) => { const g = new lib.MoEGate(o); g.route(a); return g.route(b); },
  },
  'MoEGate.routeAsync': {
    valid: (r) => ENTRIES['MoEGate.route'].valid(r),
    call: async (lib, [o, a, b]) => { const g = new lib.MoEGate(o); await g.routeAsync(a); return g.routeAsync(b); },
  },
  'BiasBalancer.update': {
    valid(r) {
      const E = r.pick(EXPERTS);
      const o = { experts: E, rate: r.pick([0.001, 0.1]), mode: r.pick(['sign', 'proportional']), center: r.bool() };
      if (r.bool(0.3)) o.initialBias = f32(r, E, 1);
      return [o, Int32Array.from({ length: E }, () => r.int(0, 9))];
    },
    call: (lib, [o, loads]) => new lib.BiasBalancer(o).update(loads),
  },
  DuoKVCache: { valid: (r, lib) => cacheArgs(r, lib), call: runCacheOps },
};

// ---------------------------------------------------------------------------------------------
// Hostile values

const TYPED = [Float32Array, Float64Array, Int8Array, Uint8Array, Int16Array, Uint16Array, Int32Array, Uint32Array, BigInt64Array];
const NUMBERS = [NaN, Infinity, -Infinity, -1, 0, -0, 0.5, 1.5, 2 ** 31 - 1, 2 ** 31, 2 ** 32 + 1, 2 ** 53, -(2 ** 53), 1e308, Number.MIN_VALUE];
const throwingProxy = () => new Proxy({}, { get() { throw new Error('chaos: proxy trap'); }, ownKeys() { throw new Error('chaos: ownKeys trap'); } });
const GENERIC = [() => undefined, () => null, () => ({}), () => [], () => '1', () => true, () => 10n, () => Symbol('chaos'), () => () => 1, throwingProxy, () => Object.create(null), () => new Date(0)];

const detach = (buf) => void structuredClone(buf, { transfer: [buf] });

/** Length-tracking view on a resizable buffer, which a getter can later shrink to 0. */
function resizable(v) {
  const rab = new ArrayBuffer(v.byteLength, { maxByteLength: v.byteLength + 64 });
  const view = new v.constructor(rab);
  view.set(v);
  return view;
}

function hostileTyped(r, v, root) {
  const C = v.constructor;
  const n = v.length;
  const kinds = [
    () => v.subarray(0, Math.max(0, n - 1)), // one short
    () => new C(0), // empty
    () => { const w = new C(n + r.pick([1, 7, n + 1])); w.set(v); return w; }, // too long
    () => { const O = r.pick(TYPED.filter((T) => T !== C)); return new O(n); }, // wrong kind
    () => { const w = v.slice(); detach(w.buffer); return w; }, // detached
    () => { const w = new C(new SharedArrayBuffer(v.byteLength)); w.set(v); return w; }, // shared
    () => { const b = new ArrayBuffer(v.byteLength + 64); const w = new C(b, C.BYTES_PER_ELEMENT * r.pick([1, 3, 5]), n); w.set(v); return w; }, // misaligned for SIMD
    () => resizable(v),
    () => Array.from(v, Number), // plain array
    () => new DataView(v.buffer.slice(0)),
    () => v.buffer.slice(0), // the ArrayBuffer itself
    () => r.pick(typedLeaves(root)), // another argument: an output aliasing an input
  ];
  if (v instanceof Float32Array || v instanceof Float64Array) {
    kinds.push(() => { const w = v.slice(); if (n) w[r.int(0, n - 1)] = r.pick([NaN, Infinity, -Infinity, 3.4e38, -3.4e38]); return w; });
  }
  if (v instanceof Int32Array) {
    kinds.push(() => { const w = v.slice(); if (n) w[r.int(0, n - 1)] = r.pick([-2, -(2 ** 31), 2 ** 31 - 1, 33, 34, 1 << 20]); return w; });
  }
  return r.pick(kinds)();
}

function hostileNumber(r, v) {
  if (r.bool(0.7)) return r.pick(NUMBERS);
  return r.pick([v + 1, v - 1, v * 2 ** 20, -v, v + 0.5, String(v)]);
}

/** All typed arrays in a value (the victims an evil getter can detach or shrink). */
function typedLeaves(v, out = [], seen = new Set()) {
  if (v === null || typeof v !== 'object' || seen.has(v)) return out;
  seen.add(v);
  if (ArrayBuffer.isView(v)) out.push(v);
  else if (Array.isArray(v) || Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) typedLeaves(x, out, seen);
  return out;
}

/**
 * Turns field `key` of `obj` into a getter that, on first read, detaches or shrinks an input of
 * the same call (a time-of-check/time-of-use race through the options), or answers differently
 * on its second read.
 */
function evilGetter(r, obj, key, root) {
  const value = obj[key];
  const victims = typedLeaves(root).filter((t) => !(t.buffer instanceof SharedArrayBuffer));
  const mode = r.pick(['detach', 'shrink', 'flip']);
  const victim = victims.length ? r.pick(victims) : null;
  let reads = 0;
  Object.defineProperty(obj, key, {
    enumerable: true,
    configurable: true,
    get() {
      reads++;
      if (mode === 'flip') return reads === 1 ? value : hostileNumber(r, typeof value === 'number' ? value : 1);
      if (reads === 1 && victim && !victim.buffer.detached) {
        if (mode === 'shrink' && victim.buffer.resizable) victim.buffer.resize(0);
        else detach(victim.buffer);
      }
      return value;
    },
  });
}

/** Slots (container, key) of plain arrays and objects in the argument tree, typed arrays excluded. */
function slots(v, out = [], seen = new Set()) {
  if (v === null || typeof v !== 'object' || ArrayBuffer.isView(v) || seen.has(v)) return out;
  if (!Array.isArray(v) && Object.getPrototypeOf(v) !== Object.prototype) return out;
  seen.add(v);
  for (const key of Object.keys(v)) {
    out.push([v, key]);
    slots(v[key], out, seen);
  }
  return out;
}

/** Replaces one to three values of `args` (in place) by hostile ones. */
function mutate(r, args) {
  for (let m = r.int(1, 3); m > 0; m--) {
    const all = slots(args);
    if (r.bool(0.05)) {
      args.length = r.int(0, args.length); // too few arguments
      continue;
    }
    if (all.length === 0) return;
    const [obj, key] = r.pick(all);
    const v = obj[key];
    const roll = r.next();
    if (roll < 0.1 && !Array.isArray(obj)) evilGetter(r, obj, key, args);
    else if (roll < 0.15 && !Array.isArray(obj)) delete obj[key];
    else if (roll < 0.3) obj[key] = r.pick(GENERIC)();
    else if (ArrayBuffer.isView(v)) obj[key] = hostileTyped(r, v, args);
    else if (typeof v === 'number') obj[key] = hostileNumber(r, v);
    else if (typeof v === 'string') obj[key] = r.pick(['', 'bogus', ` ${v}`, v.toUpperCase(), 'x'.repeat(1e5)]);
    else if (typeof v === 'boolean') obj[key] = r.pick([0, 1, 'true']);
    else obj[key] = r.pick(GENERIC)();
  }
}

/** A compact, one-line description of a call's arguments, for the crash report. */
function describe(v, depth = 0) {
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'string') return v.length > 20 ? `'${v.slice(0, 8)}…'(${v.length})` : `'${v}'`;
  if (typeof v === 'symbol' || typeof v === 'function' || v == null || typeof v === 'boolean') return String(v?.toString?.() ?? v);
  if (ArrayBuffer.isView(v)) {
    const b = v.buffer;
    const tags = [b.detached && 'detached', b instanceof SharedArrayBuffer && 'shared', b.resizable && 'resizable', v.byteOffset && `@${v.byteOffset}`].filter(Boolean);
    return `${v.constructor.name}(${v instanceof DataView ? v.byteLength : v.length})${tags.length ? `[${tags.join(',')}]` : ''}`;
  }
  if (v instanceof ArrayBuffer) return `ArrayBuffer(${v.byteLength})`;
  if (depth > 3) return '…';
  try {
    if (Array.isArray(v)) return v.length > 8 ? `[${v.length} items]` : `[${v.map((x) => describe(x, depth + 1)).join(', ')}]`;
    if (Object.getPrototypeOf(v) !== Object.prototype) return `<${v.constructor?.name ?? 'object'}>`;
    return `{${Object.keys(v).map((k) => {
      const d = Object.getOwnPropertyDescriptor(v, k);
      return `${k}: ${d.get ? '<getter>' : describe(d.value, depth + 1)}`;
    }).join(', ')}}`;
  } catch {
    return '<proxy>';
  }
}

const isClean = (e) => e instanceof Error && typeof e.message === 'string' && e.message.length > 0;

// ---------------------------------------------------------------------------------------------
// Child: one batch

async function child([seedArg, callsArg, msArg, statusFile]) {
  const lib = loadPackage();
  const r = new Rng(Number(seedArg));
  const deadline = Date.now() + Number(msArg);
  const names = Object.keys(ENTRIES);
  const fd = fs.openSync(statusFile, 'w');
  const n = { tried: 0, clean: 0, returned: 0, unclean: 0 };
  const byEntry = {};
  const uncleanSamples = [];
  for (let i = 0; i < Number(callsArg) && Date.now() < deadline; i++) {
    const name = names[i % names.length];
    const entry = ENTRIES[name];
    let args;
    let desc;
    try {
      args = entry.valid(r, lib);
      if (r.bool(0.9)) mutate(r, args); // a tenth stay valid: the control that the call itself works
      desc = `${name}(${describe(args).slice(1, -1)})`.replace(/\n/g, ' ').slice(0, 2000);
    } catch {
      continue; // the mutation itself tripped on a hostile value (a proxy trap): not a call
    }
    // The call in flight, written before it runs: after a crash this is the culprit.
    fs.writeSync(fd, `${n.tried} ${n.clean} ${n.returned} ${n.unclean}\n#${i} ${desc}\n\n`, 0);
    n.tried++;
    const e = (byEntry[name] ??= { tried: 0, clean: 0, returned: 0, unclean: 0 });
    e.tried++;
    try {
      await (entry.call ? entry.call(lib, args) : lib[name](...args));
      n.returned++;
      e.returned++;
    } catch (err) {
      if (isClean(err)) {
        n.clean++;
        e.clean++;
      } else {
        n.unclean++;
        e.unclean++;
        if (uncleanSamples.length < 3) uncleanSamples.push(`${desc.slice(0, 200)} threw ${describe(err)}`);
      }
    }
  }
  fs.writeSync(fd, `${n.tried} ${n.clean} ${n.returned} ${n.unclean}\ndone\n\n`, 0);
  process.stdout.write(`${JSON.stringify({ ...n, byEntry, uncleanSamples })}\n`);
}

// ---------------------------------------------------------------------------------------------
// Parent

/**
 * Runs batches in child processes, one at a time, until `budgetMs` is spent.
 * @returns one report row.
 */
export async function run({ budgetMs, seed = 1, callsPerBatch = 4000, batchMs = 4000 }) {
  const t0 = Date.now();
  const r = row('native fuzz', 'kernels, in child processes');
  const extra = { returned: 0, unclean: 0, batches: 0, hangs: 0, byEntry: {}, uncleanSamples: [] };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'capibara-chaos-fuzz-'));
  const file = fileURLToPath(import.meta.url);
  try {
    for (let b = 0; Date.now() - t0 < budgetMs - 500; b++) {
      const batchSeed = (seed * 1_000_003 + b) >>> 0;
      const status = path.join(dir, `batch-${b}.txt`);
      const ms = Math.min(batchMs, budgetMs - (Date.now() - t0));
      let result = null;
      const c = startChild(file, [batchSeed, callsPerBatch, ms, status], {
        timeoutMs: ms + 30_000, // no call should take seconds: past this the batch hangs
        onLine: (line) => {
          if (line.startsWith('{')) result = JSON.parse(line);
        },
      });
      const end = await c.done;
      extra.batches++;
      const how = outcome(end);
      if (result) {
        r.tried += result.tried;
        r.cleanErrors += result.clean;
        extra.returned += result.returned;
        extra.unclean += result.unclean;
        extra.uncleanSamples.push(...result.uncleanSamples);
        for (const [name, e] of Object.entries(result.byEntry)) {
          const acc = (extra.byEntry[name] ??= { tried: 0, clean: 0, returned: 0, unclean: 0 });
          for (const k of Object.keys(acc)) acc[k] += e[k];
        }
      }
      if (how === 'ok' && result) continue;
      // Crashed, hung, or an error escaped: the status file names the call in flight.
      const [counts = '', inFlight = '?'] = fs.existsSync(status) ? fs.readFileSync(status, 'utf8').split('\n') : [];
      const [tried, clean, returned, unclean] = counts.split(' ').map(Number);
      if (!result && Number.isFinite(tried)) {
        r.tried += tried + 1; // the call in flight counts as tried
        r.cleanErrors += clean;
        extra.returned += returned;
        extra.unclean += unclean;
      }
      r.crashes++;
      if (how === 'hang') extra.hangs++;
      const what = how === 'js-error' ? 'an uncaught JS error escaped (it would end a real process)'
        : how === 'ok' ? 'exited mid-batch with nothing left to run: a promise never settled' : how;
      r.failures.push(`${what}, ${describeEnd(end)}; call ${inFlight}; replay: node scripts/chaos/fuzz.mjs child ${batchSeed} ${callsPerBatch} ${ms} /tmp/status.txt`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  r.notes.push(`${extra.batches} batches, ${extra.returned} returned, ${extra.unclean} threw a non-Error or an empty message`);
  if (extra.hangs) r.notes.push(`${extra.hangs} batches hung (counted as crashes)`);
  for (const s of extra.uncleanSamples.slice(0, 3)) r.notes.push(`unclean: ${s}`);
  r.detail = extra;
  r.seconds = (Date.now() - t0) / 1000;
  return [r];
}

if (isChild(import.meta.url)) childMain(child);
