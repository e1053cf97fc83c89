/**
 * The traffic ledger: per-expert and per-domain counters fed by a router's events. Time buckets
 * serve sliding windows ("the last minute"); taps serve consecutive windows (one lifecycle pass
 * or monitor sample to the next), counted exactly from event to event.
 * @module
 */
import type { RewiringExperts, RoutingContext, RoutingDecision, RoutingOutcome } from '../routing/index';
import { tokenize } from '../../text/index';
import { CloseGuard } from '../../toolkit/closing';
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
  /** Whether `terms` counts every query of the window (term counting was on from its start). */
  termsComplete: boolean;
}

/** Per-domain counters plus the domain's routed queries per expert. */
export interface DomainCounters extends ExpertCounters {
  byExpert: Map<string, number>;
}

/** Distinct terms kept per expert per window: a bound on memory; later new terms are not counted. */
const MAX_TERMS = 4096;
/** Decisions remembered for their domain and expert until an outcome succeeds; beyond it the oldest go. */
const MAX_OPEN_DECISIONS = 8192;
/** Domains counted apart; a new one beyond it folds the {@link DOMAIN_FOLD} least recently used into {@link OTHER_DOMAIN}. */
export const MAX_DOMAINS = 4096;
/** Domains folded at once when {@link MAX_DOMAINS} is reached (a batch, so that folding stays rare). */
export const DOMAIN_FOLD = 1024;
/** The domain that folded domains are counted under. */
export const OTHER_DOMAIN = 'other';

/** Counts events from the moment it opens until `take`, which starts the next window; `close` stops it. */
export class LedgerTap {
  readonly #guard = new CloseGuard('The ledger tap');
  #terms: boolean;
  // Whether terms were counted over the whole window so far.
  #termsWhole = true;
  #from: number;
  #experts = new Map<string, ExpertCounters>();
  #termCounts = new Map<string, Map<string, number>>();
  #routed = 0;
  readonly #onClose: () => void;

  constructor(from: number, terms: boolean, onClose: () => void) {
    this.#from = from;
    this.#terms = terms;
    this.#onClose = onClose;
  }

  /** Whether query terms are counted (tokenizing costs about 2 µs a query). */
  get terms(): boolean {
    return this.#terms;
  }

