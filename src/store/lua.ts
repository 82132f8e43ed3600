/**
 * Every Lua script the gateway runs in Redis, in one file (after fastify-rate-limit's
 * store/lua.js): the counters of budgets and failed authentications
 * (src/store/redis-counter-store.ts) and the lease and announcement of the cache coherence
 * protocol (src/store/coherence.ts), the claim of one fill for all (src/store/shared-fill.ts), and the
 * sync jobs of every instance (src/store/shared-jobs.ts). Each runs atomically, in one round trip.
 */

// Counters.

/** Lua: INCR `key`, and start the window of `windowMs` when the key is new (or lost its TTL); sets count, ttl. */
function incrLua(key: string, windowMs: string): string {
  return `
local count = redis.call('INCR', ${key})
local ttl = redis.call('PTTL', ${key})
if ttl < 0 then
  redis.call('PEXPIRE', ${key}, ${windowMs})
  ttl = tonumber(${windowMs})
end`
}

// Returns {count, pttl}.
export const INCR_SCRIPT = `${incrLua('KEYS[1]', 'ARGV[1]')}
return {count, ttl}
`

// The live counter without counting. Returns {count, pttl}; count 0 when absent.
export const GET_SCRIPT = `
local count = redis.call('GET', KEYS[1])
if not count then return {0, -2} end
return {tonumber(count), redis.call('PTTL', KEYS[1])}
`

// One hit taken back from a live counter, never below 0 and never one without a TTL.
export const DECR_SCRIPT = `
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 and redis.call('PTTL', KEYS[1]) > 0 then redis.call('DECR', KEYS[1]) end
return 1
`

// Cache coherence.

// The run id of the Redis server running the script: a new one is a new process (a restart) or
// another server (a failover, SPEC 15), which may lack the last writes of the one before.
const RUN_ID = `local runid = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')`

// KEYS: members, seq, events, epoch. ARGV: instance id, lease ms, last seen seq (-1: none), epoch
// candidate, key TTL. Returns {epoch, seq, gap (0|1), events newer than last seen, run id}. An epoch
// is 'random:run id:creation time (ms)', made by the first renewal that finds none (a Redis that lost
// its data) or one another server made (a replica promoted, a Redis restarted from a snapshot: either
// may lack the last events, replication and persistence being asynchronous).
export const RENEW_SCRIPT = `
${RUN_ID}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = redis.call('GET', KEYS[4])
if epoch and not string.find(epoch, ':' .. runid .. ':', 1, true) then epoch = false end
if not epoch then
  epoch = ARGV[4] .. ':' .. runid .. ':' .. now
  redis.call('SET', KEYS[4], epoch, 'PX', ARGV[5])
else
  redis.call('PEXPIRE', KEYS[4], ARGV[5])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
local last = tonumber(ARGV[3])
local gap = 0
local events = {}
if last >= 0 then
  if seq < last then
    gap = 1
  elseif seq > last then
    local want = seq - last
    if want > redis.call('LLEN', KEYS[3]) then gap = 1 else events = redis.call('LRANGE', KEYS[3], -want, -1) end
  end
end
return {epoch, seq, gap, events, runid}
`

// KEYS: seq, events, members, ctxgen, epoch. ARGV: context, writer id, key TTL, max events, channel.
// Returns {seq, redis now (ms), {member, lease end, ...}, epoch or ''}: '' when there is none, or
// when another server made it (this one may not list every lease granted: the writer waits a lease).
export const ANNOUNCE_SCRIPT = `
${RUN_ID}
local epoch = redis.call('GET', KEYS[5])
if epoch and not string.find(epoch, ':' .. runid .. ':', 1, true) then epoch = false end
local seq = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local event = seq .. '\\n' .. ARGV[2] .. '\\n' .. ARGV[1]
redis.call('RPUSH', KEYS[2], event)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[4], ARGV[1], seq)
redis.call('PEXPIRE', KEYS[4], ARGV[3])
redis.call('PUBLISH', ARGV[5], event)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local members = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. now, '+inf', 'WITHSCORES')
return {seq, now, members, epoch or ''}
`

// One fill for all (src/store/shared-fill.ts). Its keys are made in the script from the context's
// generation, under the base the caller passes: the coherence keys' hash tag, so on a Redis Cluster
// they are in the slot of KEYS[1], which the script's node serves.

// KEYS: ctxgen. ARGV: context, key digest, key base (prefix and hash tag), lock TTL ms, instance id.
// Returns {generation, state}: state 'filler' (this caller fetches), 'wait', or what a finished fill
// left: 'ready' (bytes at <base>:body), 'large' or 'failed' (fetch for yourself).
export const FILL_CLAIM_SCRIPT = `
local gen = redis.call('HGET', KEYS[1], ARGV[1]) or '0'
local base = ARGV[3] .. ARGV[2] .. ':' .. gen
local state = redis.call('GET', base .. ':state')
if state then return {gen, state} end
if redis.call('SET', base .. ':lock', ARGV[5], 'NX', 'PX', ARGV[4]) then return {gen, 'filler'} end
return {gen, 'wait'}
`

// Sync jobs.

// KEYS: the owner's running set, the apply lock (the same key again when there is none).
// ARGV: job id, now (ms), lease end (ms), maxJobs, '1' when the job applies, key TTL (ms).
// Returns 'ok', 'apply-running' or 'too-many'.
export const SYNC_CLAIM_SCRIPT = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if ARGV[5] == '1' then
  local holder = redis.call('GET', KEYS[2])
  if holder and holder ~= ARGV[1] then return 'apply-running' end
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 'too-many' end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
if ARGV[5] == '1' then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[6]) end
return 'ok'
`

// KEYS: the job's document, the owner's running set, the apply lock (or the document again), the
// cancel flag. ARGV: job id, document JSON, '1' while running, lease end (ms), lease TTL (ms),
// retention (ms), '1' when the job applies. Returns 1 when a cancel was asked for.
export const SYNC_PUBLISH_SCRIPT = `
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[6])
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  if ARGV[7] == '1' then redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[5]) end
else
  redis.call('ZREM', KEYS[2], ARGV[1])
  if ARGV[7] == '1' and redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
end
if redis.call('EXISTS', KEYS[4]) == 1 then return 1 end
return 0
`
