"""The state in Redis, shared by every worker of every instance using it.

Each operation is one Lua script (EVALSHA, loaded again on NOSCRIPT), so one round trip
and atomic: a request's checks pass and are recorded together or not at all. Time is
Redis's own (TIME), so instances whose clocks disagree still share one window.

Storage: a window is a sorted set of entries scored by their time in microseconds, the
member "cost:entry", beside a counter holding the sum of their costs (kept as entries
leave, so a check never adds up the whole set); a count (every entry costs 1) is the
sorted set alone, its size the count. A concurrent limit is a sorted set of
leases scored by their expiry. A spend counter is an integer (nano-USD) that expires
after its period. Open circuit breakers are one hash, BREAKERS: field "provider/model",
value "until reason" (until in epoch seconds), fields past their time deleted as they are read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from limits.backend import Admission, Charge, Check, Correction, Outcome, StateError

_KINDS = {"count": "n", "window": "w", "concurrent": "c", "budget": "b"}

# KEYS: two per check (entries, sum; the sum is unused by concurrent and budget checks).
# ARGV: entry, number of checks, then per check: kind, limit, window (µs), cost.
# Returns: allowed (0/1), first refusing check (1-based, 0 when admitted), now (µs),
# retry after (µs), then per check: used, reset (µs).
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local entry = ARGV[1]
local n = tonumber(ARGV[2])
local used, refused, retry = {}, 0, 0
local function cost_of(member) return tonumber(string.match(member, '^(-?%d+):')) end
for i = 1, n do
  local kind, limit = ARGV[3 + (i - 1) * 4], tonumber(ARGV[4 + (i - 1) * 4])
  local window, cost = tonumber(ARGV[5 + (i - 1) * 4]), tonumber(ARGV[6 + (i - 1) * 4])
  local entries, sum = KEYS[2 * i - 1], KEYS[2 * i]
  local u, wait = 0, nil
  if kind == 'w' then
    local gone = redis.call('ZRANGEBYSCORE', entries, '-inf', now - window)
    if #gone > 0 then
      local freed = 0
      for _, m in ipairs(gone) do freed = freed + cost_of(m) end
      redis.call('ZREMRANGEBYSCORE', entries, '-inf', now - window)
      u = redis.call('DECRBY', sum, freed)
    else
      u = tonumber(redis.call('GET', sum) or '0')
    end
    local over = u + math.min(cost, limit) - limit
    if over > 0 then
      wait = window
      local freed = 0
      local oldest = redis.call('ZRANGE', entries, 0, 9999, 'WITHSCORES')
      for j = 1, #oldest, 2 do
        freed = freed + cost_of(oldest[j])
        if freed >= over then wait = math.max(0, tonumber(oldest[j + 1]) + window - now) break end
      end
    end
  elseif kind == 'n' then
    redis.call('ZREMRANGEBYSCORE', entries, '-inf', now - window)
    u = redis.call('ZCARD', entries)
    if u >= limit then
      local oldest = redis.call('ZRANGE', entries, u - limit, u - limit, 'WITHSCORES')
      wait = math.max(0, tonumber(oldest[2]) + window - now)
    end
  elseif kind == 'c' then
    redis.call('ZREMRANGEBYSCORE', entries, '-inf', now)
    u = redis.call('ZCARD', entries)
    if u >= limit then wait = 1000000 end
  else
    u = tonumber(redis.call('GET', entries) or '0')
    if u >= limit then wait = 1000000 end
  end
  used[i] = u
  if wait ~= nil then
    if refused == 0 then refused = i end
    retry = math.max(retry, wait)
  end
end
local out = {0, refused, now, retry}
if refused == 0 then out[1] = 1 end
for i = 1, n do
  local kind, window = ARGV[3 + (i - 1) * 4], tonumber(ARGV[5 + (i - 1) * 4])
  local cost = tonumber(ARGV[6 + (i - 1) * 4])
  local entries, sum = KEYS[2 * i - 1], KEYS[2 * i]
  local u, reset = used[i], 0
  if kind == 'w' then
    if refused == 0 then
      redis.call('ZADD', entries, now, cost .. ':' .. entry)
      u = redis.call('INCRBY', sum, cost)
      local ttl = math.ceil(window / 1000) + 1000
      redis.call('PEXPIRE', entries, ttl)
      redis.call('PEXPIRE', sum, ttl)
      reset = window
    else
      local newest = redis.call('ZRANGE', entries, -1, -1, 'WITHSCORES')
      if #newest > 0 then reset = math.max(0, tonumber(newest[2]) + window - now) end
    end
  elseif kind == 'n' then
    if refused == 0 then
      redis.call('ZADD', entries, now, entry)
      redis.call('PEXPIRE', entries, math.ceil(window / 1000) + 1000)
      u = u + 1
      reset = window
    else
      local newest = redis.call('ZRANGE', entries, -1, -1, 'WITHSCORES')
      if #newest > 0 then reset = math.max(0, tonumber(newest[2]) + window - now) end
    end
  elseif kind == 'c' and refused == 0 then
    redis.call('ZADD', entries, now + window, entry)
    redis.call('PEXPIRE', entries, math.ceil(window / 1000) + 1000)
    u = u + 1
  end
  out[#out + 1] = u
  out[#out + 1] = reset
end
return out
"""

