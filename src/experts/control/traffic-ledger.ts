/**
 * The traffic ledger: per-expert and per-domain counters fed by a router's events. Time buckets
 * serve sliding windows ("the last minute"); taps serve consecutive windows (one lifecycle pass
 * or monitor sample to the next), counted exactly from event to event.
 * @module
 */
import { tokenize } from '../../memory/bm25';
import type { RewiringExperts, RoutingDecision } from '../routing/rewiring-experts';
import type { RoutingContext, RoutingOutcome } from '../routing/types';
import { addCounters, emptyCounters, type ExpertCounters } from './counters';

/** Counters of one consecutive window, from a tap. */
export interface WindowCounts {
  /** Clock ms the window opened. */
  from: number;
  /** Clock ms it closed. */
  to: number;
  /** Per expert. */
  experts: Map<string, ExpertCounters>;
  /** Queries routed in the window, all experts. */
  routed: number;
  /** Per expert, term counts of the queries routed to it (empty unless the tap collects terms). */
  terms: Map<string, Map<string, number>>;
}

/** Per-domain counters plus the domain's routed queries per expert. */
export interface DomainCounters extends ExpertCounters {
  byExpert: Map<string, number>;
}

/** Distinct terms kept per expert per window: a bound on memory; later new terms are not counted. */
const MAX_TERMS = 4096;
/** Decisions remembered for their domain until an outcome succeeds; beyond it the oldest go. */
const MAX_OPEN_DECISIONS = 8192;

/** Counts events from the moment it opens until `take`, which starts the next window. */
export class LedgerTap {
  /** Whether query terms are counted (tokenizing costs about 2 µs a query). */
  terms: boolean;
  #from: number;
  #experts = new Map<string, ExpertCounters>();
  #terms = new Map<string, Map<string, number>>();
  #routed = 0;
  readonly #onClose: () => void;

  constructor(from: number, terms: boolean, onClose: () => void) {
    this.#from = from;
    this.terms = terms;
    this.#onClose = onClose;
  }

  counters(id: string): ExpertCounters {
    let c = this.#experts.get(id);
    if (c === undefined) this.#experts.set(id, (c = emptyCounters()));
    return c;
  }

  addRouted(id: string, terms: readonly string[] | undefined): void {
    this.counters(id).routed += 1;
    this.#routed += 1;
    if (!this.terms || terms === undefined) return;
    let m = this.#terms.get(id);
    if (m === undefined) this.#terms.set(id, (m = new Map()));
    for (const t of terms) {
      const n = m.get(t);
      if (n !== undefined) m.set(t, n + 1);
      else if (m.size < MAX_TERMS) m.set(t, 1);
    }
  }

