/**
 * The Lua scripts of the shared routing state ({@link SharedRoutingState}): expert health by
 * LiteLLM's rules over the whole fleet's outcomes, and the stream of outcomes every replica
 * folds into its strategy statistics. Redis runs each script whole, so two replicas recording
 * failures of one expert at once cannot both miss the threshold.
 *
 * Key layout, all under the prefix (default `{capibara}:routing:`; the `{…}` hash tag keeps a
 * namespace in one Redis Cluster slot, since the scripts reach keys they name themselves):
 * - `<prefix>h:<expert>`  hash: `R`, `F` (requests and failures in the window) and one `r:<t>` /
 *   `f:<t>` pair per clock ms `t` with outcomes; expires `windowMs` + 60 s after its last outcome.
 * - `<prefix>w:<expert>`  sorted set of those `t`, for pruning the window in time order.
 * - `<prefix>cooling`     hash: expert → `<until>|<reason>` of each cooldown not known to be over.
 * - `<prefix>outcomes`    stream of outcomes (replica, expert, success, latency, quality, time),
 *   trimmed to about `MAX_OUTCOMES` entries.
 * - `<prefix>events`      pub/sub channel: `<expert>|<until>|<reason>` when a cooldown starts.
 *
 * Times are the callers' clocks (ms), as in the in-process tracker; replicas' clocks should agree.
 * @module
 */
import { createHash } from 'node:crypto';

/** Entries the outcome stream keeps (approximately: `XADD MAXLEN ~`). */
export const MAX_OUTCOMES = 10_000;
/** Outcome entries one reply carries at most; a replica further behind reads the rest next time. */
export const OUTCOMES_PER_REPLY = 1000;

// Shared by both scripts. ARGV[1] prefix, ARGV[2] now; the rules follow in ARGV[3..6].
const PRELUDE = `
local P, NOW, NOWS = ARGV[1], tonumber(ARGV[2]), ARGV[2]
local WINDOW, RATE, MINREQ, COOL = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local C, S = P .. 'cooling', P .. 'outcomes'

local function split(v)
  local u, r = string.match(v, '^([^|]*)|(.*)$')
  return tonumber(u), r
end

-- Ends the cooldowns whose time has come, clearing their windows (as the in-process tracker
-- does: failures from before a cooldown cannot trip it again); returns the rest, flat.
local function cooling()
  local all = redis.call('HGETALL', C)
  local out = {}
  for i = 1, #all, 2 do
    local u = split(all[i + 1])
    if u == nil or NOW >= u then
      redis.call('HDEL', C, all[i])
      redis.call('DEL', P .. 'h:' .. all[i], P .. 'w:' .. all[i])
    else
      out[#out + 1] = all[i]
      out[#out + 1] = all[i + 1]
    end
  end
  return out
end

-- Drops outcomes recorded at or before NOW - WINDOW; returns requests, failures left.
local function prune(id)
  local h, w = P .. 'h:' .. id, P .. 'w:' .. id
  local old = redis.call('ZRANGEBYSCORE', w, '-inf', NOW - WINDOW)
  if #old > 0 then
    local r, f = 0, 0
    for _, t in ipairs(old) do
      local x = redis.call('HMGET', h, 'r:' .. t, 'f:' .. t)
      r = r + (tonumber(x[1]) or 0)
      f = f + (tonumber(x[2]) or 0)
      redis.call('HDEL', h, 'r:' .. t, 'f:' .. t)
    end
    redis.call('HINCRBY', h, 'R', -r)
    redis.call('HINCRBY', h, 'F', -f)
    redis.call('ZREMRANGEBYSCORE', w, '-inf', NOW - WINDOW)
  end
  local x = redis.call('HMGET', h, 'R', 'F')
  return tonumber(x[1]) or 0, tonumber(x[2]) or 0
end

-- Starts (or extends) a cooldown until U; true when it changed.
local function cool(id, u, reason)
  local cur = redis.call('HGET', C, id)
  if cur then
    local cu = split(cur)
    if cu ~= nil and cu >= u then return false end
  end
  local v = string.format('%.17g', u) .. '|' .. reason
  redis.call('HSET', C, id, v)
  redis.call('PUBLISH', P .. 'events', id .. '|' .. v)
  return true
end

-- Outcomes after LAST ('' = none: only the stream's newest id, so a new replica starts from now).
local function outcomes(last)
  if last == '' then
    local top = redis.call('XREVRANGE', S, '+', '-', 'COUNT', 1)
    return { top[1] and top[1][1] or '0-0', {} }
  end
  local e = redis.call('XRANGE', S, '(' .. last, '+', 'COUNT', ${OUTCOMES_PER_REPLY})
  return { e[#e] and e[#e][1] or last, e }
end
`;

