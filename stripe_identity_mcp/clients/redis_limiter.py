"""The key's rate budget in Redis: GCRA buckets shared by every replica, taken by one Lua script.

Stripe limits the key, not the process, so replicas must take from one budget. Redis is the standard
engine for shared atomic counters; this module only holds the scripts, the key names and the bounded
calls (the fallback when Redis fails lives in clients/shared_pacing.py).

- GCRA (the "theoretical arrival time" form of a token bucket): one number per bucket, the time at
  which the bucket would be full again at its rate. A take at `now` conforms when the new TAT is
  at most `burst` intervals ahead of `now`.
- `TAKE` checks the global bucket and the endpoint's bucket (and their slow-down keys) and takes from
  both or from neither, returning 0 or the microseconds to wait until both could conform. Taking
  nothing when it cannot means a request queued behind its saturated endpoint never holds global
  capacity meanwhile (the same rule as the local Pacer).
- Time is Redis's own (`TIME`), so the replicas' clocks do not matter.
- Slow-down after a 429 is a key with a TTL (`…:slow:…`): every replica waits it out.
- Key names carry a hash of (api key, mode) and of the endpoint, never the key or its body; values
  are timestamps and "1". The `{…}` hash tag keeps one key's buckets in one Redis Cluster slot, as a
  multi-key script needs.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from redis.asyncio import Redis

PREFIX = "sim:rl"

# KEYS: tat_1, slow_1[, tat_2, slow_2]; ARGV: interval_1 (µs), burst_1[, interval_2, burst_2].
# Returns 0 (both taken) or the µs to wait until both conform (nothing taken).
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS / 2
local new = {}
local wait = 0
for i = 1, n do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  if tat < now then tat = now end
  new[i] = tat + interval
  local w = new[i] - burst * interval - now
  local slow = redis.call('PTTL', KEYS[2 * i])
  if slow > 0 and slow * 1000 > w then w = slow * 1000 end
  if w > wait then wait = w end
end
if wait > 0 then return math.ceil(wait) end
for i = 1, n do
  local ttl = math.ceil((new[i] - now) / 1000) + 1000
  redis.call('SET', KEYS[2 * i - 1], string.format('%.0f', new[i]), 'PX', ttl)
end
return 0
"""

# KEYS: tat_1[, tat_2]; ARGV: interval_1 (µs)[, interval_2]. A token taken for a request never sent.
REFUND = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat > now then
    local back = tat - tonumber(ARGV[i])
    if back < now then back = now end
    redis.call('SET', KEYS[i], string.format('%.0f', back), 'KEEPTTL')
  end
end
return 0
"""

# KEYS: slow; ARGV: ms. Stop every replica for `ms` (never shortens a longer slow-down).
SLOW = """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then redis.call('SET', KEYS[1], '1', 'PX', ms) end
return 0
"""


def _h(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def key_prefix(api_key: str, mode: str) -> str:
    """`sim:rl:{<sha256(key)[:16]>:<mode>}`: one key and mode, never the key itself."""
    return f"{PREFIX}:{{{_h(api_key, 16)}:{mode}}}"


class RedisLimiter:
    """The Redis side of one key's budget: bucket names, the three scripts, bounded calls.

    The client is made on first use (redis is an optional extra, imported only when configured) with
    no retries of its own: a failure must reach the caller at once, which falls back locally.
    """

    def __init__(self, url: str, api_key: str, mode: str, *, timeout_s: float) -> None:
        # Every call is bounded (settings.redis_timeout_s): the socket timeouts, then one overall bound
        # per call (a TCP connect to a black-holed host, a slow script). Loopback or a LAN answers in
        # well under a millisecond.
        self._url = url
        self.prefix = key_prefix(api_key, mode)
        self.timeout_s = timeout_s
        self._redis: Redis | None = None
        self._scripts: dict[str, Any] = {}

    def _client(self) -> Redis:
        if self._redis is None:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            self._redis = Redis.from_url(
                self._url,
                socket_connect_timeout=self.timeout_s,
                socket_timeout=self.timeout_s,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
            )
            for name, text in (("take", TAKE), ("refund", REFUND), ("slow", SLOW)):
                # EVALSHA, reloading the script after a Redis restart flushed it (NOSCRIPT).
                self._scripts[name] = self._redis.register_script(text)
        return self._redis

    def bucket_keys(self, bucket: str | None) -> tuple[str, str]:
        """(tat key, slow-down key) of the global bucket (None) or an endpoint's bucket."""
        name = "global" if bucket is None else f"ep:{_h(bucket, 12)}"
        return f"{self.prefix}:{name}", f"{self.prefix}:slow:{name}"

    async def _call(self, script: str, keys: list[str], args: list[Any]) -> int:
        self._client()
        with anyio.fail_after(self.timeout_s * 2):
            result = await self._scripts[script](keys=keys, args=args)
        return int(result)

    async def take(self, buckets: list[tuple[str | None, float, float]]) -> float:
        """Take one token from every (bucket, rate, burst) or none; 0.0 or the seconds to wait."""
        keys: list[str] = []
        args: list[Any] = []
        for bucket, rate, burst in buckets:
            keys.extend(self.bucket_keys(bucket))
            args.extend((math.ceil(1_000_000 / rate), burst))
        return await self._call("take", keys, args) / 1_000_000

    async def refund(self, buckets: list[tuple[str | None, float]]) -> None:
        """Give back one token to every (bucket, rate): its request was never sent."""
        await self._call(
            "refund", [self.bucket_keys(b)[0] for b, _ in buckets], [math.ceil(1_000_000 / r) for _, r in buckets]
        )

    async def slow(self, bucket: str | None, seconds: float) -> None:
        """Stop every replica's takes from this bucket for `seconds`."""
        await self._call("slow", [self.bucket_keys(bucket)[1]], [max(1, math.ceil(seconds * 1000))])

    async def ping(self) -> None:
        """The take script over no bucket: Redis answers *and* runs it (a PING alone would flip a
        replica back to sharing when a Redis that cannot run the script answers)."""
        await self._call("take", [], [])

    async def aclose(self) -> None:
        if self._redis is not None:
            with anyio.move_on_after(self.timeout_s * 2):
                await self._redis.aclose()
            self._redis = None
