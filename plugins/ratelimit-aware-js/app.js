// ratelimit-aware: a mender strategy written in JavaScript
// (componentize-js + jco).
//
// A 429 says when to come back: `Retry-After`, or the `quota-remaining` /
// `quota-reset-ms` tags a classifier may attach. This strategy retries a
// rate-limited attempt after exactly that long, and remembers the block in
// the host's `state`, so that `admit` makes every other call to the same
// service wait out the block too (or refuses it when the wait would be
// longer than `max-wait`) instead of earning another 429. Between blocks,
// `admit` grants a lease that ends at the first failure, so successful
// calls cost no Wasm call.
//
// WIT -> JavaScript, for plugin authors: `u64` (millis) is a BigInt (`5n`),
// `u32` a Number, `option<T>` is `T | undefined`, a variant case is
// `{ tag: 'retry', val: 250n }`, an enum case a string (`'rate-limited'`),
// `flags` an object of booleans, record fields are camelCase, and a
// `result` error is a thrown value.

import { now } from 'mender:plugin/clock@0.1.0';
import { get, set } from 'mender:plugin/state@0.1.0';
import { write } from 'mender:plugin/log@0.1.0';

// 30 s: a caller that would wait longer is better told now, so it can do
// something else; also the host's default max-delay.
const DEFAULT_MAX_WAIT = 30000n;
// 1 s: what a 429 without any hint gets; most limiters count per second.
const DEFAULT_DELAY = 1000n;
// 5 s: successes on an unblocked service are free for this long.
const DEFAULT_LEASE = 5000n;

let config;

function millis(value, key) {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw `invalid config: ${key} must be a whole number of milliseconds`;
  }
  return BigInt(value);
}

function tag(tags, key) {
  const found = tags.find(([k]) => k === key);
  return found ? found[1] : undefined;
}

// How long the upstream asked us to stay away, if it said.
function hint(event) {
  if (event.retryAfter !== undefined) return event.retryAfter;
  const reset = tag(event.tags, 'quota-reset-ms');
  if (tag(event.tags, 'quota-remaining') === '0' && reset !== undefined && /^\d+$/.test(reset)) {
    return BigInt(reset);
  }
  return undefined;
}

function blockedFor() {
  const until = get('blocked-until');
  if (until === undefined) return 0n;
  const left = BigInt(until) - now();
  return left > 0n ? left : 0n;
}

export const strategy = {
  init(text) {
    const raw = JSON.parse(text);
    for (const key of Object.keys(raw)) {
      if (!['max-wait', 'default-delay', 'lease'].includes(key)) {
        throw `invalid config: unknown key ${key}`;
      }
    }
    config = {
      maxWait: millis(raw['max-wait'], 'max-wait') ?? DEFAULT_MAX_WAIT,
      defaultDelay: millis(raw['default-delay'], 'default-delay') ?? DEFAULT_DELAY,
      lease: millis(raw['lease'], 'lease') ?? DEFAULT_LEASE,
    };
    return { hooks: { admit: true, onError: true } };
  },

  admit(call, recent) {
    const left = blockedFor();
    if (left > config.maxWait) {
      return { tag: 'reject', val: { reason: `rate limited for ${left}ms more`, retryAfter: left } };
    }
    if (left > 0n) {
      return { tag: 'wait', val: left };
    }
    return {
      tag: 'allow',
      val: { attemptTimeout: undefined, lease: { ttl: config.lease, maxAttempts: undefined, untilFailure: true } },
    };
  },

  onError(event, recent) {
    const asked = hint(event);
    if (event.kind !== 'rate-limited' && asked === undefined) {
      return { tag: 'pass' };
    }
    const delay = asked ?? config.defaultDelay;
    if (delay > config.maxWait) {
      return { tag: 'fail', val: `rate limited for ${delay}ms, longer than max-wait (${config.maxWait}ms)` };
    }
    const until = now() + delay;
    set('blocked-until', until.toString(), delay);
    write('info', `rate limited: blocking ${event.service} for ${delay}ms`);
    return { tag: 'retry', val: delay };
  },
};
