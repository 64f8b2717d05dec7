//! Algorithm steps on Redis: one Lua script runs the steps of a request atomically (no other
//! command runs between them), sent as `EVALSHA` and, when Redis does not know the script yet
//! (a restart, a failover, a flushed cache), once as `EVAL`, which loads it.
//!
//! On one Redis the steps of concurrent requests go in one script run ([`merged`]): a script
//! run has a fixed cost in Redis (about what an `INCRBY` + `EXPIRE` pair costs) that is then
//! paid once per batch, not once per request. Each request's part begins with its own clock
//! reading, so each step runs with the time its request was evaluated at. On a cluster the
//! steps of different descriptors may live on different nodes: each step then runs as its own
//! script (its keys share a slot: they are hash-tagged on the descriptor), all at once.
//!
//! The script is `core::algorithm` in Lua, line for line; the behaviour suite runs the same
//! scenarios on this store and on the memory store.

use std::sync::LazyLock;

use futures_util::future::try_join_all;
use shared::redis::{reply as redis_reply, RedisCallError, RedisPool};

use super::{Step, StepResult, StoreError};

pub(super) mod merged;

const SCRIPT: &str = r#"
-- Gatehouse ratelimit: the counted descriptors of one or more requests, all at once.
-- ARGV: per request 'n' and its time in microseconds, then per step its kind and numbers.
-- KEYS: per step its keys. A counter that cannot be incremented (not an integer, overflow)
-- answers -1: over any limit.
local function counted(reply)
  if type(reply) == 'table' then return -1 end
  return tonumber(reply) or 0
