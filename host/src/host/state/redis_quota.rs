//! Quota accounting on Redis: every plugin write, alone or in a batch, is
//! one Lua script that evicts the scope's expired keys, checks the quota
//! and writes, atomically across every process sharing the Redis (see
//! [`super::quota`]). A single write is a batch of one.
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

use redis::{ConnectionLike, RedisResult, Script, Value};

use super::{BatchOp, BatchResult, QuotaExceeded, StateQuota, StateScope};

/// A batch of operations on one scope (a single write is a batch of one).
/// `KEYS`: `#sizes`, `#expiry`, `#bytes`, then each operation's key.
/// `ARGV`: max bytes, max keys, then six per operation: op (`get`, `set`,
/// `incr`, `cas`, `del`, `expect`), the plugin's key, value (or delta),
/// TTL (empty for none; `0` deletes a `set`), `1` if a value is expected,
/// the expected value.
/// Returns one `{tag, payload}` per operation: `v` a value (nil: absent),
/// `n` a number, `d` done, `x` a `cas`/`expect` that found the payload
/// instead, `s` skipped; or, last, `{q, bytes, keys}`: that write is over
/// the quota and the batch stopped there.
const BATCH_LUA: &str = r"
local sizes, expiry, total = KEYS[1], KEYS[2], KEYS[3]
local maxbytes, maxkeys = tonumber(ARGV[1]), tonumber(ARGV[2])
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
-- Would storing `value` at `field` break the quota? {q, bytes, keys} if so.
local function check(field, value)
  local had = redis.call('HEXISTS', sizes, field) == 1
  local old = tonumber(redis.call('HGET', sizes, field) or '0')
  local new = string.len(field) + string.len(value)
  local bytes = tonumber(redis.call('GET', total) or '0') - old + new
  local keys = redis.call('HLEN', sizes) + (had and 0 or 1)
  if (new > old and bytes > maxbytes) or (not had and keys > maxkeys) then
    return {'q', bytes, keys}, old, new
  end
  return nil, old, new
end
-- The bookkeeping after `k` was written.
local function settle(k, field, old, new)
  if redis.call('EXISTS', k) == 0 then
    forget(field)
    return
  end
  redis.call('HSET', sizes, field, new)
  redis.call('INCRBY', total, new - old)
  local pttl = redis.call('PTTL', k)
  if pttl > 0 then
    redis.call('ZADD', expiry, now + pttl, field)
  else
    redis.call('ZADD', expiry, '+inf', field)
  end
end
local function run(k, op, field, value, ttl, hasexp, expected)
  local cur = redis.call('GET', k)
  if not cur then forget(field) end
  if op == 'get' then return {'v', cur} end
  if op == 'cas' or op == 'expect' then
    local holds
    if hasexp == '1' then holds = (cur == expected) else holds = not cur end
    if not holds then return {'x', cur} end
    if op == 'expect' then return {'d', false} end
  end
  if op == 'del' then
    redis.call('DEL', k)
    forget(field)
    return {'d', false}
  end
  if op == 'incr' then
    if cur and not (string.match(cur, '^%-?%d+$') and string.len(cur) < 19) then
      redis.call('SET', k, '0', 'KEEPTTL')
    end
    local n = redis.call('INCRBY', k, value)
    local refused, old, new = check(field, tostring(n))
    if refused then
      if cur then redis.call('SET', k, cur, 'KEEPTTL') else redis.call('DEL', k) end
      return refused
    end
    if not cur and ttl ~= '' then redis.call('PEXPIRE', k, ttl) end
    settle(k, field, old, new)
    return {'n', n}
  end
  if ttl == '0' then
    redis.call('DEL', k)
    forget(field)
    return {'d', false}
  end
  local refused, old, new = check(field, value)
  if refused then return refused end
  if ttl == '' then
    redis.call('SET', k, value)
  else
    redis.call('SET', k, value, 'PX', ttl)
  end
  settle(k, field, old, new)
  return {'d', false}
