"""Circuit breakers: the gateway's memory of how each upstream target is doing.

One breaker per target (provider, model; a forward route's target is provider and
endpoint), shared by every agent and route. Closed, it counts failures; `failures` of
them within `window` open it (or, with `failure_ratio`, that share of at least
`min_requests` requests in the window). Open, the target is skipped without a network call until
its cooldown passes; then it is half-open and admits `probes` requests at a time;
`successes` of them close it, one failure reopens it with the cooldown doubled (up to
`max_cooldown`). A provider refusing the gateway's key (401/403) opens all its targets
for `key_refused_cooldown`; a 429 locks its target until the Retry-After it gave, else
for a doubling back-off.

Settings are per provider: routes.yaml's `breakers:` with the provider's own `breakers:` over
it key by key (compiled into `Provider.breakers`), so one provider may trip sooner, rest
longer, or keep no breakers at all.

The logic is pure: the board reads a clock it is given, so that tests need no sleeps.

Openings are shared with the other processes (workers, instances) using the same state:
the board tells `on_open` when a breaker opens here, and `opened_elsewhere` applies one
that opened in another process, so a target tripped anywhere is skipped everywhere without
each process paying the failures again (limits/shared_breakers.py carries them). Times
cross processes as wall-clock epochs; half-open probing stays each process's own.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from dsl.table import BreakerSettings, Target
from ops import metrics
from ops.stats import MAX_LABEL_LENGTH, MAX_MODEL_LABELS
from upstream.failure import REFUSED_KEY, Failure

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
_STATES = (CLOSED, HALF_OPEN, OPEN)  # in the order of their gauge values
# Clients may name provider/model targets freely: past as many breakers as /statsz keeps model
# labels, new targets get none (they are always tried), and names are cut as labels are, so
# that neither memory nor metric labels grow unbounded.
MAX_TARGETS = MAX_MODEL_LABELS
# Failures that say nothing about the target's health: the request or the route is at fault.
_NEUTRAL_KINDS = frozenset({"unsupported_format", "invalid_request", "cancelled"})
# Why a breaker opened, as shared with other processes: a KEY_REFUSED opening stands for
# the whole provider (its target key's model is ALL_TARGETS).
FAILURES, PROBE_FAILED, KEY_REFUSED, RATE_LIMITED = "failures", "probe_failed", "key_refused", "rate_limited"
ALL_TARGETS = "*"
# An opening heard from the shared state is no news when it ends at most this many seconds
# after the local one: times cross processes as wall-clock epochs, rounded to the millisecond
# and converted at each end, and the wall clock drifts from the monotonic one (NTP slews it).
_SAME_TIME = 1.0

TargetKey = tuple[str, str]  # (provider name, model or endpoint)
# Told each local opening: (target key, reopening time as a wall-clock epoch, reason).
OnOpen = Callable[[TargetKey, float, str], None]


def counts_against(failure: Failure) -> bool:
    """Whether a failure says the target is unwell: transport failures, timeouts, empty
    answers, 408/429/5xx and a refused key do; a client's own 4xx (a bad request) does not."""
    return failure.retryable and failure.kind not in _NEUTRAL_KINDS


def retry_after_seconds(value: str | None, wall: float) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - wall)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


@dataclass(slots=True)
class Breaker:
    """One target's state."""

    state: str = CLOSED
    # While closed: [start, requests, failures] per tenth of the window, oldest first.
    slices: collections.deque[list[float]] = field(default_factory=collections.deque)
    trips: int = 0
    # Failed probes since it last closed: the cooldown's exponent. Kept as a count, not as a
    # duration, so that a reload's new cooldown and max_cooldown apply to it.
    failed_probes: int = 0
    reopens_at: float = 0.0  # monotonic; while open
    probing: int = 0  # probes admitted and not yet reported, while half-open
    passed: int = 0  # probes that succeeded, while half-open
    rate_limits: int = 0  # 429s in a row without Retry-After: the back-off's exponent
    shared: str | None = None  # while open because another process opened it: its reason


