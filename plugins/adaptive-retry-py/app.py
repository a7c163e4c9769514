"""adaptive-retry: a mender strategy written in Python (componentize-py).

Per-error-kind retry counts and delays, as a team would write them in
Python, plus a retry budget per service: once `budget.max-retries` retries
were granted within one `budget.window`, the plugin stops retrying until the
window turns over, so a struggling upstream is not hit by a retry storm.
The budget lives in the host's `state` (instances are recycled), time comes
from the host's `clock` (virtual in tests) and jitter from the host's
seeded `random`, so a run replays exactly.

WIT -> Python, for plugin authors: `u32`/`u64` are `int`, `option<T>` is
`Optional[T]`, a `variant` case is a dataclass such as
`types.Decision_Retry(value=250)`, `flags` are `enum.Flag`, and a
`result` error is raised as `componentize_py_types.Err(...)`.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import clock, log, metrics, random, state, types
from wit_world.imports.types import ErrorKind

# Retries and first delay (ms) per kind when the config says nothing.
# Connection and server-resource faults clear quickly; a 429 needs longer;
# auth, tool, cancelled and rejected failures are not fixed by repeating the
# same request, so they get no retries and the plugin answers `pass`.
DEFAULT_KINDS = {
    "connect": {"retries": 3, "delay": 200},
    "timeout": {"retries": 2, "delay": 500},
    "rate-limited": {"retries": 4, "delay": 1000},
    "resource": {"retries": 2, "delay": 500},
    "protocol": {"retries": 1, "delay": 200},
    "unknown": {"retries": 1, "delay": 200},
}

# 10 s windows with 20 retries: a handful of callers can all ride out a
# blip, but a sustained outage stops being retried within one window.
DEFAULT_BUDGET = {"window": 10_000, "max-retries": 20}

KIND_NAMES = {
    ErrorKind.CONNECT: "connect",
    ErrorKind.TIMEOUT: "timeout",
    ErrorKind.RATE_LIMITED: "rate-limited",
    ErrorKind.AUTH: "auth",
    ErrorKind.TOOL: "tool",
    ErrorKind.PROTOCOL: "protocol",
    ErrorKind.RESOURCE: "resource",
    ErrorKind.CANCELLED: "cancelled",
    ErrorKind.REJECTED: "rejected",
    ErrorKind.UNKNOWN: "unknown",
}

_config = None


def _load(text):
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError("config must be a table")
    unknown = set(raw) - {"kinds", "jitter", "budget"}
    if unknown:
        raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
    kinds = {k: dict(v) for k, v in DEFAULT_KINDS.items()}
    for name, rule in raw.get("kinds", {}).items():
        if name not in KIND_NAMES.values():
            raise ValueError(f"kinds.{name}: not an error kind")
        merged = kinds.get(name, {"retries": 0, "delay": 0})
        merged.update(rule)
        kinds[name] = merged
    jitter = float(raw.get("jitter", 0.2))
    if not 0 <= jitter <= 1:
        raise ValueError("jitter must be within [0, 1]")
    budget = dict(DEFAULT_BUDGET)
    budget.update(raw.get("budget", {}))
    return {"kinds": kinds, "jitter": jitter, "budget": budget}


def _spend_budget(budget):
    """Counts one retry in the current window; False if it is spent."""
    window = int(budget["window"])
    bucket = clock.now() // window
    used = state.increment(f"retries:{bucket}", 1, window)
    return used <= int(budget["max-retries"])


class Strategy(exports.Strategy):
    def init(self, config):
        global _config
        try:
            _config = _load(config)
        except (ValueError, TypeError, AttributeError) as e:
            raise Err(f"invalid config: {e}")
        return types.StrategyInfo(hooks=types.Hooks.ON_ERROR)

    def admit(self, call, recent):
        # Not declared in `hooks`, so the host never calls it.
        return types.Admission_Allow(types.Grant(attempt_timeout=None, lease=None))

    def on_error(self, event, recent):
        kind = KIND_NAMES[event.kind]
        rule = _config["kinds"].get(kind)
        if rule is None or int(rule["retries"]) == 0:
            return types.Decision_Pass()
        if event.attempt > int(rule["retries"]):
            return types.Decision_Fail(
                f"gave up after {event.attempt} attempts ({kind}): {event.message}"
            )
        # Linear growth: delay, 2 x delay, ... with +/- jitter around it.
        delay = int(rule["delay"]) * event.attempt
        spread = int(delay * _config["jitter"])
        if spread:
            delay = delay - spread + random.next_u64() % (2 * spread + 1)
        if event.retry_after is not None:
            delay = max(delay, event.retry_after)
        if event.deadline_left is not None and delay >= event.deadline_left:
            return types.Decision_Fail(
                f"a retry in {delay}ms would pass the deadline ({event.deadline_left}ms left)"
            )
        if not _spend_budget(_config["budget"]):
            metrics.counter_add("budget_exhausted", 1)
            log.write(log.Level.WARN, f"retry budget spent on {event.service}")
            return types.Decision_Fail("retry budget exhausted for this window")
        return types.Decision_Retry(delay)
