/**
 * The sliding window of one expert's outcomes, with its cooldown, for the health tracker.
 * @module
 */
import type { CooldownReason } from './types';

/**
 * One expert's window. Outcomes of the same ms share one bucket, so memory stays below
 * min(requests, windowMs) buckets however busy the expert; `head` skips expired buckets
 * without shifting the arrays on every request.
 * @internal
 */
export class HealthWindow {
  at: number[] = [];
  requests: number[] = [];
  failures: number[] = [];
  head = 0;
  totalRequests = 0;
  totalFailures = 0;
  coolingUntil: number | null = null;
  reason: CooldownReason | null = null;

  add(t: number, failed: boolean): void {
    const last = this.at.length - 1;
    // A clock that steps back (NTP) merges into the last bucket, keeping `at` sorted.
    if (last >= this.head && t <= this.at[last]!) {
      this.requests[last]! += 1;
      this.failures[last]! += failed ? 1 : 0;
    } else {
      this.at.push(t);
      this.requests.push(1);
      this.failures.push(failed ? 1 : 0);
    }
    this.totalRequests += 1;
    this.totalFailures += failed ? 1 : 0;
  }

  /** Drops buckets recorded at or before `now - windowMs`. */
  prune(now: number, windowMs: number): void {
    while (this.head < this.at.length && this.at[this.head]! <= now - windowMs) {
      this.totalRequests -= this.requests[this.head]!;
      this.totalFailures -= this.failures[this.head]!;
      this.head += 1;
    }
    if (this.head > 64 && this.head * 2 > this.at.length) {
      this.at = this.at.slice(this.head);
      this.requests = this.requests.slice(this.head);
      this.failures = this.failures.slice(this.head);
      this.head = 0;
    }
  }

  clear(): void {
    this.at = [];
    this.requests = [];
    this.failures = [];
    this.head = 0;
    this.totalRequests = 0;
    this.totalFailures = 0;
  }
}
