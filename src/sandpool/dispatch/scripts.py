"""The Lua scripts that change dispatch state: each runs atomically in Redis, so any number
of gateways can place, acknowledge and reap at once without two of them doing the same thing.

Every script takes the key prefix as ARGV[1] and builds its key names from it (see
``dispatch.keys``): the set of keys a worker's loss touches is not known in advance. This
needs one Redis (not Redis Cluster).
"""

from __future__ import annotations

__all__ = ["ACK", "EXPIRE", "HEARTBEAT", "LOST", "REGISTER", "RELEASE", "RESERVE", "STALE",
           "SUBMIT"]  # fmt: skip

_FREE = "'free_cpu', 'free_memory', 'free_gpus', 'free_sandboxes'"

# Give a need (4 numbers) back to a worker's free share, if the worker is still registered.
_GIVE_BACK = f"""
local function give_back(p, w, need)
  local wk = p .. 'w:' .. w
  if redis.call('EXISTS', wk) == 0 then return end
  local names = {{{_FREE}}}
  for i = 1, 4 do redis.call('HINCRBY', wk, names[i], tonumber(need[i])) end
end
"""

# Put a placed request back in the backlog (its attempt stays: the next placement bumps it,
# which fences the old delivery's acknowledgement).
_REQUEUE = """
local function requeue(p, id, w, attempt)
  local r = p .. 'r:' .. id
  local st = redis.call('HMGET', r, 'state', 'worker', 'attempt', 'arrival')
  if st[1] ~= 'placed' or st[2] ~= w or st[3] ~= attempt then return false end
  redis.call('HSET', r, 'state', 'queued', 'worker', '')
  redis.call('ZADD', p .. 'backlog', st[4], id)
  return true
end
local function entry_fields(e)
  local f = {}
  for i = 1, #e[2], 2 do f[e[2][i]] = e[2][i + 1] end
  return f
end
"""

# ARGV: prefix, id, max backlog, submitted ms, deadline ms, demand, payload, kind, keep s,
# the need (4 numbers as a comma list). 1: queued; 0: the backlog is full; -1: id taken.
SUBMIT = """
local p, id = ARGV[1], ARGV[2]
if redis.call('ZCARD', p .. 'backlog') >= tonumber(ARGV[3]) then return 0 end
local r = p .. 'r:' .. id
if redis.call('EXISTS', r) == 1 then return -1 end
local seq = redis.call('INCR', p .. 'seq')  -- the backlog's order: first come, first placed
redis.call('HSET', r, 'demand', ARGV[6], 'payload', ARGV[7], 'kind', ARGV[8], 'state', 'queued',
           'attempt', 0, 'arrival', seq, 'submitted', ARGV[4], 'deadline', ARGV[5],
           'worker', '', 'need', ARGV[10])
redis.call('EXPIRE', r, ARGV[9])
redis.call('ZADD', p .. 'backlog', seq, id)
redis.call('ZADD', p .. 'deadlines', ARGV[5], id)
return 1
"""

# ARGV: prefix, worker, request id, cpu, memory, gpus, sandboxes, '1' if a warm sandbox would
# serve it (the worker's reported ready count drops by one until its next heartbeat).
# {'ok', entry, attempt} or {'dead'} / {'gone'} / {'full'}.
RESERVE = f"""
local p, w, id = ARGV[1], ARGV[2], ARGV[3]
if redis.call('SISMEMBER', p .. 'workers', w) == 0
   or redis.call('EXISTS', p .. 'w:' .. w .. ':hb') == 0 then return {{'dead'}} end
if not redis.call('ZSCORE', p .. 'backlog', id) then return {{'gone'}} end
local wk = p .. 'w:' .. w
local free = redis.call('HMGET', wk, {_FREE})
local names = {{{_FREE}}}
for i = 1, 4 do
  if tonumber(free[i] or '0') < tonumber(ARGV[3 + i]) then return {{'full'}} end
end
for i = 1, 4 do redis.call('HINCRBY', wk, names[i], 0 - tonumber(ARGV[3 + i])) end
if ARGV[8] == '1' and tonumber(redis.call('HGET', wk, 'warm') or '0') > 0 then
  redis.call('HINCRBY', wk, 'warm', -1)
end
redis.call('ZREM', p .. 'backlog', id)
local r = p .. 'r:' .. id
local attempt = redis.call('HINCRBY', r, 'attempt', 1)
local entry = redis.call('XADD', p .. 'w:' .. w .. ':q', '*', 'req', id, 'attempt', attempt)
redis.call('HSET', r, 'state', 'placed', 'worker', w, 'entry', entry)
return {{'ok', entry, attempt}}
"""

