/**
 * Which budget windows a request falls in, and how far each may fill: pure functions of the
 * budget table, the request and the clock.
 * @module
 */
import { calendarWindow } from './periods';
import { type BudgetDefinition, EnforcementLevel, type Overdraft, type ResourceType } from './types';
import type { WindowCheck, WindowUsage } from './store';

/** One budget window a request falls in. */
export interface BudgetWindow {
  budgetId: string;
  def: BudgetDefinition;
  /** Store key: budget id, owner and window, each caller-supplied part URI-encoded. */
  key: string;
  /** Window name as reported (`2026-11-25`, `session:<id>`, `request`). */
  window: string;
  /** When the window ends (epoch ms); null for request and session windows. */
  end: number | null;
  /** When the window began (epoch ms): a calendar window's first instant; null for request and session windows. */
  start: number | null;
}

/** The windows a request by `requesterId` (in `sessionId`) falls in, for every matching budget. */
export function budgetWindows(
  budgets: ReadonlyMap<string, BudgetDefinition>,
  resourceType: ResourceType,
  requesterId: string,
  sessionId: string | undefined,
  now: number,
): BudgetWindow[] {
  const out: BudgetWindow[] = [];
  for (const [budgetId, def] of budgets) {
    if (def.resourceType !== resourceType) continue;
    if (def.requesterId !== undefined && def.requesterId !== requesterId) continue;
    const owner = def.requesterId !== undefined || def.shared ? '*' : requesterId;
    let window: string;
    let end: number | null = null;
    let start: number | null = null;
    if (def.scope === 'request') {
      window = 'request';
    } else if (def.scope === 'session') {
      if (sessionId === undefined) continue;
      window = `session:${sessionId}`;
    } else {
      const w = calendarWindow(def.scope, now, def.timeZone ?? 'UTC');
      window = w.key;
      end = w.end;
      start = w.start;
    }
    // Ids are caller text: encode them so no requester or session can name another's window.
    out.push({ budgetId, def, key: `${budgetId}|${encodeURIComponent(owner)}|${encodeURIComponent(window)}`, window, end, start });
  }
  return out;
}

/** How far a window may fill for a request of `priority` under `level`. */
export function windowCap(level: EnforcementLevel, overdraft: Overdraft, limit: number, priority: number): number {
  if (level === EnforcementLevel.SOFT) return Infinity;
  if (level === EnforcementLevel.MEDIUM && priority >= overdraft.minPriority) return limit * (1 + overdraft.ratio);
  return limit;
}

/**
 * What the store checks for each window: its cap, when its counters may go, and when it began
 * (a session may have begun up to `sessionTtl` ago, so a store that lost its state must assume it did).
 */
export function windowChecks(windows: readonly BudgetWindow[], cap: (limit: number) => number, now: number, sessionTtl: number): WindowCheck[] {
  return windows.map((w) => ({
    key: w.key,
    cap: cap(w.def.limit),
    expiresAt: w.def.scope === 'session' ? now + sessionTtl : w.end,
    startsAt: w.def.scope === 'session' ? now - sessionTtl : w.start,
  }));
}

/**
 * Per resource: Σ (committed + reserved) / Σ limit over the given windows (`usage` in the same
 * order); null for resources with no window or a zero limit, and for those with windows when
 * `usage` is null (not known).
 */
export function utilisationOf(
  windows: ReadonlyArray<{ resourceType: ResourceType; limit: number }>,
  usage: readonly WindowUsage[] | null,
  resources: readonly ResourceType[],
): Partial<Record<ResourceType, number | null>> {
  const sums = new Map<ResourceType, { used: number; limit: number }>();
  windows.forEach((t, i) => {
    const s = sums.get(t.resourceType) ?? { used: 0, limit: 0 };
    s.used += usage === null ? NaN : (usage[i]?.committed ?? 0) + (usage[i]?.reserved ?? 0);
    s.limit += t.limit;
    sums.set(t.resourceType, s);
  });
  const out: Partial<Record<ResourceType, number | null>> = {};
  for (const r of resources) {
    const s = sums.get(r);
    out[r] = s && s.limit > 0 && !Number.isNaN(s.used) ? s.used / s.limit : null;
  }
  return out;
}
