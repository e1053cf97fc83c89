/**
 * Which budget windows a request falls in, and how far each may fill: pure functions of the
 * budget table, the request and the clock.
 * @module
 */
import { calendarWindow } from './periods';
import { type BudgetDefinition, EnforcementLevel, type Overdraft, type ResourceType } from './types';

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
    let end: number | null;
    if (def.scope === 'request') {
      window = 'request';
      end = null;
    } else if (def.scope === 'session') {
      if (sessionId === undefined) continue;
      window = `session:${sessionId}`;
      end = null;
    } else {
      const w = calendarWindow(def.scope, now, def.timeZone ?? 'UTC');
      window = w.key;
      end = w.end;
    }
    // Ids are caller text: encode them so no requester or session can name another's window.
    out.push({ budgetId, def, key: `${budgetId}|${encodeURIComponent(owner)}|${encodeURIComponent(window)}`, window, end });
  }
  return out;
}

/** How far a window may fill for a request of `priority` under `level`. */
export function windowCap(level: EnforcementLevel, overdraft: Overdraft, limit: number, priority: number): number {
  if (level === EnforcementLevel.SOFT) return Infinity;
  if (level === EnforcementLevel.MEDIUM && priority >= overdraft.minPriority) return limit * (1 + overdraft.ratio);
  return limit;
}