class BreakerBoard:
    """Every target's breaker in one serving process (held by the Runtime).

    Keyed by configuration names, so a reload keeps the state of targets that still exist.
    """

    def __init__(
        self,
        settings: BreakerSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.defaults = settings or BreakerSettings()  # for a provider with no settings of its own
        self.by_provider: dict[str, BreakerSettings] = {}
        self.clock = clock
        self.wall = wall
        self.breakers: dict[TargetKey, Breaker] = {}
        self.refused: dict[str, float] = {}  # provider → monotonic time its key refusal ends
        self.on_open: OnOpen | None = None  # told each opening made here, to share it

    def configure(self, defaults: BreakerSettings, providers: Mapping[str, BreakerSettings]) -> None:
        """A new table: the top-level settings and each provider's own (`Provider.breakers`).

        Breakers of providers that no longer exist, or whose breakers are now disabled, are
        dropped; the others keep their state and follow the new settings from now on (a
        breaker that is open stays open until the time it was given)."""
        self.defaults = defaults
        self.by_provider = dict(providers)
        keep = {name for name, settings in self.by_provider.items() if settings.enabled}
        for key in [k for k in self.breakers if k[0] not in keep]:
            del self.breakers[key]
            metrics.CIRCUIT_STATE.remove(*key)
        self.refused = {p: t for p, t in self.refused.items() if p in keep}

    def settings(self, provider: str) -> BreakerSettings:
        """The settings that apply to `provider`'s targets."""
        return self.by_provider.get(provider, self.defaults)

    def _breaker(self, key: TargetKey) -> Breaker | None:
        breaker = self.breakers.get(key)
        if breaker is None and len(self.breakers) < MAX_TARGETS:
            breaker = self.breakers[key] = Breaker()
            metrics.CIRCUIT_STATE.labels(*key).set(0)
        return breaker

    def closed(self, key: TargetKey) -> bool:
        """The usual: `key`'s breaker is closed (or breakers are off for its provider) and no
        provider's key is refused, so that `usable` and `admit` say True and change nothing; one
        call where asking both costs two. False: ask them (a target without a breaker yet gets
        its breaker from `admit`)."""
        if not self.by_provider.get(key[0], self.defaults).enabled:
            return True
        breaker = self.breakers.get(key)
        return breaker is not None and breaker.state == CLOSED and not self.refused

    def usable(self, key: TargetKey) -> bool:
        """Whether `key` would be admitted now (without taking a probe's place)."""
        settings = self.by_provider.get(key[0], self.defaults)  # self.settings, on every request
        if not settings.enabled:
            return True
        now = self.clock()
        if self.refused and self.refused.get(key[0], 0.0) > now:
            return False
        breaker = self.breakers.get(key)
        if breaker is None or breaker.state == CLOSED:
            return True
        if breaker.state == OPEN:
            return now >= breaker.reopens_at
        return breaker.probing < settings.probes

    def admit(self, key: TargetKey) -> bool:
        """May a request go to `key` now? A half-open target's probe place is taken: report
        the outcome with `record` (or give it back with `release`)."""
        settings = self.by_provider.get(key[0], self.defaults)
        if not settings.enabled:
            return True
        breaker = self.breakers.get(key)
        if breaker is not None and breaker.state == CLOSED and not self.refused:
            return True  # the usual: what `usable` would find, without its calls
        if not self.usable(key):
            return False
        breaker = self._breaker(key)
        if breaker is None:
            return True
        if breaker.state == OPEN:
            self._move(key, breaker, HALF_OPEN)
            breaker.probing = breaker.passed = 0
        if breaker.state == HALF_OPEN:
            breaker.probing += 1
        return True

    def release(self, key: TargetKey) -> None:
        """An admitted request ended without telling anything (the client left)."""
        breaker = self.breakers.get(key)
        if breaker is not None and breaker.state == HALF_OPEN and breaker.probing:
            breaker.probing -= 1

    def record(self, key: TargetKey, failure: Failure | None) -> None:
        """How an admitted request to `key` ended: None when it answered."""
        breaker = self.breakers.get(key)
        settings = self.by_provider.get(key[0], self.defaults)
        if breaker is None or not settings.enabled:
            return
        if breaker.state == HALF_OPEN and breaker.probing:
            breaker.probing -= 1
        if failure is None and breaker.state == CLOSED:
            breaker.rate_limits = 0
            self._count(breaker, settings, False)  # the usual: what `_succeeded` would do
        elif failure is None or not counts_against(failure):
            self._succeeded(key, breaker, settings)
        elif failure.status in REFUSED_KEY:
            self._refuse_key(key[0], settings)
        elif failure.status == 429:
            self._rate_limited(key, breaker, settings, failure.retry_after)
        else:
            self._failed(key, breaker, settings)

    def _succeeded(self, key: TargetKey, breaker: Breaker, settings: BreakerSettings) -> None:
        breaker.rate_limits = 0
        if breaker.state == CLOSED:
            self._count(breaker, settings, False)
        elif breaker.state == HALF_OPEN:
            breaker.passed += 1
            if breaker.passed >= settings.successes:
                breaker.slices.clear()
                breaker.failed_probes = 0
                self._move(key, breaker, CLOSED)

    def _failed(self, key: TargetKey, breaker: Breaker, settings: BreakerSettings) -> None:
        now = self.clock()
        if breaker.state == HALF_OPEN:
            breaker.failed_probes += 1
            self._open(key, breaker, now + _doubled(settings, breaker.failed_probes), PROBE_FAILED)
        elif breaker.state == CLOSED:
            self._count(breaker, settings, True)
            requests, failures = _window_totals(breaker)
            ratio = settings.failure_ratio
            if failures >= settings.failures or (
                ratio is not None and requests >= settings.min_requests and failures >= ratio * requests
            ):
                self._open(key, breaker, now + settings.cooldown, FAILURES)

    def _count(self, breaker: Breaker, settings: BreakerSettings, failed: bool) -> None:
        """Count one outcome in the window (kept as ten slices, so memory stays small under
        any load)."""
        now, window = self.clock(), settings.window
        slices = breaker.slices
        while slices and slices[0][0] <= now - window:
            slices.popleft()
        if not slices or now >= slices[-1][0] + window / 10:
            slices.append([now, 0, 0])
        last = slices[-1]
        last[1] += 1
        if failed:
            last[2] += 1

    def _rate_limited(
        self, key: TargetKey, breaker: Breaker, settings: BreakerSettings, retry_after: str | None
    ) -> None:
        wait = retry_after_seconds(retry_after, self.wall())
        if wait is None:
            wait = _doubled(settings, breaker.rate_limits)
            breaker.rate_limits += 1
        self._open(key, breaker, self.clock() + wait, RATE_LIMITED)

    def _refuse_key(self, provider: str, settings: BreakerSettings) -> None:
        until = self.clock() + settings.key_refused_cooldown
        self._lock_provider(provider, until, None)
        self._tell((provider, ALL_TARGETS), until, KEY_REFUSED)

    def _lock_provider(self, provider: str, until: float, shared: str | None) -> None:
        self.refused[provider] = max(until, self.refused.get(provider, 0.0))
        for key, breaker in self.breakers.items():
            if key[0] == provider:
                self._open(key, breaker, until, shared=shared)

    def _open(self, key: TargetKey, breaker: Breaker, until: float, reason: str = "",
              shared: str | None = None) -> None:
        """Open `key` until `until` (later when it is already open for longer). A local opening
        (`reason` given) is told to `on_open`; one from elsewhere (`shared`, its reason) is not."""
        if breaker.state == OPEN and breaker.reopens_at >= until:
            return
        breaker.reopens_at = until
        breaker.shared = shared
        breaker.slices.clear()
        if breaker.state != OPEN:
            breaker.trips += 1
            self._move(key, breaker, OPEN)
        if reason:
            self._tell(key, until, reason)

    def _tell(self, key: TargetKey, until: float, reason: str) -> None:
        if self.on_open is not None:
            self.on_open(key, self.wall() + until - self.clock(), reason)

    def opened_elsewhere(self, key: TargetKey, until: float, reason: str) -> None:
        """Another process opened `key` until `until` (a wall-clock epoch) for `reason`: it is
        open here too until then, then half-opens here as usual. Its own openings, heard back,
        change nothing; a provider whose breakers are disabled here keeps none."""
        if not self.settings(key[0]).enabled:
            return
        now = self.clock()
        local = now + until - self.wall()
        if local <= now:
            return
        if reason == KEY_REFUSED:
            if local > self.refused.get(key[0], 0.0) + _SAME_TIME:
                self._lock_provider(key[0], local, reason)
            return
        breaker = self._breaker(key)
        if breaker is not None and not (breaker.state == OPEN and breaker.reopens_at + _SAME_TIME >= local):
            self._open(key, breaker, local, shared=reason)

    def _move(self, key: TargetKey, breaker: Breaker, state: str) -> None:
        breaker.state = state
        metrics.CIRCUIT_STATE.labels(*key).set(_STATES.index(state))
        metrics.CIRCUIT_TRANSITIONS.labels(*key, state).inc()

    def reopens_in(self, keys: Iterable[TargetKey]) -> float:
        """Seconds until the soonest of `keys` admits a request again (0 when one does now)."""
        now = self.clock()
        soonest = math.inf
        for key in keys:
            if self.usable(key):
                return 0.0
            times = [self.refused.get(key[0], 0.0)]
            breaker = self.breakers.get(key)
            if breaker is not None and breaker.state == OPEN:
                times.append(breaker.reopens_at)
            soonest = min(soonest, max(times) - now)
        return max(0.0, soonest) if soonest != math.inf else 0.0

    def snapshot(self) -> dict[str, dict[str, object]]:
        """For /statsz: each target's state, failures in the window, trips and reopening time."""
        now, wall = self.clock(), self.wall()
        out: dict[str, dict[str, object]] = {}
        for (provider, model), breaker in sorted(self.breakers.items()):
            window = self.settings(provider).window
            until = max(breaker.reopens_at if breaker.state == OPEN else 0.0, self.refused.get(provider, 0.0))
            out[f"{provider}/{model}"] = {
                "state": breaker.state if until <= now or breaker.state == OPEN else OPEN,
                "recent_failures": int(sum(s[2] for s in breaker.slices if s[0] > now - window)),
                "trips": breaker.trips,
                "reopens_at": round(wall + until - now, 3) if until > now else None,
                # why another process opened it, while this one follows it; None when this one opened it
                "shared": breaker.shared if breaker.state == OPEN and until > now else None,
            }
        return out


def _window_totals(breaker: Breaker) -> tuple[int, int]:
    """The requests and failures a closed breaker's window holds."""
    return int(sum(s[1] for s in breaker.slices)), int(sum(s[2] for s in breaker.slices))


def _doubled(settings: BreakerSettings, times: int) -> float:
    """The cooldown doubled `times` times, up to max_cooldown."""
    return min(settings.cooldown * 2.0 ** min(times, 64), settings.max_cooldown)


def target_key(provider: str, model: str) -> TargetKey:
    """A target's key, its model name cut so that a client cannot make it large."""
    return provider, model[:MAX_LABEL_LENGTH]


def key_of(target: Target) -> TargetKey:
    """A provider/model target's key, as `target_key` makes it (one call, on every walk)."""
    return target.provider.name, target.model[:MAX_LABEL_LENGTH]