  /** Turning counting on after the window had queries leaves that window's terms incomplete. */
  set terms(on: boolean) {
    if (on && !this.#terms && this.#routed > 0) this.#termsWhole = false;
    this.#terms = on;
  }

  counters(id: string): ExpertCounters {
    let c = this.#experts.get(id);
    if (c === undefined) this.#experts.set(id, (c = emptyCounters()));
    return c;
  }

  addRouted(id: string, terms: readonly string[] | undefined): void {
    this.counters(id).routed += 1;
    this.#routed += 1;
    if (!this.#terms || terms === undefined) return;
    let m = this.#termCounts.get(id);
    if (m === undefined) this.#termCounts.set(id, (m = new Map()));
    for (const t of terms) {
      const n = m.get(t);
      if (n !== undefined) m.set(t, n + 1);
      else if (m.size < MAX_TERMS) m.set(t, 1);
    }
  }

  /** Closes the window at `now` and opens the next one. */
  take(now: number): WindowCounts {
    this.#guard.check();
    const out: WindowCounts = {
      from: this.#from, to: now, experts: this.#experts, routed: this.#routed, terms: this.#termCounts, termsComplete: this.#terms && this.#termsWhole,
    };
    this.#from = now;
    this.#experts = new Map();
    this.#termCounts = new Map();
    this.#routed = 0;
    this.#termsWhole = true;
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
      const m = this.#termCounts.get(s);
      if (m !== undefined) {
        let acc = this.#termCounts.get(into);
        if (acc === undefined) this.#termCounts.set(into, (acc = new Map()));
        for (const [t, n] of m) acc.set(t, (acc.get(t) ?? 0) + n);
        this.#termCounts.delete(s);
      }
    }
  }

  /** Drops an expert's counts (an id that starts afresh). */
  forget(id: string): void {
    this.#experts.delete(id);
    this.#termCounts.delete(id);
  }

  /** Stops counting (the ledger forgets the tap). Idempotent; `take` then throws. */
  close(): void {
    this.#guard.closeSync(this.#onClose);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}

interface Bucket {
  start: number;
  experts: Map<string, ExpertCounters>;
}

/** What the ledger remembers of a decision awaiting its successful outcome. */
interface OpenDecision {
  domain: string;
  /** The decision's chosen expert: an outcome for another one is a fallback try. */
  expertId: string;
}

interface DomainEntry {
  counters: DomainCounters;
  /** Recency stamp: the ledger's event count at the domain's last event. */
  seen: number;
}

/**
 * Counts a router's traffic. Bucketed event times are the clock's at the event, rounded down
 * to `bucketMs`; buckets older than `retainMs` are dropped; all-time totals are kept.
 */
export class TrafficLedger {
  readonly bucketMs: number;
  readonly retainMs: number;
  /** Clock ms the ledger started counting. */
  readonly startedAt: number;
  readonly #now: () => number;
  readonly #domainOf: (expertId: string) => string;
  readonly #buckets: Bucket[] = [];
  readonly #totals = new Map<string, ExpertCounters>();
  readonly #lastUsed = new Map<string, number>();
  readonly #domains = new Map<string, DomainEntry>();
  #events = 0;
  readonly #open = new Map<string, OpenDecision>();
  // Open decision ids in routing order, for evicting the oldest: ids closed since are skipped
  // when reached. (Taking the oldest from the map itself, `keys().next()`, scans the slots V8
  // leaves behind deleted entries until a rehash: microseconds per call.)
  #openOrder: string[] = [];
  #openHead = 0;
  // Merged expert id → the id it was merged into: outcomes of queries in flight at the merge.
  readonly #mergedInto = new Map<string, string>();
  readonly #taps = new Set<LedgerTap>();

  constructor(o: { bucketMs: number; retainMs: number; now: () => number; domainOf: (expertId: string) => string }) {
    this.bucketMs = o.bucketMs;
    this.retainMs = o.retainMs;
    this.#now = o.now;
    this.#domainOf = o.domainOf;
    this.startedAt = o.now();
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
    this.#lastUsed.set(d.expertId, t);
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
    this.#open.set(d.id, { domain, expertId: d.expertId });
    this.#openOrder.push(d.id);
    if (this.#open.size > MAX_OPEN_DECISIONS) {
      while (this.#openHead < this.#openOrder.length && !this.#open.delete(this.#openOrder[this.#openHead++]!));
    }
    // Keep the order array within a few times the open decisions: amortised O(1) per decision.
    if (this.#openOrder.length >= 4 * MAX_OPEN_DECISIONS) {
      this.#openOrder = this.#openOrder.slice(this.#openHead).filter((id) => this.#open.has(id));
      this.#openHead = 0;
    }
  }

  outcome(decisionId: string, o: RoutingOutcome): void {
    const id = this.#resolve(o.expertId!);
    const open = this.#open.get(decisionId);
    const domain = open?.domain ?? this.#domainOf(id);
    const fallback = open !== undefined && this.#resolve(open.expertId) !== id ? 1 : 0;
    if (o.success) this.#open.delete(decisionId);
    const t = this.#now();
    this.#lastUsed.set(id, t);
    const targets = [this.#expert(this.#bucket(t), id), this.#total(id), this.#domain(domain)];
    for (const tap of this.#taps) targets.push(tap.counters(id));
    for (const c of targets) {
      c.outcomes += 1;
      c.fallbacks += fallback;
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

  /** When the expert was last used — routed a query, or an outcome recorded for it (clock ms) — or undefined. */
  lastUsedAt(id: string): number | undefined {
    return this.#lastUsed.get(id);
  }

  /**
   * Per expert, the counters of the buckets whose start is in [`from`, `to`] (a sliding window
   * up to now: buckets stamped after `to`, left by a clock that stepped back, do not count).
   */
  since(from: number, to: number = this.#now()): Map<string, ExpertCounters> {
    this.#prune();
    const out = new Map<string, ExpertCounters>();
    for (const b of this.#buckets) {
      if (b.start < from) continue;
      if (b.start > to) break;
      for (const [id, c] of b.experts) {
        let acc = out.get(id);
        if (acc === undefined) out.set(id, (acc = emptyCounters()));
        addCounters(acc, c);
      }
    }
    return out;
  }

  /**
   * The span a sliding window of `windowMs` ending at `now` has really been counted over:
   * `min(windowMs, now − startedAt)`, at least one bucket (the ledger's resolution).
   */
  span(windowMs: number, now: number): number {
    return Math.min(windowMs, Math.max(this.bucketMs, now - this.startedAt));
  }

  /** Per-domain counters since the ledger started (copies). */
  domains(): Map<string, DomainCounters> {
    const out = new Map<string, DomainCounters>();
    for (const [d, { counters: c }] of this.#domains) out.set(d, { ...c, byExpert: new Map(c.byExpert) });
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
    let last = this.#lastUsed.get(into);
    for (const s of sources) {
      const t = this.#lastUsed.get(s);
      if (t !== undefined && (last === undefined || t > last)) last = t;
      if (s !== into) this.#lastUsed.delete(s);
    }
    if (last !== undefined) this.#lastUsed.set(into, last);
    for (const { counters: dc } of this.#domains.values()) {
      for (const s of sources) {
        const n = dc.byExpert.get(s);
        if (s === into || n === undefined) continue;
        dc.byExpert.set(into, (dc.byExpert.get(into) ?? 0) + n);
        dc.byExpert.delete(s);
      }
    }
    this.#mergedInto.delete(into);
    for (const s of sources) if (s !== into) this.#mergedInto.set(s, into);
  }

  /** Forgets an expert's counters (an id that comes back starts afresh); domain counts stay. */
  reset(id: string): void {
    this.#totals.delete(id);
    this.#lastUsed.delete(id);
    for (const b of this.#buckets) b.experts.delete(id);
    for (const tap of this.#taps) tap.forget(id);
    for (const s of [...this.#mergedInto.keys()]) if (s === id || this.#resolve(s) === id) this.#mergedInto.delete(s);
  }

  // The id an expert's traffic is counted under now: itself, or the expert it was merged into.
  #resolve(id: string): string {
    if (this.#mergedInto.size === 0) return id;
    let r = id;
    for (let hops = 0; hops <= this.#mergedInto.size; hops++) {
      const next = this.#mergedInto.get(r);
      if (next === undefined) return r;
      r = next;
    }
    return r;
  }

  #bucket(t: number): Bucket {
    const start = Math.floor(t / this.bucketMs) * this.bucketMs;
    const n = this.#buckets.length;
    const last = this.#buckets[n - 1];
    if (last === undefined || start > last.start) {
      const b: Bucket = { start, experts: new Map() };
      this.#buckets.push(b);
      this.#prune();
      return b;
    }
    if (start === last.start) return last;
    // The clock stepped back (NTP): the event goes to the bucket of its time, kept in order.
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#buckets[mid]!.start < start) lo = mid + 1;
      else hi = mid;
    }
    if (this.#buckets[lo]!.start === start) return this.#buckets[lo]!;
    const b: Bucket = { start, experts: new Map() };
    this.#buckets.splice(lo, 0, b);
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
    let e = this.#domains.get(d);
    if (e === undefined) {
      e = { counters: { ...emptyCounters(), byExpert: new Map() }, seen: 0 };
      this.#domains.set(d, e);
      if (this.#domains.size > MAX_DOMAINS) this.#foldDomains(e);
    }
    e.seen = ++this.#events;
    return e.counters;
  }

  // Folds the least recently used domains (never `keep`, the one being added) into OTHER_DOMAIN.
  #foldDomains(keep: DomainEntry): void {
    keep.seen = ++this.#events;
    const oldest = [...this.#domains].filter(([d]) => d !== OTHER_DOMAIN).sort((x, y) => x[1].seen - y[1].seen).slice(0, DOMAIN_FOLD);
    let other = this.#domains.get(OTHER_DOMAIN);
    if (other === undefined) this.#domains.set(OTHER_DOMAIN, (other = { counters: { ...emptyCounters(), byExpert: new Map() }, seen: 0 }));
    const acc = other.counters;
    for (const [d, { counters: c }] of oldest) {
      addCounters(acc, c);
      for (const [id, n] of c.byExpert) acc.byExpert.set(id, (acc.byExpert.get(id) ?? 0) + n);
      this.#domains.delete(d);
    }
  }
}
