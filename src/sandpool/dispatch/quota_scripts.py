"""The Lua scripts of the tenant quotas a gateway keeps in Redis (``dispatch.redis_quotas``):
each runs atomically, so admissions from any number of gateways never overshoot, and a
lease is given back at most once whoever notices first that it should be.

Keys, under the dispatch's prefix ``{p}``:

    {p}qt:{tenant}     HASH    count, cpu (millicores), memory (bytes), tokens, stamp (ms)
    {p}ql:{lease}      HASH    tenant, cpu, memory, owner (a gateway id), sandbox ('' if none)
    {p}qleases         SET     every lease id
    {p}qs:{sandbox}    STRING  the lease bound to that sandbox
    {p}gw:{gateway}    STRING  a gateway's heartbeat; its TTL is the gateway's lease
"""

from __future__ import annotations

__all__ = ["ADMIT", "BIND", "RECONCILE", "RELEASE", "RESTORE"]

_NOW = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# Give lease ``id`` back: 1, or 0 if it was given back already.
_RELEASE = """
local function release(p, id)
  local l = p .. 'ql:' .. id
  local f = redis.call('HMGET', l, 'tenant', 'cpu', 'memory', 'sandbox')
  redis.call('SREM', p .. 'qleases', id)
  if not f[1] then return 0 end
  local tk = p .. 'qt:' .. f[1]
  redis.call('HINCRBY', tk, 'count', -1)
  redis.call('HINCRBY', tk, 'cpu', 0 - tonumber(f[2]))
  redis.call('HINCRBY', tk, 'memory', 0 - tonumber(f[3]))
  redis.call('DEL', l)
  if f[4] and f[4] ~= '' and redis.call('GET', p .. 'qs:' .. f[4]) == id then
    redis.call('DEL', p .. 'qs:' .. f[4])
  end
  return 1
end
"""

_COUNT = """
local function count_lease(p, t, id, owner, cpu, memory, sandbox)
  local tk = p .. 'qt:' .. t
  redis.call('HINCRBY', tk, 'count', 1)
  redis.call('HINCRBY', tk, 'cpu', cpu)
  redis.call('HINCRBY', tk, 'memory', memory)
  redis.call('HSET', p .. 'ql:' .. id, 'tenant', t, 'cpu', cpu, 'memory', memory,
             'owner', owner, 'sandbox', sandbox)
  redis.call('SADD', p .. 'qleases', id)
  if sandbox ~= '' then redis.call('SET', p .. 'qs:' .. sandbox, id) end
end
"""

# ARGV: prefix, tenant, lease, owner, concurrent, cpu quota (m), memory quota, creates per
# second, cpu (m), memory, owner's lease ms. {'ok'}; {'full', count, cpu, memory} (what the
# tenant holds); {'rate', ms to wait}.
ADMIT = (
    _NOW
    + _COUNT
    + """
local p, t, id, owner = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('SET', p .. 'gw:' .. owner, '1', 'PX', ARGV[11])
local tk = p .. 'qt:' .. t
local u = redis.call('HMGET', tk, 'count', 'cpu', 'memory', 'tokens', 'stamp')
local count, cpu, mem = tonumber(u[1] or '0'), tonumber(u[2] or '0'), tonumber(u[3] or '0')
local need_cpu, need_mem = tonumber(ARGV[9]), tonumber(ARGV[10])
if count + 1 > tonumber(ARGV[5]) or cpu + need_cpu > tonumber(ARGV[6])
   or mem + need_mem > tonumber(ARGV[7]) then
  return {'full', count, cpu, mem}
end
local ms, rate = now_ms(), tonumber(ARGV[8])
local burst = math.max(1, rate)
local tokens = tonumber(u[4] or '') or burst
local stamp = tonumber(u[5] or '') or ms
tokens = math.min(burst, tokens + math.max(0, ms - stamp) / 1000 * rate)
if tokens < 1 then
  redis.call('HSET', tk, 'tokens', string.format('%.6f', tokens), 'stamp', ms)
  return {'rate', math.ceil((1 - tokens) / rate * 1000)}
end
redis.call('HSET', tk, 'tokens', string.format('%.6f', tokens - 1), 'stamp', ms)
count_lease(p, t, id, owner, need_cpu, need_mem, '')
return {'ok'}
"""
)

# ARGV: prefix, tenant, lease, owner, cpu (m), memory, sandbox. Count a sandbox that runs
# already, unless a lease is bound to it: the id of the lease that counts it.
RESTORE = (
    _COUNT
    + """
local p, sandbox = ARGV[1], ARGV[7]
local known = redis.call('GET', p .. 'qs:' .. sandbox)
if known and redis.call('EXISTS', p .. 'ql:' .. known) == 1 then return known end
count_lease(p, ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]), sandbox)
return ARGV[3]
"""
)

# ARGV: prefix, lease, sandbox. 1, or 0 if the lease was given back meanwhile.
BIND = """
local p, id, sandbox = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', p .. 'ql:' .. id) == 0 then return 0 end
redis.call('HSET', p .. 'ql:' .. id, 'sandbox', sandbox)
redis.call('SET', p .. 'qs:' .. sandbox, id)
return 1
"""

# ARGV: prefix, lease. 1 if this call gave it back, 0 if it was given back already.
RELEASE = (
    _RELEASE
    + """
return release(ARGV[1], ARGV[2])
"""
)

# ARGV: prefix. Give back every lease whose sandbox ended (terminated, worker_lost, or its
# record is gone) and every unbound one whose gateway's heartbeat ran out: their ids.
RECONCILE = (
    _RELEASE
    + """
local p = ARGV[1]
local released = {}
for _, id in ipairs(redis.call('SMEMBERS', p .. 'qleases')) do
  local f = redis.call('HMGET', p .. 'ql:' .. id, 'owner', 'sandbox')
  local gone = false
  if f[2] and f[2] ~= '' then
    local state = redis.call('HGET', p .. 's:' .. f[2], 'state')
    gone = (not state) or state == 'terminated' or state == 'terminating'
  elseif f[1] then
    gone = redis.call('EXISTS', p .. 'gw:' .. f[1]) == 0
  else
    gone = true
  end
  if gone and release(p, id) == 1 then table.insert(released, id) end
end
return released
"""
)
