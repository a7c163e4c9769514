//! Quota accounting on Redis: every plugin write is one Lua script that
//! evicts the scope's expired keys, checks the quota and writes, atomically
//! across every process sharing the Redis (see [`super::quota`]).
//!
//! Each (plugin, service) scope keeps, beside its keys
//! (`prefix:plugin:service:key`), three bookkeeping keys:
//!
//! * `prefix:plugin:service#sizes`: a hash, key → bytes (key + value);
//!   its length is the scope's key count;
//! * `prefix:plugin:service#expiry`: a sorted set, key → expiry in ms on
//!   the Redis server's clock (`+inf` without a TTL), so expired keys are
//!   found without scanning;
//! * `prefix:plugin:service#bytes`: the scope's total.
//!
//! A plugin key is always `…:service:key`, with a `:` after the service,
//! so it never names one of these.

use redis::{ConnectionLike, RedisResult, Script};

use super::{QuotaExceeded, ScopedKey, StateQuota};

/// One accounted write. `KEYS`: the key, `#sizes`, `#expiry`, `#bytes`.
/// `ARGV`: op (`set`, `incr`, `cas`, `del`), the plugin's key, max bytes,
/// max keys, value (or delta), TTL (empty for none, `0` deletes), for `cas`
/// `1` if a value is expected and the expected value.
/// Returns `{code, n, bytes, keys}`: code 1 done (n: `incr`'s result), 0
/// `cas` found another value, -1 over the quota (bytes and keys it would
/// have made).
const WRITE_LUA: &str = r"
local k, sizes, expiry, total = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local op, field = ARGV[1], ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function forget(f)
  local s = tonumber(redis.call('HGET', sizes, f) or '0')
  if s > 0 then redis.call('DECRBY', total, s) end
  redis.call('HDEL', sizes, f)
  redis.call('ZREM', expiry, f)
end
-- Evict what has expired (Redis dropped the keys; their sizes remain).
for _, f in ipairs(redis.call('ZRANGEBYSCORE', expiry, '-inf', now)) do
  forget(f)
end
local cur = redis.call('GET', k)
if not cur then forget(field) end
if op == 'del' then
  redis.call('DEL', k)
  forget(field)
  return {1, 0, 0, 0}
end
if op == 'cas' then
  if ARGV[7] == '1' then
    if cur ~= ARGV[8] then return {0, 0, 0, 0} end
  elseif cur then
    return {0, 0, 0, 0}
  end
end
local ttl = ARGV[6]
local n = 0
local value = ARGV[5]
if op == 'incr' then
  if cur and not (string.match(cur, '^%-?%d+$') and string.len(cur) < 19) then
    redis.call('SET', k, '0', 'KEEPTTL')
  end
  n = redis.call('INCRBY', k, ARGV[5])
  value = tostring(n)
  if cur then ttl = nil end
else
  if ttl == '0' then
    redis.call('DEL', k)
    forget(field)
    return {1, 0, 0, 0}
  end
end
local had = redis.call('HEXISTS', sizes, field) == 1
local old = tonumber(redis.call('HGET', sizes, field) or '0')
local new = string.len(field) + string.len(value)
local bytes = tonumber(redis.call('GET', total) or '0') - old + new
local keys = redis.call('HLEN', sizes) + (had and 0 or 1)
if (new > old and bytes > tonumber(ARGV[3])) or (not had and keys > tonumber(ARGV[4])) then
  if op == 'incr' then
    if cur then redis.call('SET', k, cur, 'KEEPTTL') else redis.call('DEL', k) end
  end
  return {-1, 0, bytes, keys}
end
if op == 'incr' then
  if ttl and ttl ~= '' then redis.call('PEXPIRE', k, ttl) end
elseif ttl == '' then
  redis.call('SET', k, value)
else
  redis.call('SET', k, value, 'PX', ttl)
end
if redis.call('EXISTS', k) == 0 then
  forget(field)
  return {1, n, bytes, keys}
end
redis.call('HSET', sizes, field, new)
redis.call('INCRBY', total, new - old)
local pttl = redis.call('PTTL', k)
if pttl > 0 then
  redis.call('ZADD', expiry, now + pttl, field)
else
  redis.call('ZADD', expiry, '+inf', field)
end
return {1, n, bytes, keys}
";

/// A write, as the script takes it.
pub(super) enum Write<'a> {
    Set {
        value: &'a str,
    },
    Increment {
        delta: i64,
    },
    CompareAndSwap {
        expected: Option<&'a str>,
        value: &'a str,
    },
    Delete,
}

/// What a write did.
pub(super) enum Written {
    /// Done; an increment's new value (0 for the others).
    Done(i64),
    /// A compare-and-swap found another value.
    Mismatch,
    /// Refused: over the quota.
    Refused(QuotaExceeded),
}

/// The accounted-write script, loaded once per backend.
pub(super) struct QuotaScript(Script);

impl QuotaScript {
    pub(super) fn new() -> Self {
        QuotaScript(Script::new(WRITE_LUA))
    }

    /// Runs `write` of `key` (stored at `redis_key`, in the scope whose
    /// bookkeeping keys start with `scope`) under `quota`.
    pub(super) fn run(
        &self,
        c: &mut dyn ConnectionLike,
        (redis_key, scope): (&str, &str),
        key: &ScopedKey,
        write: &Write<'_>,
        ttl_ms: Option<u64>,
        quota: StateQuota,
    ) -> RedisResult<Written> {
        let (op, value, expected) = match write {
            Write::Set { value } => ("set", value.to_string(), None),
            Write::Increment { delta } => ("incr", delta.to_string(), None),
            Write::CompareAndSwap { expected, value } => ("cas", value.to_string(), *expected),
            Write::Delete => ("del", String::new(), None),
        };
        let mut invocation = self.0.prepare_invoke();
        invocation
            .key(redis_key)
            .key(format!("{scope}#sizes"))
            .key(format!("{scope}#expiry"))
            .key(format!("{scope}#bytes"))
            .arg(op)
            .arg(&key.key)
            .arg(quota.max_bytes)
            .arg(quota.max_keys)
            .arg(value)
            .arg(ttl_ms.map(|t| t.to_string()).unwrap_or_default())
            .arg(if expected.is_some() { "1" } else { "0" })
            .arg(expected.unwrap_or(""));
        let (code, n, bytes, keys): (i64, i64, i64, i64) = invocation.invoke(c)?;
        let (bytes, keys) = (bytes.max(0) as u64, keys.max(0) as u64);
        Ok(match code {
            1 => Written::Done(n),
            0 => Written::Mismatch,
            _ => Written::Refused(QuotaExceeded {
                plugin: key.plugin.to_string(),
                service: key.service.to_string(),
                quota,
                bytes,
                keys,
            }),
        })
    }
}