/**
 * Records one outcome. ARGV: prefix, now, windowMs, failureRate, minRequests, cooldownMs, then
 * expert, failed '1'/'0', nonRetryable '1'/'0', retryAfterMs, replica, latencyMs, quality ('' =
 * none), the last outcome id this replica has read. Returns { { R, F }, cooling (flat), { last
 * id, entries } }.
 */
const RECORD = `${PRELUDE}
local ID, FAILED, NONRETRY, RETRY = ARGV[7], ARGV[8] == '1', ARGV[9] == '1', tonumber(ARGV[10])
local h, w = P .. 'h:' .. ID, P .. 'w:' .. ID
cooling()
prune(ID)
redis.call('ZADD', w, NOW, NOWS)
redis.call('HINCRBY', h, 'r:' .. NOWS, 1)
redis.call('HINCRBY', h, 'R', 1)
if FAILED then
  redis.call('HINCRBY', h, 'f:' .. NOWS, 1)
  redis.call('HINCRBY', h, 'F', 1)
end
redis.call('PEXPIRE', h, math.floor(WINDOW) + 60000)
redis.call('PEXPIRE', w, math.floor(WINDOW) + 60000)
local x = redis.call('HMGET', h, 'R', 'F')
local R, F = tonumber(x[1]) or 0, tonumber(x[2]) or 0
if FAILED then
  local reason = nil
  if NONRETRY then reason = 'non-retryable'
  elseif RETRY > 0 then reason = 'retry-after'
  elseif R >= MINREQ and F / R > RATE then reason = 'failure-rate' end
  if reason then cool(ID, NOW + (RETRY > 0 and RETRY or COOL), reason) end
end
redis.call('XADD', S, 'MAXLEN', '~', ${MAX_OUTCOMES}, '*', 'p', ARGV[11], 'e', ID, 's', FAILED and '0' or '1', 'l', ARGV[12], 'q', ARGV[13], 't', NOWS)
return { { R, F }, cooling(), outcomes(ARGV[14]) }
`;

/**
 * Reads the fleet's state. ARGV: prefix, now, the four rules, the last outcome id read, the
 * number of experts n, their ids, then cooldowns to restore as (expert, until, reason) triples
 * (a replica's own cooldowns after a reconnect: Redis may have lost them). Returns { windows
 * (flat R, F per expert in order), cooling (flat), { last id, entries } }.
 */
const SYNC = `${PRELUDE}
local n = tonumber(ARGV[8])
local i = 9 + n
while i + 2 <= #ARGV do
  local u = tonumber(ARGV[i + 1])
  if u > NOW then cool(ARGV[i], u, ARGV[i + 2]) end
  i = i + 3
end
local list = cooling()
local windows = {}
for k = 1, n do
  local r, f = prune(ARGV[8 + k])
  windows[#windows + 1] = r
  windows[#windows + 1] = f
end
return { windows, list, outcomes(ARGV[7]) }
`;

/** One script: its source and SHA-1 for EVALSHA. */
export interface Script {
  readonly lua: string;
  readonly sha: string;
}

const script = (lua: string): Script => ({ lua, sha: createHash('sha1').update(lua).digest('hex') });

/** The two scripts. */
export const SCRIPTS = { record: script(RECORD), sync: script(SYNC) } as const;
