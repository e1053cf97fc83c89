/**
 * The Lua scripts of {@link RedisBudgetStore}, one per operation, and the number encoding they
 * share with it. Every script starts with the same prelude: it checks the namespace's epoch
 * (did Redis lose the budget state since this client last looked?) before anything else, and
 * returns `{ header, body }`, where header = `{ epoch, lostAt or '', detected '1'/'0' }`.
 *
 * KEYS of every script: the 8 namespace keys ({@link namespaceKeys}), then its own.
 * ARGV of every script: prefix, now, the epoch this client last saw ('' = none yet), a fresh
 * random epoch to create with, then its own.
 * @module
 */
import { createHash } from 'node:crypto';

/** The namespace keys every script receives first, in this order. */
export function namespaceKeys(prefix: string): string[] {
  return ['reservations', 'windows', 'expired', 'seq', 'epoch', 'lost', 'epochs:old', 'runid'].map((k) => prefix + k);
}

/** How many namespace keys come before a script's own. */
export const NAMESPACE_KEYS = 8;

// Shared by every script. Numbers cross as strings: JS String(x) and Lua's '%.17g' both
// round-trip a double exactly, so sums here equal the in-process store's to the last bit.
const PRELUDE = `
local P, NOW, SEEN, FRESH = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local RZ, WZ, EXPIRED, SEQ = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local EK, LK, OLD, RUNK = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local DETECTED = '0'

local function num(s)
  if s == 'inf' then return math.huge elseif s == '-inf' then return -math.huge end
  return tonumber(s)
end
local function fmt(x) return string.format('%.17g', x) end

-- Redis lost the state at NOW (or earlier): every window open then is suspect. Of two losses
-- the later one counts, since windows open at it are suspect too.
local function recordLoss()
  local prev = redis.call('GET', LK)
  if not prev or num(prev) < num(NOW) then redis.call('SET', LK, NOW) end
  DETECTED = '1'
end

-- The namespace's epoch: a random value written with the namespace, no TTL. Missing while this
-- client had seen one, or different and not known as superseded: Redis lost the state.
local function guard()
  local e = redis.call('GET', EK)
  if not e then
    e = FRESH
    redis.call('SET', EK, e)
    if SEEN ~= '' then
      redis.call('SADD', OLD, SEEN)
      recordLoss()
    end
  elseif SEEN ~= '' and e ~= SEEN and redis.call('SISMEMBER', OLD, SEEN) == 0 then
    -- A client that never knew the old state created this epoch after the loss.
    redis.call('SADD', OLD, SEEN)
    recordLoss()
  end
  return e
end

local function reply(e, body) return { { e, redis.call('GET', LK) or '', DETECTED }, body } end

-- Frees a reservation: its amount leaves each window's reserved, actual joins committed.
local function settle(id, rkey, actual)
  local r = redis.call('HMGET', rkey, 'amount', 'keys', 'meta')
  local amount = num(r[1])
  redis.call('DEL', rkey)
  redis.call('ZREM', RZ, id)
  local after = {}
  for _, k in ipairs(cjson.decode(r[2])) do
    local wkey = P .. 'w:' .. k
    local w = redis.call('HMGET', wkey, 'committed', 'reserved')
    local committed, reserved = 0, 0
    if w[1] then
      committed, reserved = num(w[1]), num(w[2])
    else
      -- Dropped meanwhile: starts again with no expiry, as the in-process store does.
      redis.call('ZREM', WZ, k)
    end
    reserved = math.max(0, reserved - amount)
    committed = committed + actual
    redis.call('HSET', wkey, 'committed', fmt(committed), 'reserved', fmt(reserved))
    after[#after + 1] = k
    after[#after + 1] = fmt(committed)
    after[#after + 1] = fmt(reserved)
  end
  return amount, after, r[3]
end

-- Releases reservations whose expiry has passed (in placement order, so float sums match the
-- in-process store), queues them for expire(), and drops expired windows that hold nothing.
local function sweep()
  local due = redis.call('ZRANGEBYSCORE', RZ, '-inf', NOW)
  if #due > 0 then
    local list = {}
    for _, id in ipairs(due) do
      local rkey = P .. 'r:' .. id
      local seq = redis.call('HGET', rkey, 'seq')
      if seq then list[#list + 1] = { tonumber(seq), id, rkey } else redis.call('ZREM', RZ, id) end
    end
    table.sort(list, function(a, b) return a[1] < b[1] end)
    for _, e in ipairs(list) do
      local _, _, meta = settle(e[2], e[3], 0)
      redis.call('RPUSH', EXPIRED, e[2], meta)
    end
  end
  for _, k in ipairs(redis.call('ZRANGEBYSCORE', WZ, '-inf', NOW)) do
    local wkey = P .. 'w:' .. k
    local reserved = redis.call('HGET', wkey, 'reserved')
    if not reserved then
      redis.call('ZREM', WZ, k)
    elseif num(reserved) == 0 then
      redis.call('DEL', wkey)
      redis.call('ZREM', WZ, k)
    end
  end
end

-- A window's counters, created (with its expiry) when missing.
local function window(wkey, k, wexp, at)
  local w = redis.call('HMGET', wkey, 'committed', 'reserved')
  if w[1] then return num(w[1]), num(w[2]) end
  redis.call('HSET', wkey, 'committed', '0', 'reserved', '0')
  if wexp ~= '' then
    redis.call('ZADD', WZ, wexp, k)
    if at ~= '' then redis.call('PEXPIREAT', wkey, at) end
  end
  return 0, 0
end
`;

