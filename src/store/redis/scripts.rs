//! The Lua scripts that write: each runs atomically on the shard that owns
//! its keys (all in one slot) and returns, last, the id of the node that ran
//! it (`CLUSTER MYID`), so the writer can ask that very node whether the
//! write reached its replicas (see "Durability" in the module above).

use std::sync::LazyLock;

use redis::Script;

/// Writes a relationship's events and fold, compare-and-set on the fold's
/// version, once per batch key.
///
/// KEYS: relationship, fold, events, applied batch keys.
/// ARGV: batch key (`""`: none), expected version (`""`: no fold yet), new
/// version, new event count, fold bytes, relationship bytes (`""`: the
/// relationship must exist and is kept), dedup window in ms, then
/// (time, member) pairs.
///
/// Returns `{status, node}`: `ok`; `dup` when the batch key was applied
/// already (a retry: nothing changes); `conflict` when another writer moved
/// the version (read again and fold again); `gone` when the relationship
/// does not exist.
pub static WRITE_EVENTS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local node = redis.call('CLUSTER', 'MYID')
if ARGV[6] == '' and redis.call('EXISTS', KEYS[1]) == 0 then
  return {'gone', node}
end
if ARGV[1] ~= '' and redis.call('ZSCORE', KEYS[4], ARGV[1]) then
  return {'dup', node}
end
local version = redis.call('HGET', KEYS[2], 'v') or ''
if version ~= ARGV[2] then
  return {'conflict', node}
end
for i = 8, #ARGV, 2 do
  redis.call('ZADD', KEYS[3], ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[2], 'v', ARGV[3], 'n', ARGV[4], 'f', ARGV[5])
if ARGV[6] ~= '' then
  redis.call('SET', KEYS[1], ARGV[6])
end
if ARGV[1] ~= '' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local window = tonumber(ARGV[7])
  redis.call('ZADD', KEYS[4], now, ARGV[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - window)
  redis.call('PEXPIRE', KEYS[4], window)
end
return {'ok', node}
"#,
    )
});

/// Creates or replaces a relationship. KEYS: relationship. ARGV: its bytes,
/// then what must be stored for the write to happen: nothing (anything),
/// `0` (no relationship) or `1` and the bytes read. Returns
/// `{written (0/1), existed (0/1), node}`.
pub static UPSERT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local node = redis.call('CLUSTER', 'MYID')
local current = redis.call('GET', KEYS[1])
local existed = current and 1 or 0
if (ARGV[2] == '0' and current) or (ARGV[2] == '1' and current ~= ARGV[3]) then
  return {0, existed, node}
end
redis.call('SET', KEYS[1], ARGV[1])
return {1, existed, node}
"#,
    )
});

/// Raises a time kept as a decimal string to ARGV[1] if it is later.
/// Returns `{node}`.
pub static RAISE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local known = redis.call('GET', KEYS[1])
if not known or tonumber(known) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return {redis.call('CLUSTER', 'MYID')}
"#,
    )
});

/// Sets fields of a hash, if a second key is given only while that key
/// exists. KEYS: the hash, then optionally the key that must exist.
/// ARGV: field, value pairs. Returns `{written (0/1), node}`.
pub static HSET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local node = redis.call('CLUSTER', 'MYID')
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 0 then
  return {0, node}
end
for i = 1, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return {1, node}
"#,
    )
});

/// Sets a string to ARGV[1], empty or not, or deletes it when no ARGV is
/// given. KEYS: the string. Returns `{node}`.
pub static SET_OR_DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if #ARGV == 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return {redis.call('CLUSTER', 'MYID')}
"#,
    )
});

/// The next model version. KEYS: the counter. Returns `{version, node}`.
pub static NEXT_VERSION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
return {redis.call('INCR', KEYS[1]), redis.call('CLUSTER', 'MYID')}
"#,
    )
});

/// Records a stored model version in the index. KEYS: the index.
/// ARGV: version. Returns `{node}`.
pub static INDEX_MODEL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1])
return {redis.call('CLUSTER', 'MYID')}
"#,
    )
});

/// Points a slot at a version, remembering the one it replaces.
/// KEYS: model index, active pointers, previous pointers. ARGV: slot,
/// version. Returns `{found (0/1), node}`; nothing changes when the version
/// is not in the index.
pub static ACTIVATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local node = redis.call('CLUSTER', 'MYID')
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  return {0, node}
end
local current = redis.call('HGET', KEYS[2], ARGV[1])
if current and current ~= ARGV[2] then
  redis.call('HSET', KEYS[3], ARGV[1], current)
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return {1, node}
"#,
    )
});

/// Renews a lease held with token ARGV[1] for ARGV[2] ms. Returns 1 if held.
pub static RENEW_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#,
    )
});

/// Releases a lease held with token ARGV[1].
pub static RELEASE_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#,
    )
});

/// Erases a relationship. KEYS: relationship, fold, events, applied batch
/// keys, index entry. Returns `{existed (0/1), events, latest event time
/// (`""` without events), node}`.
pub static DELETE_RELATIONSHIP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local node = redis.call('CLUSTER', 'MYID')
local existed = redis.call('EXISTS', KEYS[1])
local events = redis.call('ZCARD', KEYS[3])
local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
local latest = ''
if #last == 2 then
  latest = last[2]
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return {existed, events, latest, node}
"#,
    )
});

/// Replaces a kept time ARGV[1] by ARGV[2] (`""`: none), if it is still
/// ARGV[1]: a writer that raised it meanwhile keeps its time. Returns `{node}`.
pub static LOWER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local known = redis.call('GET', KEYS[1]) or ''
if known == ARGV[1] then
  if ARGV[2] == '' then
    redis.call('DEL', KEYS[1])
  else
    redis.call('SET', KEYS[1], ARGV[2])
  end
end
return {redis.call('CLUSTER', 'MYID')}
"#,
    )
});

/// Deletes a model version's keys. KEYS: header, summary, artifacts.
/// ARGV: the chunk keys' prefix (the version's slot, so they sit on this
/// shard). Returns `{existed (0/1), node}`.
pub static DELETE_MODEL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local node = redis.call('CLUSTER', 'MYID')
local chunks = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
for i = 0, chunks - 1 do
  redis.call('DEL', ARGV[1] .. i)
end
local existed = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2], KEYS[3])
return {existed, node}
"#,
    )
});

/// Removes a version from the model index. KEYS: the index. ARGV: version.
/// Returns `{removed (0/1), node}`.
pub static UNINDEX_MODEL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
return {redis.call('ZREM', KEYS[1], ARGV[1]), redis.call('CLUSTER', 'MYID')}
"#,
    )
});
