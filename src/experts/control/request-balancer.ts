/**
 * Request-level load balancing: DeepSeek-V3's loss-free bias controller (`BiasBalancer`) fed
 * with the queries routed per replica, its bias applied to the router's relevance.
 * @module
 */
import { BiasBalancer } from '../gating/index';
import type { RewiringExperts, RoutingDecision } from '../routing/index';

/** Resolved {@link LoadBalancingOptions}. */
export interface BalancerSettings {
  rate: number;
  mode: 'sign' | 'proportional';
  batchQueries: number;
  maxBias: number;
}

/**
 * Counts routed queries per active expert in batches of `batchQueries`; at the end of a batch
 * updates the bias from the batch's load per replica and returns the new bias.
 */
export class RequestBalancer {
  readonly settings: BalancerSettings;
  #ids: string[] = [];
  #index = new Map<string, number>();
  #balancer: BiasBalancer | undefined;
  #counts = new Float64Array(0);
  #seen = 0;

  constructor(settings: BalancerSettings, ids: readonly string[]) {
    this.settings = settings;
    this.setExperts(ids);
  }

  /** The active experts changed: keep the bias of those that stay, start new ones at 0, restart the batch. */
  setExperts(ids: readonly string[]): void {
    const old = this.bias();
    this.#ids = [...ids];
    this.#index = new Map(this.#ids.map((id, i) => [id, i]));
    this.#rebuild(this.#ids.map((id) => old.get(id) ?? 0));
  }

  /** Counts one routed query; returns the new bias when the batch completed, else undefined. */
  observe(expertId: string, replicas: (id: string) => number): Map<string, number> | undefined {
    const i = this.#index.get(expertId);
    if (i === undefined || this.#balancer === undefined) return undefined;
    this.#counts[i]! += 1;
    if (++this.#seen < this.settings.batchQueries) return undefined;
    const loads = this.#ids.map((id, k) => this.#counts[k]! / replicas(id));
    this.#counts.fill(0);
    this.#seen = 0;
    this.#balancer.update(loads);
    const b = this.#balancer.bias;
    const max = this.settings.maxBias;
    // Anti-windup: a bias held at its bound does not keep growing while the imbalance lasts.
    if (b.some((x) => Math.abs(x) > max)) this.#rebuild(Array.from(b, (x) => Math.min(max, Math.max(-max, x))));
    return this.bias();
  }

  /**
   * Feeds the balancer with `router`'s routed queries and applies each new bias to it; returns
   * the detach, which also removes the bias from the router.
   */
  attach(router: RewiringExperts, replicas: (id: string) => number): () => void {
    const onRouted = (d: RoutingDecision) => {
      const bias = this.observe(d.expertId, replicas);
      if (bias !== undefined) router.setRelevanceBias(bias);
    };
    router.on('routed', onRouted);
    return () => {
      router.off('routed', onRouted);
      router.setRelevanceBias(null);
    };
  }

  /** The current bias per active expert. */
  bias(): Map<string, number> {
    const out = new Map<string, number>();
    if (this.#balancer === undefined) return out;
    const b = this.#balancer.bias;
    this.#ids.forEach((id, i) => out.set(id, b[i]!));
    return out;
  }

  #rebuild(initial: number[]): void {
    this.#counts = new Float64Array(this.#ids.length);
    this.#seen = 0;
    this.#balancer = this.#ids.length === 0 ? undefined : new BiasBalancer({ experts: this.#ids.length, rate: this.settings.rate, mode: this.settings.mode, initialBias: initial });
  }
}