# KEYS: corrections' (entries, sum) pairs, then lease keys, then spend keys.
# ARGV: entry, numbers of corrections, leases and charges, then per correction: at (µs),
# window (µs), delta; per lease: its entry; per charge: amount, expiry (epoch s).
_SETTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local entry = ARGV[1]
local nc, nl, nb = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local a, k = 5, 1
for i = 1, nc do
  local at, window, delta = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  if at > now - window and redis.call('EXISTS', KEYS[k + 1]) == 1 then
    redis.call('ZADD', KEYS[k], at, delta .. ':' .. entry .. ':' .. i)
    redis.call('INCRBY', KEYS[k + 1], delta)
  end
  a, k = a + 3, k + 2
end
for i = 1, nl do
  redis.call('ZREM', KEYS[k], ARGV[a])
  a, k = a + 1, k + 1
end
for i = 1, nb do
  redis.call('INCRBY', KEYS[k], ARGV[a])
  redis.call('EXPIREAT', KEYS[k], ARGV[a + 1])
  a, k = a + 2, k + 1
end
return 1
"""

# KEYS: the breakers hash. ARGV: target, until (epoch s), reason. A later time already there stays.
_OPEN_BREAKER = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old and tonumber(string.match(old, '^%S+')) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3])
return 1
"""

# KEYS: the breakers hash. Returns target, "until reason", ... of those still open (Redis's time).
_OPEN_BREAKERS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local all = redis.call('HGETALL', KEYS[1])
local open = {}
for i = 1, #all, 2 do
  if tonumber(string.match(all[i + 1], '^%S+')) <= now then
    redis.call('HDEL', KEYS[1], all[i])
  else
    open[#open + 1] = all[i]
    open[#open + 1] = all[i + 1]
  end
end
return open
"""

BREAKERS = "llmgw:breakers"


def _us(seconds: float) -> int:
    return math.ceil(seconds * 1_000_000)


class RedisBackend:
    """limits/backend.py's Backend over one Redis (redis:// or rediss:// url).

    `timeout` bounds connecting, waiting for a free connection and each reply. A command whose
    connection broke is tried once more on a new one (after Redis restarted, pooled connections
    are stale), a timed-out one is not: limits/limiter.py then follows on_state_error.
    At most CONNECTIONS commands are in flight per process: a burst waits its turn for a
    connection rather than opening one per request.
    """

    CONNECTIONS = 32

    def __init__(self, url: str, timeout: float) -> None:
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=self.CONNECTIONS,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
        )
        self.client = redis.Redis(connection_pool=pool)
        self._admit = self.client.register_script(_ADMIT)
        self._settle = self.client.register_script(_SETTLE)
        self._open_breaker = self.client.register_script(_OPEN_BREAKER)
        self._open_breakers = self.client.register_script(_OPEN_BREAKERS)

    async def admit(self, checks: Sequence[Check], entry: str) -> Admission:
        keys: list[str] = []
        args: list[Any] = [entry, len(checks)]
        for check in checks:
            keys += [check.key, check.key + ":sum"]
            args += [_KINDS[check.kind], check.limit, _us(check.window), check.cost]
        reply = await self._call(self._admit, keys, args)
        allowed, refused, now, retry = (int(value) for value in reply[:4])
        outcomes = tuple(
            Outcome(int(reply[i]), int(reply[i + 1]) / 1e6) for i in range(4, len(reply), 2)
        )
        return Admission(bool(allowed), refused - 1, retry / 1e6, float(now), outcomes)  # at: µs, exact

    async def settle(
        self, corrections: Sequence[Correction], leases: Sequence[tuple[str, str]], charges: Sequence[Charge],
        entry: str,
    ) -> None:
        keys: list[str] = []
        args: list[Any] = [entry, len(corrections), len(leases), len(charges)]
        for correction in corrections:
            keys += [correction.key, correction.key + ":sum"]
            args += [int(correction.at), _us(correction.window), correction.delta]
        for key, lease in leases:
            keys.append(key)
            args.append(lease)
        for charge in charges:
            keys.append(charge.key)
            args += [charge.amount, math.ceil(charge.expires)]
        await self._call(self._settle, keys, args)

    async def spent(self, keys: Sequence[str]) -> list[int]:
        if not keys:
            return []
        try:
            values = await self.client.mget(list(keys))
        except (RedisError, OSError) as exc:
            raise StateError(f"redis: {exc}") from exc
        return [int(value) if value is not None else 0 for value in values]

    async def open_breaker(self, target: str, until: float, reason: str) -> None:
        await self._call(self._open_breaker, [BREAKERS], [target, f"{until:.3f}", reason])

    async def open_breakers(self) -> list[tuple[str, float, str]]:
        reply = await self._call(self._open_breakers, [BREAKERS], [])
        opened = []
        for i in range(0, len(reply), 2):
            until, _, reason = reply[i + 1].decode(errors="replace").partition(" ")
            opened.append((reply[i].decode(errors="replace"), float(until), reason))
        return opened

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> list[Any]:
        try:
            return await script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise StateError(f"redis: {exc}") from exc

    async def close(self) -> None:
        await self.client.aclose(close_connection_pool=True)