end
local now = 0
local out = {}
local k, a, n = 1, 1, #ARGV
while a <= n do
  local kind = ARGV[a]
  if kind == 'n' then
    now = tonumber(ARGV[a + 1])
    a = a + 2
  elseif kind == 'w' then
    out[#out + 1] = counted(redis.pcall('INCRBY', KEYS[k], ARGV[a + 1]))
    redis.pcall('EXPIRE', KEYS[k], ARGV[a + 2])
    k, a = k + 1, a + 3
  elseif kind == 's' then
    out[#out + 1] = counted(redis.pcall('INCRBY', KEYS[k], ARGV[a + 1]))
    redis.pcall('EXPIRE', KEYS[k], ARGV[a + 2])
    out[#out + 1] = counted(redis.pcall('GET', KEYS[k + 1]))
    k, a = k + 2, a + 3
  else
    -- 'b': a token bucket step (core::algorithm::bucket_step).
    local increment, tolerance = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    local tat = counted(redis.pcall('GET', KEYS[k]))
    if tat < 0 then
      out[#out + 1] = 0
      out[#out + 1] = now + tolerance + increment + 1
    else
      if tat < now then tat = now end
      local next = tat + increment
      if next <= now + tolerance then
        if increment > 0 then
          redis.call('SET', KEYS[k], string.format('%.0f', next), 'PX', math.ceil((next - now) / 1000) + 1000)
        end
        out[#out + 1] = 1
        out[#out + 1] = next
      else
        out[#out + 1] = 0
        out[#out + 1] = tat
      end
    end
    k, a = k + 1, a + 3
  end
end
return out
"#;

/// The script's SHA-1, as `EVALSHA` names it.
static SHA: LazyLock<String> = LazyLock::new(|| {
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, SCRIPT.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
});

/// Runs `steps` on a cluster: each step as a script of its own, all at once (one script must
/// not touch keys of different nodes).
pub async fn run_on_a_cluster(
    pool: &RedisPool,
    steps: &[Step<'_>],
    now_us: u64,
) -> Result<Vec<StepResult>, StoreError> {
    let each = try_join_all(steps.iter().map(|step| {
        let step = std::slice::from_ref(step);
        let (mut keys, mut args) = (Vec::new(), Vec::new());
        encode(step, now_us, &mut keys, &mut args);
        async move { decode(step, &run_script(pool, &keys, &args).await?) }
    }));
    // Boxed, as the rare path: the future of every call stays the size of the common one.
    let each = Box::pin(each).await?;
    Ok(each.into_iter().flatten().collect())
}

/// Runs the script with `keys` and `args` (one or more requests' parts) and returns its flat
/// answer.
async fn run_script(pool: &RedisPool, keys: &[String], args: &[String]) -> Result<Vec<i64>, RedisCallError> {
    let call = |command: &'static str, script: &'static str| async move {
        let replies = pool
            .pipeline(|p| {
                p.cmd(command).arg(script).arg(keys.len()).arg(keys).arg(args);
            })
            .await?;
        let reply = replies.into_iter().next().ok_or(RedisCallError::ShortAnswer { expected: 1, got: 0 })?;
        Ok::<_, RedisCallError>(redis_reply::<Vec<i64>>(reply))
    };
    let flat = match call("EVALSHA", SHA.as_str()).await? {
        // The script ran nowhere yet on this Redis: EVAL runs it and keeps it for EVALSHA.
        Err(e) if e.code() == Some("NOSCRIPT") => call("EVAL", SCRIPT).await?,
        other => other,
    };
    Ok(flat?)
}

/// Appends one request's part — its time, then its steps — to the script's KEYS and ARGV.
fn encode(steps: &[Step<'_>], now_us: u64, keys: &mut Vec<String>, args: &mut Vec<String>) {
    args.extend(["n".to_string(), now_us.to_string()]);
    for step in steps {
        match step {
            Step::Window(update) => {
                keys.push(update.key.to_string());
                args.extend(["w".to_string(), update.hits.min(i64::MAX as u64).to_string(), update.ttl.to_string()]);
            }
            Step::Sliding { current, previous } => {
                keys.extend([current.key.to_string(), previous.to_string()]);
                args.extend(["s".to_string(), current.hits.min(i64::MAX as u64).to_string(), current.ttl.to_string()]);
            }
            Step::Bucket { key, increment_us, tolerance_us } => {
                keys.push(key.to_string());
                args.extend(["b".to_string(), increment_us.to_string(), tolerance_us.to_string()]);
            }
        }
    }
}

/// How many values the script answers for `steps`.
fn answer_len(steps: &[Step<'_>]) -> usize {
    steps.iter().map(|step| if matches!(step, Step::Window(_)) { 1 } else { 2 }).sum()
}

/// The script's flat answer as step results; a counter fault (-1) reads as over any limit.
fn decode(steps: &[Step<'_>], flat: &[i64]) -> Result<Vec<StepResult>, StoreError> {
    let value = |v: i64| u64::try_from(v).unwrap_or(u64::MAX);
    let wrong_length = || StoreError::ScriptAnswer { expected: answer_len(steps), got: flat.len() };
    let mut at = 0;
    let mut take = |n: usize| {
        let part = flat.get(at..at + n).ok_or_else(wrong_length);
        at += n;
        part
    };
    let results = steps
        .iter()
        .map(|step| match step {
            Step::Window(_) => take(1).map(|v| StepResult::Count(value(v[0]))),
            Step::Sliding { .. } => {
                take(2).map(|v| StepResult::Sliding { current: value(v[0]), previous: value(v[1]) })
            }
            Step::Bucket { .. } => take(2).map(|v| StepResult::Bucket { allowed: v[0] == 1, tat_us: value(v[1]) }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if at != flat.len() {
        return Err(wrong_length());
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CounterUpdate;

    #[test]
    fn the_sha_is_the_scripts() {
        assert_eq!(SHA.len(), 40);
        assert!(SHA.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn encoding_and_decoding_keep_the_steps_apart() {
        let window = CounterUpdate { key: "w", hits: 1, ttl: 61, window: 60 };
        let current = CounterUpdate { key: "{s}120", hits: 2, ttl: 181, window: 60 };
        let steps = [
            Step::Window(window),
            Step::Sliding { current, previous: "{s}60" },
            Step::Bucket { key: "{b}tb", increment_us: 100, tolerance_us: 300 },
        ];
        let (mut keys, mut args) = (Vec::new(), Vec::new());
        encode(&steps, 7, &mut keys, &mut args);
        assert_eq!(keys, ["w", "{s}120", "{s}60", "{b}tb"]);
        assert_eq!(args, ["n", "7", "w", "1", "61", "s", "2", "181", "b", "100", "300"]);
        assert_eq!(answer_len(&steps), 5);
        let results = decode(&steps, &[5, 3, -1, 1, 107]).unwrap();
        assert_eq!(
            results,
            [
                StepResult::Count(5),
                StepResult::Sliding { current: 3, previous: u64::MAX },
                StepResult::Bucket { allowed: true, tat_us: 107 }
            ]
        );
        assert!(decode(&steps, &[5, 3]).is_err() && decode(&steps, &[5, 3, 1, 1, 1, 9]).is_err());
    }
}
