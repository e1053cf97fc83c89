/**
 * Calendar windows of budgets: which day, ISO week or month an instant falls in, in a time
 * zone, and when that window ends. Keys change exactly on the local boundary, so a budget
 * resets there without any timer.
 * @module
 */
import type { BudgetScope } from './types';

const DAY = 86_400_000;
const formatters = new Map<string, Intl.DateTimeFormat>();

/** Throws a RangeError naming the option when `timeZone` is not an IANA zone this runtime knows. */
export function checkTimeZone(name: string, timeZone: string): string {
  try {
    formatter(timeZone);
  } catch {
    throw new RangeError(`Expected an IANA time zone (e.g. 'UTC', 'Europe/Madrid') for ${name} but received '${timeZone}'`);
  }
  return timeZone;
}

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

interface Local {
  year: number;
  month: number; // 1-12
  day: number;
}

/** Wall-clock fields of `t` in `timeZone`, and the zone's offset from UTC at `t` (ms). */
function local(t: number, timeZone: string): Local & { offset: number } {
  const parts: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(new Date(t))) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  const asUtc = Date.UTC(parts['year']!, parts['month']! - 1, parts['day']!, parts['hour']!, parts['minute']!, parts['second']!);
  return { year: parts['year']!, month: parts['month']!, day: parts['day']!, offset: asUtc - (t - (t % 1000 + 1000) % 1000) };
}

/**
 * The instant local date `d` starts in `timeZone`: its midnight, or — where clocks skip
 * midnight (e.g. America/Santiago) — the first instant that exists on that date.
 */
function midnight(d: Local, timeZone: string): number {
  const guess = Date.UTC(d.year, d.month - 1, d.day);
  // Offsets around the date give at most two candidates; the day starts at the earliest
  // one that falls on the date itself.
  const candidates = [guess - local(guess, timeZone).offset, guess - local(guess - DAY / 2, timeZone).offset, guess - local(guess + DAY / 2, timeZone).offset];
  let best = Infinity;
  for (const t of candidates) {
    const l = local(t, timeZone);
    if (l.year === d.year && l.month === d.month && l.day === d.day && t < best) best = t;
  }
  if (best === Infinity) best = Math.min(...candidates);
  // A skipped midnight: step back to the first instant of the date (an hour or less earlier).
  for (let step = 3_600_000; step >= 60_000; step /= 60) {
    while (true) {
      const l = local(best - step, timeZone);
      if (l.year === d.year && l.month === d.month && l.day === d.day) best -= step;
      else break;
    }
  }
  return best;
}

function addDays(d: Local, n: number): Local {
  const t = new Date(Date.UTC(d.year, d.month - 1, d.day + n));
  return { year: t.getUTCFullYear(), month: t.getUTCMonth() + 1, day: t.getUTCDate() };
}

const pad = (n: number) => String(n).padStart(2, '0');

/** A calendar window: its key (stable within the window) and its end instant (epoch ms). */
export interface CalendarWindow {
  key: string;
  start: number;
  end: number;
}

// Last window computed per scope and zone: Intl formatting costs microseconds, and nearly every
// call falls in the same window as the previous one.
const recent = new Map<string, CalendarWindow>();

/** The daily / weekly (ISO, Monday first) / monthly window containing `now` in `timeZone`. */
export function calendarWindow(scope: Extract<BudgetScope, 'daily' | 'weekly' | 'monthly'>, now: number, timeZone: string): CalendarWindow {
  const id = `${scope}|${timeZone}`;
  const last = recent.get(id);
  if (last && now >= last.start && now < last.end) return last;
  const w = computeWindow(scope, now, timeZone);
  if (now >= w.start && now < w.end) recent.set(id, w);
  return w;
}

function computeWindow(scope: Extract<BudgetScope, 'daily' | 'weekly' | 'monthly'>, now: number, timeZone: string): CalendarWindow {
  const d = local(now, timeZone);
  if (scope === 'daily') {
    return { key: `${d.year}-${pad(d.month)}-${pad(d.day)}`, start: midnight(d, timeZone), end: midnight(addDays(d, 1), timeZone) };
  }
  if (scope === 'monthly') {
    const next = d.month === 12 ? { year: d.year + 1, month: 1, day: 1 } : { year: d.year, month: d.month + 1, day: 1 };
    return { key: `${d.year}-${pad(d.month)}`, start: midnight({ ...d, day: 1 }, timeZone), end: midnight(next, timeZone) };
  }
  // ISO 8601 week: Monday first; the week belongs to the year of its Thursday.
  const dow = (new Date(Date.UTC(d.year, d.month - 1, d.day)).getUTCDay() + 6) % 7; // Monday = 0
  const monday = addDays(d, -dow);
  const thursday = addDays(monday, 3);
  const week = 1 + Math.floor((Date.UTC(thursday.year, thursday.month - 1, thursday.day) - Date.UTC(thursday.year, 0, 1)) / (7 * DAY));
  return { key: `${thursday.year}-W${pad(week)}`, start: midnight(monday, timeZone), end: midnight(addDays(monday, 7), timeZone) };
}