# ARGV: prefix, worker, spec, cpu, memory, gpus, sandboxes (capacity), lease ms, address, then
# the sandboxes it already holds as triples (id, pool, need as a comma list).
REGISTER = """
local p, w = ARGV[1], ARGV[2]
if redis.call('EXISTS', p .. 'lost:' .. w) == 1 then return 'lost' end
local free = {tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])}
local wk = p .. 'w:' .. w
for i = 10, #ARGV, 3 do
  local sid, need = ARGV[i], {}
  for n in string.gmatch(ARGV[i + 2], '[^,]+') do table.insert(need, tonumber(n)) end
  for k = 1, 4 do free[k] = free[k] - need[k] end
  redis.call('SADD', wk .. ':sbx', sid)
  redis.call('HSET', p .. 's:' .. sid, 'worker', w, 'pool', ARGV[i + 1], 'state', 'running',
             'reason', '', 'need', ARGV[i + 2], 'address', ARGV[9])
  redis.call('PERSIST', p .. 's:' .. sid)
end
redis.call('HSET', wk, 'spec', ARGV[3], 'free_cpu', free[1], 'free_memory', free[2],
           'free_gpus', free[3], 'free_sandboxes', free[4])
redis.call('SADD', p .. 'workers', w)
redis.call('SET', wk .. ':hb', '1', 'PX', ARGV[8])
local ok, err = pcall(redis.call, 'XGROUP', 'CREATE', wk .. ':q', 'worker', '0', 'MKSTREAM')
return 'ok'
"""

# ARGV: prefix, worker, lease ms, ready warm sandboxes ('' if not reported). 'ok', 'lost'
# (declared lost: drop everything) or 'unknown' (Redis forgot it, e.g. restarted without
# persistence: register again, with its sandboxes).
HEARTBEAT = """
local p, w = ARGV[1], ARGV[2]
if redis.call('SISMEMBER', p .. 'workers', w) == 1 then
  redis.call('SET', p .. 'w:' .. w .. ':hb', '1', 'PX', ARGV[3])
  if ARGV[4] and ARGV[4] ~= '' then redis.call('HSET', p .. 'w:' .. w, 'warm', ARGV[4]) end
  return 'ok'
end
if redis.call('EXISTS', p .. 'lost:' .. w) == 1 then return 'lost' end
return 'unknown'
"""

# ARGV: prefix, worker, request id, attempt, entry, '1' ok / '0' failed, outcome JSON, keep s,
# sandbox id, address, pool. 'ok', or 'stale' (a re-delivery elsewhere superseded it, or the
# worker was declared lost: the worker must undo what it did).
ACK = (
    _GIVE_BACK
    + """
local p, w, id, attempt, entry = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local q = p .. 'w:' .. w .. ':q'
redis.call('XACK', q, 'worker', entry)
redis.call('XDEL', q, entry)
local r = p .. 'r:' .. id
local st = redis.call('HMGET', r, 'state', 'worker', 'attempt', 'need')
if st[2] == w and st[3] == attempt and (st[1] == 'done' or st[1] == 'failed') then
  return 'ok'  -- the same acknowledgement again (its answer got lost)
end
if st[1] ~= 'placed' or st[2] ~= w or st[3] ~= attempt
   or redis.call('SISMEMBER', p .. 'workers', w) == 0 then return 'stale' end
local need = {}
for n in string.gmatch(st[4], '[^,]+') do table.insert(need, n) end
redis.call('ZREM', p .. 'deadlines', id)
if ARGV[6] == '1' then
  redis.call('HSET', r, 'state', 'done', 'sandbox', ARGV[9])
  redis.call('HSET', p .. 's:' .. ARGV[9], 'worker', w, 'address', ARGV[10], 'pool', ARGV[11],
             'state', 'running', 'reason', '', 'need', st[4], 'request', id)
  redis.call('SADD', p .. 'w:' .. w .. ':sbx', ARGV[9])
else
  redis.call('HSET', r, 'state', 'failed')
  give_back(p, w, need)
end
redis.call('RPUSH', p .. 'res:' .. id, ARGV[7])
redis.call('EXPIRE', p .. 'res:' .. id, ARGV[8])
return 'ok'
"""
)

# ARGV: prefix, worker, sandbox id, state, reason, keep s. 1 if it was the worker's.
RELEASE = (
    _GIVE_BACK
    + """
local p, w, sid = ARGV[1], ARGV[2], ARGV[3]
local s = p .. 's:' .. sid
if redis.call('HGET', s, 'worker') ~= w then return 0 end
if redis.call('SREM', p .. 'w:' .. w .. ':sbx', sid) == 1 then
  local need = {}
  for n in string.gmatch(redis.call('HGET', s, 'need') or '0,0,0,0', '[^,]+') do
    table.insert(need, n)
  end
  give_back(p, w, need)
end
redis.call('HSET', s, 'state', ARGV[4], 'reason', ARGV[5])
redis.call('EXPIRE', s, ARGV[6])
return 1
"""
)