// KEYS: namespace, reservation, windows…  ARGV: common, id, amount, expiresAt, meta, onStateLoss
// ('fail' | 'reset'), then per window: key, cap, expiresAt ('' = none), PEXPIREAT ms ('' = none),
// startsAt ('' = unknown).
// Body: {placed 0/1, refusedBy, committed1, reserved1, …} (usage before), or {-1, index} when
// onStateLoss is 'fail' and the window at index began before the recorded loss (or at an unknown time).
const RESERVE = `${PRELUDE}
local e = guard()
sweep()
local amount = num(ARGV[6])
local rkey = KEYS[9]
local n = #KEYS - 9
local lost = redis.call('GET', LK)
if lost and ARGV[9] == 'fail' then
  for i = 1, n do
    local s = ARGV[9 + (i - 1) * 5 + 5]
    if s == '' or num(s) < num(lost) then return reply(e, { -1, i - 1 }) end
  end
end
local out = { 0, -1 }
local keys = {}
for i = 1, n do
  local a = 9 + (i - 1) * 5
  local k = ARGV[a + 1]
  keys[i] = k
  -- Created even when refused: a window's expiry is fixed by whoever first names it.
  local committed, reserved = window(KEYS[9 + i], k, ARGV[a + 3], ARGV[a + 4])
  out[#out + 1] = fmt(committed)
  out[#out + 1] = fmt(reserved)
  if out[2] < 0 and committed + reserved + amount > num(ARGV[a + 2]) then out[2] = i - 1 end
end
if out[2] >= 0 then return reply(e, out) end
-- Re-read each window: a key named twice is charged twice, as in the in-process store.
for i = 1, n do
  local wkey = KEYS[9 + i]
  redis.call('HSET', wkey, 'reserved', fmt(num(redis.call('HGET', wkey, 'reserved')) + amount))
end
local seq = redis.call('HGET', rkey, 'seq') or redis.call('INCR', SEQ)
redis.call('DEL', rkey)
redis.call('HSET', rkey, 'amount', ARGV[6], 'keys', cjson.encode(keys), 'expiresAt', ARGV[7], 'meta', ARGV[8], 'seq', seq)
redis.call('ZADD', RZ, ARGV[7], ARGV[5])
out[1] = 1
return reply(e, out)
`;

// KEYS: namespace, reservation.  ARGV: common, id, actual ('0' = release).
// Body: false, or {amount, meta, key1, committed1, reserved1, …} (usage after).
const SETTLE = `${PRELUDE}
local e = guard()
sweep()
if redis.call('EXISTS', KEYS[9]) == 0 then return reply(e, false) end
local amount, after, meta = settle(ARGV[5], KEYS[9], num(ARGV[6]))
table.insert(after, 1, meta)
table.insert(after, 1, fmt(amount))
return reply(e, after)
`;