end
local out, held, a = {}, true, 3
for i = 4, #KEYS do
  if held then
    local op = ARGV[a]
    local r = run(KEYS[i], op, ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5])
    out[#out + 1] = r
    if r[1] == 'q' then return out end
    if r[1] == 'x' and op == 'expect' then held = false end
  else
    out[#out + 1] = {'s', false}
  end
  a = a + 6
end
return out
";

/// The batch script, loaded once per backend.
pub(super) struct QuotaScript(Script);

impl QuotaScript {
    pub(super) fn new() -> Self {
        QuotaScript(Script::new(BATCH_LUA))
    }

    /// Runs `ops` in `scope` (its keys stored under `prefix`, its
    /// bookkeeping keys starting with `prefix` too: see
    /// `RedisState::scope`) under `quota`.
    pub(super) fn run(
        &self,
        c: &mut dyn ConnectionLike,
        prefix: &str,
        scope: &StateScope,
        ops: &[BatchOp],
        quota: StateQuota,
    ) -> RedisResult<Result<Vec<BatchResult>, QuotaExceeded>> {
        let mut invocation = self.0.prepare_invoke();
        invocation
            .key(format!("{prefix}#sizes"))
            .key(format!("{prefix}#expiry"))
            .key(format!("{prefix}#bytes"))
            .arg(quota.max_bytes)
            .arg(quota.max_keys);
        for op in ops {
            let ttl = |t: &Option<u64>| t.map(|t| t.to_string()).unwrap_or_default();
            let (name, value, ttl, expected) = match op {
                BatchOp::Get { .. } => ("get", String::new(), String::new(), None),
                BatchOp::Set { value, ttl_ms, .. } => ("set", value.clone(), ttl(ttl_ms), None),
                BatchOp::Delete { .. } => ("del", String::new(), String::new(), None),
                BatchOp::Increment { delta, ttl_ms, .. } => {
                    ("incr", delta.to_string(), ttl(ttl_ms), None)
                }
                BatchOp::CompareAndSwap {
                    expected,
                    value,
                    ttl_ms,
                    ..
                } => ("cas", value.clone(), ttl(ttl_ms), Some(expected)),
                BatchOp::Expect { value, .. } => {
                    ("expect", String::new(), String::new(), Some(value))
                }
            };
            let expected = expected.and_then(Option::as_deref);
            invocation
                .key(format!("{prefix}:{}", op.key()))
                .arg(name)
                .arg(op.key())
                .arg(value)
                .arg(ttl)
                .arg(if expected.is_some() { "1" } else { "0" })
                .arg(expected.unwrap_or(""));
        }
        let replies: Vec<Vec<Value>> = invocation.invoke(c)?;
        let mut results = Vec::with_capacity(replies.len());
        for reply in replies {
            match read_result(&reply) {
                Some(Read::Result(r)) => results.push(r),
                Some(Read::OverQuota { bytes, keys }) => {
                    return Ok(Err(QuotaExceeded {
                        plugin: scope.plugin.to_string(),
                        service: scope.service.to_string(),
                        quota,
                        bytes,
                        keys,
                    }));
                }
                None => {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::UnexpectedReturnType,
                        "unexpected reply from the state batch script",
                        format!("{reply:?}"),
                    )));
                }
            }
        }
        Ok(Ok(results))
    }
}

/// One element of the script's answer.
enum Read {
    Result(BatchResult),
    OverQuota { bytes: u64, keys: u64 },
}

fn read_result(reply: &[Value]) -> Option<Read> {
    let text = |v: &Value| -> Option<Option<String>> {
        match v {
            Value::Nil => Some(None),
            Value::BulkString(b) => Some(Some(String::from_utf8_lossy(b).into_owned())),
            _ => None,
        }
    };
    let int = |v: &Value| match v {
        Value::Int(n) => Some(*n),
        _ => None,
    };
    let tag = match reply.first()? {
        Value::BulkString(b) => b.as_slice(),
        _ => return None,
    };
    Some(match tag {
        b"v" | b"x" => Read::Result(BatchResult::Value(text(reply.get(1)?)?)),
        b"n" => Read::Result(BatchResult::Number(int(reply.get(1)?)?)),
        b"d" => Read::Result(BatchResult::Done),
        b"s" => Read::Result(BatchResult::Skipped),
        b"q" => Read::OverQuota {
            bytes: int(reply.get(1)?)?.max(0) as u64,
            keys: int(reply.get(2)?)?.max(0) as u64,
        },
        _ => return None,
    })
}