# ARGV: prefix, worker, tombstone s, keep s, the outcome of a lost run (JSON). Declares a
# worker whose lease ran out lost: {requeued request ids, lost sandbox ids, failed run ids};
# nil if it is alive or another gateway did it. A one-shot run the worker had taken (pending
# in its group) may have run in part: it fails with that outcome instead of running again
# elsewhere (at most once); creates and requests it never took go back to the backlog.
LOST = (
    _REQUEUE
    + """
local p, w = ARGV[1], ARGV[2]
local wk = p .. 'w:' .. w
if redis.call('EXISTS', wk .. ':hb') == 1 then return nil end
if redis.call('SREM', p .. 'workers', w) == 0 then return nil end
redis.call('SET', p .. 'lost:' .. w, '1', 'EX', ARGV[3])
local taken = {}
local ok, pending = pcall(redis.call, 'XPENDING', wk .. ':q', 'worker', '-', '+', 10000)
if ok then for _, x in ipairs(pending) do taken[x[1]] = true end end
local requeued, failed = {}, {}
for _, e in ipairs(redis.call('XRANGE', wk .. ':q', '-', '+')) do
  local f = entry_fields(e)
  local r = p .. 'r:' .. f['req']
  local st = redis.call('HMGET', r, 'state', 'worker', 'attempt', 'kind')
  if taken[e[1]] and st[4] == 'run' and st[1] == 'placed' and st[2] == w
     and st[3] == f['attempt'] then
    redis.call('HSET', r, 'state', 'failed')
    redis.call('RPUSH', p .. 'res:' .. f['req'], ARGV[5])
    redis.call('EXPIRE', p .. 'res:' .. f['req'], ARGV[4])
    table.insert(failed, f['req'])
  elseif requeue(p, f['req'], w, f['attempt']) then
    table.insert(requeued, f['req'])
  end
end
local lost = redis.call('SMEMBERS', wk .. ':sbx')
for _, sid in ipairs(lost) do
  redis.call('HSET', p .. 's:' .. sid, 'state', 'terminated', 'reason', 'worker_lost')
  redis.call('EXPIRE', p .. 's:' .. sid, ARGV[4])
end
redis.call('DEL', wk .. ':q', wk .. ':sbx', wk, wk .. ':hb')
return {requeued, lost, failed}
"""
)

# ARGV: prefix, worker, min idle ms. Entries a live worker took but has not acknowledged for
# that long are claimed (XAUTOCLAIM) and their requests go back to the backlog, the
# worker's share given back: the request ids.
STALE = (
    _GIVE_BACK
    + _REQUEUE
    + """
local p, w = ARGV[1], ARGV[2]
local q = p .. 'w:' .. w .. ':q'
if redis.call('EXISTS', q) == 0 then return {} end
local claimed = redis.call('XAUTOCLAIM', q, 'worker', 'reaper', ARGV[3], '0-0', 'COUNT', 100)
local requeued = {}
for _, e in ipairs(claimed[2]) do
  local f = entry_fields(e)
  local need = {}
  local r = p .. 'r:' .. f['req']
  for n in string.gmatch(redis.call('HGET', r, 'need') or '0,0,0,0', '[^,]+') do
    table.insert(need, n)
  end
  if requeue(p, f['req'], w, f['attempt']) then
    give_back(p, w, need)
    table.insert(requeued, f['req'])
  end
  redis.call('XACK', q, 'worker', e[1])
  redis.call('XDEL', q, e[1])
end
return requeued
"""
)

# ARGV: prefix, now ms, keep s, outcome JSON. Requests still in the backlog past their
# deadline fail with that outcome: their ids.
EXPIRE = """
local p = ARGV[1]
local expired = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', p .. 'deadlines', '-inf', ARGV[2],
                               'LIMIT', 0, 200)) do
  if redis.call('HGET', p .. 'r:' .. id, 'state') == 'placed' then
    -- on a worker now; look again later (a lost worker's requests come back to the backlog)
    redis.call('ZADD', p .. 'deadlines', tonumber(ARGV[2]) + 10000, id)
  else
    redis.call('ZREM', p .. 'deadlines', id)
  end
  if redis.call('ZREM', p .. 'backlog', id) == 1 then
    redis.call('HSET', p .. 'r:' .. id, 'state', 'failed')
    redis.call('RPUSH', p .. 'res:' .. id, ARGV[4])
    redis.call('EXPIRE', p .. 'res:' .. id, ARGV[3])
    table.insert(expired, id)
  end
end
return expired
"""