// KEYS: namespace, charge marker, windows….  ARGV: common, id, amount, then per window: key,
// expiresAt ('' = none), PEXPIREAT ms ('' = none).
// Body: {applied 0/1, committed1, reserved1, …} (usage after). The marker (24 h) makes a charge
// sent again under the same id, after a reply that never came, a no-op.
const CHARGE = `${PRELUDE}
local e = guard()
sweep()
local amount = num(ARGV[6])
local n = #KEYS - 9
local applied = 0
if redis.call('EXISTS', KEYS[9]) == 0 then
  applied = 1
  for i = 1, n do
    local a = 6 + (i - 1) * 3
    local wkey = KEYS[9 + i]
    window(wkey, ARGV[a + 1], ARGV[a + 2], ARGV[a + 3])
    -- Re-read: a key named twice is charged twice.
    redis.call('HSET', wkey, 'committed', fmt(num(redis.call('HGET', wkey, 'committed')) + amount))
  end
  redis.call('SET', KEYS[9], '1', 'PX', 86400000)
end
local out = { applied }
for i = 1, n do
  local w = redis.call('HMGET', KEYS[9 + i], 'committed', 'reserved')
  out[#out + 1] = w[1] or '0'
  out[#out + 1] = w[2] or '0'
end
return reply(e, out)
`;

// KEYS: namespace.  Body: {id1, meta1, …}; empties the list.
const EXPIRE = `${PRELUDE}
local e = guard()
sweep()
local out = redis.call('LRANGE', EXPIRED, 0, -1)
redis.call('DEL', EXPIRED)
return reply(e, out)
`;

// KEYS: namespace, windows….  Body: {committed1, reserved1, …}.
const USAGE = `${PRELUDE}
local e = guard()
sweep()
local out = {}
for i = 9, #KEYS do
  local w = redis.call('HMGET', KEYS[i], 'committed', 'reserved')
  out[#out + 1] = w[1] or '0'
  out[#out + 1] = w[2] or '0'
end
return reply(e, out)
`;

// Once per connection. KEYS: namespace.  ARGV: common, Redis run_id ('' = not known), appendonly
// ('yes' | 'no' | '' = not known). A namespace that outlived a restart (another run_id) of a
// Redis without an append-only file was loaded from an RDB snapshot or a replica: whatever
// changed after that copy is gone, so that is a loss too. Body: {}.
const CHECK = `${PRELUDE}
local e = guard()
if ARGV[5] ~= '' then
  local prev = redis.call('GET', RUNK)
  if prev and prev ~= ARGV[5] and ARGV[6] == 'no' then recordLoss() end
  redis.call('SET', RUNK, ARGV[5])
end
return reply(e, {})
`;

// KEYS: namespace.  Clears the loss marker: windows open at the loss count from what they hold.  Body: {}.
const ACCEPT = `${PRELUDE}
local e = guard()
redis.call('DEL', LK)
return reply(e, {})
`;

/** A script and its SHA-1, for EVALSHA. */
export interface Script {
  lua: string;
  sha: string;
}

function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/** Every script of the store. */
export const SCRIPTS = {
  reserve: script(RESERVE),
  settle: script(SETTLE),
  charge: script(CHARGE),
  expire: script(EXPIRE),
  usage: script(USAGE),
  check: script(CHECK),
  accept: script(ACCEPT),
};

/** A number as the scripts read it: Lua's tonumber() and '%.17g' spell infinities 'inf'; JS's String() spells them 'Infinity'. */
export function enc(x: number): string {
  if (Number.isFinite(x)) return String(x);
  return x > 0 ? 'inf' : x < 0 ? '-inf' : 'nan';
}

/** A number from a script's reply. */
export function dec(s: unknown): number {
  const n = Number(s);
  if (!Number.isNaN(n)) return n;
  return s === 'inf' ? Infinity : s === '-inf' ? -Infinity : NaN;
}
