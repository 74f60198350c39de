//! The command table against what Redis 7.0.15 reports in `COMMAND INFO`.

use super::{flags, lookup};

/// Key positions: first key, last key, step.
type Keys = (i32, i32, i32);

/// `COMMAND INFO <name>` of Redis 7.0.15: name, arity, flags, key positions.
const REDIS_7_0_COMMAND_INFO: &[(&str, i32, &str, Keys)] = &[
    ("get", 2, "readonly fast", (1, 1, 1)),
    ("set", -3, "write denyoom", (1, 1, 1)),
    ("setnx", 3, "write denyoom fast", (1, 1, 1)),
    ("setex", 4, "write denyoom", (1, 1, 1)),
    ("psetex", 4, "write denyoom", (1, 1, 1)),
    ("getset", 3, "write denyoom fast", (1, 1, 1)),
    ("getdel", 2, "write fast", (1, 1, 1)),
    ("getex", -2, "write fast", (1, 1, 1)),
    ("append", 3, "write denyoom fast", (1, 1, 1)),
    ("strlen", 2, "readonly fast", (1, 1, 1)),
    ("incr", 2, "write denyoom fast", (1, 1, 1)),
    ("decr", 2, "write denyoom fast", (1, 1, 1)),
    ("incrby", 3, "write denyoom fast", (1, 1, 1)),
    ("decrby", 3, "write denyoom fast", (1, 1, 1)),
    ("incrbyfloat", 3, "write denyoom fast", (1, 1, 1)),
    ("mget", -2, "readonly fast", (1, -1, 1)),
    ("mset", -3, "write denyoom", (1, -1, 2)),
    ("msetnx", -3, "write denyoom", (1, -1, 2)),
    ("setrange", 4, "write denyoom", (1, 1, 1)),
    ("getrange", 4, "readonly", (1, 1, 1)),
    ("substr", 4, "readonly", (1, 1, 1)),
    ("del", -2, "write", (1, -1, 1)),
    ("unlink", -2, "write fast", (1, -1, 1)),
    ("exists", -2, "readonly fast", (1, -1, 1)),
    ("type", 2, "readonly fast", (1, 1, 1)),
    ("expire", -3, "write fast", (1, 1, 1)),
    ("pexpire", -3, "write fast", (1, 1, 1)),
    ("expireat", -3, "write fast", (1, 1, 1)),
    ("pexpireat", -3, "write fast", (1, 1, 1)),
    ("ttl", 2, "readonly fast", (1, 1, 1)),
    ("pttl", 2, "readonly fast", (1, 1, 1)),
    ("expiretime", 2, "readonly fast", (1, 1, 1)),
    ("pexpiretime", 2, "readonly fast", (1, 1, 1)),
    ("persist", 2, "write fast", (1, 1, 1)),
    ("touch", -2, "readonly fast", (1, -1, 1)),
    ("keys", 2, "readonly", (0, 0, 0)),
    ("scan", -2, "readonly", (0, 0, 0)),
    ("rename", 3, "write", (1, 2, 1)),
    ("renamenx", 3, "write fast", (1, 2, 1)),
    ("randomkey", 1, "readonly", (0, 0, 0)),
    ("dbsize", 1, "readonly fast", (0, 0, 0)),
    ("flushdb", -1, "write", (0, 0, 0)),
    ("flushall", -1, "write", (0, 0, 0)),
    ("move", 3, "write fast", (1, 1, 1)),
    ("swapdb", 3, "write fast", (0, 0, 0)),
    ("copy", -3, "write denyoom", (1, 2, 1)),
    ("lpush", -3, "write denyoom fast", (1, 1, 1)),
    ("rpush", -3, "write denyoom fast", (1, 1, 1)),
    ("lpushx", -3, "write denyoom fast", (1, 1, 1)),
    ("rpushx", -3, "write denyoom fast", (1, 1, 1)),
    ("lpop", -2, "write fast", (1, 1, 1)),
    ("rpop", -2, "write fast", (1, 1, 1)),
    ("lrange", 4, "readonly", (1, 1, 1)),
    ("llen", 2, "readonly fast", (1, 1, 1)),
    ("lindex", 3, "readonly", (1, 1, 1)),
    ("lset", 4, "write denyoom", (1, 1, 1)),
    ("lrem", 4, "write", (1, 1, 1)),
    ("ltrim", 4, "write", (1, 1, 1)),
    ("linsert", 5, "write denyoom", (1, 1, 1)),
    ("lmove", 5, "write denyoom", (1, 2, 1)),
    ("rpoplpush", 3, "write denyoom", (1, 2, 1)),
    ("lpos", -3, "readonly", (1, 1, 1)),
    ("hset", -4, "write denyoom fast", (1, 1, 1)),
    ("hsetnx", 4, "write denyoom fast", (1, 1, 1)),
    ("hget", 3, "readonly fast", (1, 1, 1)),
    ("hmget", -3, "readonly fast", (1, 1, 1)),
    ("hmset", -4, "write denyoom fast", (1, 1, 1)),
    ("hdel", -3, "write fast", (1, 1, 1)),
    ("hgetall", 2, "readonly", (1, 1, 1)),
    ("hkeys", 2, "readonly", (1, 1, 1)),
    ("hvals", 2, "readonly", (1, 1, 1)),
    ("hlen", 2, "readonly fast", (1, 1, 1)),
    ("hexists", 3, "readonly fast", (1, 1, 1)),
    ("hincrby", 4, "write denyoom fast", (1, 1, 1)),
    ("hincrbyfloat", 4, "write denyoom fast", (1, 1, 1)),
    ("hstrlen", 3, "readonly fast", (1, 1, 1)),
    ("hscan", -3, "readonly", (1, 1, 1)),
    ("hrandfield", -2, "readonly", (1, 1, 1)),
];

#[test]
fn table_matches_redis_command_info() {
    for &(name, arity, expected_flags, keys) in REDIS_7_0_COMMAND_INFO {
        let spec = lookup(name.as_bytes()).unwrap_or_else(|| panic!("{name} is missing"));
        assert_eq!(spec.name, name);
        assert_eq!(spec.arity, arity, "{name} arity");
        let names: Vec<&str> = flags::NAMES
            .iter()
            .filter(|(bit, _)| spec.flags & bit != 0)
            .map(|(_, flag)| *flag)
            .collect();
        assert_eq!(names.join(" "), expected_flags, "{name} flags");
        assert_eq!(
            (spec.first_key, spec.last_key, spec.step),
            keys,
            "{name} key positions"
        );
    }
}