  /** The window so far, without closing it. */
  peek(now: number): WindowCounts {
    const experts = new Map<string, ExpertCounters>();
    for (const [id, c] of this.#experts) experts.set(id, { ...c });
    const terms = new Map<string, Map<string, number>>();
    for (const [id, m] of this.#terms) terms.set(id, new Map(m));
    return { from: this.#from, to: now, experts, routed: this.#routed, terms };
  }

  /** Closes the window at `now` and opens the next one. */
  take(now: number): WindowCounts {
    const out: WindowCounts = { from: this.#from, to: now, experts: this.#experts, routed: this.#routed, terms: this.#terms };
    this.#from = now;
    this.#experts = new Map();
    this.#terms = new Map();
    this.#routed = 0;
    return out;
  }

  /** Moves the sources' counts onto `into`. */
  merge(sources: readonly string[], into: string): void {
    for (const s of sources) {
      if (s === into) continue;
      const c = this.#experts.get(s);
      if (c !== undefined) {
        addCounters(this.counters(into), c);
        this.#experts.delete(s);
      }
      const m = this.#terms.get(s);
      if (m !== undefined) {
        let acc = this.#terms.get(into);
        if (acc === undefined) this.#terms.set(into, (acc = new Map()));
        for (const [t, n] of m) acc.set(t, (acc.get(t) ?? 0) + n);
        this.#terms.delete(s);
      }
    }
  }

  close(): void {
    this.#onClose();
  }
}

interface Bucket {
  start: number;
  experts: Map<string, ExpertCounters>;
}

/**
 * Counts a router's traffic. Bucketed event times are the clock's at the event, rounded down
 * to `bucketMs`; buckets older than `retainMs` are dropped; all-time totals are kept.
 */
export class TrafficLedger {
  readonly bucketMs: number;
  readonly retainMs: number;
  readonly #now: () => number;
  readonly #domainOf: (expertId: string) => string;
  readonly #buckets: Bucket[] = [];
  readonly #totals = new Map<string, ExpertCounters>();
  readonly #lastRouted = new Map<string, number>();
  readonly #domains = new Map<string, DomainCounters>();
  readonly #open = new Map<string, string>();
  readonly #taps = new Set<LedgerTap>();

  constructor(o: { bucketMs: number; retainMs: number; now: () => number; domainOf: (expertId: string) => string }) {
    this.bucketMs = o.bucketMs;
    this.retainMs = o.retainMs;
    this.#now = o.now;
    this.#domainOf = o.domainOf;
  }

  /** Subscribes to the router's events; returns the function that unsubscribes. */
  attach(router: RewiringExperts): () => void {
    const routed = (d: RoutingDecision, text: string, ctx: RoutingContext) => this.routed(d, text, ctx);
    const outcome = (id: string, o: RoutingOutcome) => this.outcome(id, o);
    router.on('routed', routed);
    router.on('outcome', outcome);
    return () => {
      router.off('routed', routed);
      router.off('outcome', outcome);
    };
  }

  /** Opens a tap: consecutive windows counted from now. `terms` also counts query terms per expert. */
  tap(terms: boolean): LedgerTap {
    const t: LedgerTap = new LedgerTap(this.#now(), terms, () => this.#taps.delete(t));
    this.#taps.add(t);
    return t;
  }

  routed(d: RoutingDecision, text: string, ctx: RoutingContext): void {
    const t = this.#now();
    this.#lastRouted.set(d.expertId, t);
    this.#expert(this.#bucket(t), d.expertId).routed += 1;
    this.#total(d.expertId).routed += 1;
    let terms: string[] | undefined;
    for (const tap of this.#taps) {
      if (tap.terms) terms ??= tokenize(text);
      tap.addRouted(d.expertId, terms);
    }
    const domain = ctx.domain ?? this.#domainOf(d.expertId);
    const dc = this.#domain(domain);
    dc.routed += 1;
    dc.byExpert.set(d.expertId, (dc.byExpert.get(d.expertId) ?? 0) + 1);
    this.#open.set(d.id, domain);
    if (this.#open.size > MAX_OPEN_DECISIONS) this.#open.delete(this.#open.keys().next().value!);
  }

  outcome(decisionId: string, o: RoutingOutcome): void {
    const id = o.expertId!;
    const domain = this.#open.get(decisionId) ?? this.#domainOf(id);
    if (o.success) this.#open.delete(decisionId);
    const targets = [this.#expert(this.#bucket(this.#now()), id), this.#total(id), this.#domain(domain)];
    for (const tap of this.#taps) targets.push(tap.counters(id));
    for (const c of targets) {
      c.outcomes += 1;
      if (o.success) c.successes += 1;
      else c.failures += 1;
      c.latencyMs += o.latencyMs;
      if (o.quality !== undefined) {
        c.qualitySum += o.quality;
        c.qualityCount += 1;
      }
    }
  }

  /** All-time counters of an expert (zeros when it never had traffic). */
  totals(id: string): ExpertCounters {
    return { ...(this.#totals.get(id) ?? emptyCounters()) };
  }

  /** When the expert was last routed a query (clock ms), or undefined. */
  lastRoutedAt(id: string): number | undefined {
    return this.#lastRouted.get(id);
  }

  /** Per expert, the counters of the buckets whose start is >= `from` (a sliding window up to now). */
  since(from: number): Map<string, ExpertCounters> {
    this.#prune();
    const out = new Map<string, ExpertCounters>();
    for (const b of this.#buckets) {
      if (b.start < from) continue;
      for (const [id, c] of b.experts) {
        let acc = out.get(id);
        if (acc === undefined) out.set(id, (acc = emptyCounters()));
        addCounters(acc, c);
      }
    }
    return out;
  }

  /** Per-domain counters since the ledger started (copies). */
  domains(): Map<string, DomainCounters> {
    const out = new Map<string, DomainCounters>();
    for (const [d, c] of this.#domains) out.set(d, { ...c, byExpert: new Map(c.byExpert) });
    return out;
  }

  /** Moves the traffic of `sources` onto `into` (a merged expert inherits its sources' traffic). */
  merge(sources: readonly string[], into: string): void {
    const fold = (m: Map<string, ExpertCounters>) => {
      for (const s of sources) {
        const c = m.get(s);
        if (s === into || c === undefined) continue;
        let acc = m.get(into);
        if (acc === undefined) m.set(into, (acc = emptyCounters()));
        addCounters(acc, c);
        m.delete(s);
      }
    };
    fold(this.#totals);
    for (const b of this.#buckets) fold(b.experts);
    for (const tap of this.#taps) tap.merge(sources, into);
    let last = this.#lastRouted.get(into);
    for (const s of sources) {
      const t = this.#lastRouted.get(s);
      if (t !== undefined && (last === undefined || t > last)) last = t;
      if (s !== into) this.#lastRouted.delete(s);
    }
    if (last !== undefined) this.#lastRouted.set(into, last);
    for (const dc of this.#domains.values()) {
      for (const s of sources) {
        const n = dc.byExpert.get(s);
        if (s === into || n === undefined) continue;
        dc.byExpert.set(into, (dc.byExpert.get(into) ?? 0) + n);
        dc.byExpert.delete(s);
      }
    }
  }

  #bucket(t: number): Bucket {
    const start = Math.floor(t / this.bucketMs) * this.bucketMs;
    const last = this.#buckets[this.#buckets.length - 1];
    // A clock that steps back (NTP) adds to the newest bucket, keeping the array sorted.
    if (last !== undefined && start <= last.start) return last;
    const b: Bucket = { start, experts: new Map() };
    this.#buckets.push(b);
    this.#prune();
    return b;
  }

  #prune(): void {
    const oldest = this.#now() - this.retainMs;
    let n = 0;
    while (n < this.#buckets.length && this.#buckets[n]!.start + this.bucketMs <= oldest) n++;
    if (n > 0) this.#buckets.splice(0, n);
  }

  #expert(b: Bucket, id: string): ExpertCounters {
    let c = b.experts.get(id);
    if (c === undefined) b.experts.set(id, (c = emptyCounters()));
    return c;
  }

  #total(id: string): ExpertCounters {
    let c = this.#totals.get(id);
    if (c === undefined) this.#totals.set(id, (c = emptyCounters()));
    return c;
  }

  #domain(d: string): DomainCounters {
    let c = this.#domains.get(d);
    if (c === undefined) this.#domains.set(d, (c = { ...emptyCounters(), byExpert: new Map() }));
    return c;
  }
}
