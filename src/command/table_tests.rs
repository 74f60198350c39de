//! The command table against what Redis 7.0.15 reports in `COMMAND INFO`.

use bytes::Bytes;

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
    ("sadd", -3, "write denyoom fast", (1, 1, 1)),
    ("srem", -3, "write fast", (1, 1, 1)),
    ("smembers", 2, "readonly", (1, 1, 1)),
    ("sismember", 3, "readonly fast", (1, 1, 1)),
    ("smismember", -3, "readonly fast", (1, 1, 1)),
    ("scard", 2, "readonly fast", (1, 1, 1)),
    ("spop", -2, "write fast", (1, 1, 1)),
    ("srandmember", -2, "readonly", (1, 1, 1)),
    ("smove", 4, "write fast", (1, 2, 1)),
    ("sinter", -2, "readonly", (1, -1, 1)),
    ("sunion", -2, "readonly", (1, -1, 1)),
    ("sdiff", -2, "readonly", (1, -1, 1)),
    ("sinterstore", -3, "write denyoom", (1, -1, 1)),
    ("sunionstore", -3, "write denyoom", (1, -1, 1)),
    ("sdiffstore", -3, "write denyoom", (1, -1, 1)),
    ("sintercard", -3, "readonly movablekeys", (0, 0, 0)),
    ("sscan", -3, "readonly", (1, 1, 1)),
    ("zadd", -4, "write denyoom fast", (1, 1, 1)),
    ("zincrby", 4, "write denyoom fast", (1, 1, 1)),
    ("zrem", -3, "write fast", (1, 1, 1)),
    ("zscore", 3, "readonly fast", (1, 1, 1)),
    ("zmscore", -3, "readonly fast", (1, 1, 1)),
    ("zcard", 2, "readonly fast", (1, 1, 1)),
    ("zrank", 3, "readonly fast", (1, 1, 1)),
    ("zrevrank", 3, "readonly fast", (1, 1, 1)),
    ("zrange", -4, "readonly", (1, 1, 1)),
    ("zrangebyscore", -4, "readonly", (1, 1, 1)),
    ("zrevrangebyscore", -4, "readonly", (1, 1, 1)),
    ("zrangebylex", -4, "readonly", (1, 1, 1)),
    ("zrevrangebylex", -4, "readonly", (1, 1, 1)),
    ("zrevrange", -4, "readonly", (1, 1, 1)),
    ("zcount", 4, "readonly fast", (1, 1, 1)),
    ("zlexcount", 4, "readonly fast", (1, 1, 1)),
    ("zpopmin", -2, "write fast", (1, 1, 1)),
    ("zpopmax", -2, "write fast", (1, 1, 1)),
    ("zremrangebyscore", 4, "write", (1, 1, 1)),
    ("zremrangebyrank", 4, "write", (1, 1, 1)),
    ("zremrangebylex", 4, "write", (1, 1, 1)),
    ("zscan", -3, "readonly", (1, 1, 1)),
    ("zrandmember", -2, "readonly", (1, 1, 1)),
    ("xadd", -5, "write denyoom fast", (1, 1, 1)),
    ("xlen", 2, "readonly fast", (1, 1, 1)),
    ("xrange", -4, "readonly", (1, 1, 1)),
    ("xrevrange", -4, "readonly", (1, 1, 1)),
    ("xdel", -3, "write fast", (1, 1, 1)),
    ("xtrim", -4, "write", (1, 1, 1)),
    ("xgroup", -2, "", (0, 0, 0)),
    ("xreadgroup", -7, "write blocking movablekeys", (0, 0, 0)),
    ("xread", -4, "readonly blocking movablekeys", (0, 0, 0)),
    ("xack", -4, "write fast", (1, 1, 1)),
    ("xpending", -3, "readonly", (1, 1, 1)),
    ("xclaim", -6, "write fast", (1, 1, 1)),
    ("xsetid", -3, "write denyoom fast", (1, 1, 1)),
    ("xinfo", -2, "", (0, 0, 0)),
];

/// Flags as `COMMAND` lists them.
fn flag_names(bits: u32) -> String {
    let names: Vec<&str> = flags::NAMES
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, flag)| *flag)
        .collect();
    names.join(" ")
}

#[test]
fn table_matches_redis_command_info() {
    for &(name, arity, expected_flags, keys) in REDIS_7_0_COMMAND_INFO {
        let spec = lookup(name.as_bytes()).unwrap_or_else(|| panic!("{name} is missing"));
        assert_eq!(spec.name, name);
        assert_eq!(spec.arity, arity, "{name} arity");
        assert_eq!(flag_names(spec.flags), expected_flags, "{name} flags");
        assert_eq!(
            (spec.first_key, spec.last_key, spec.step),
            keys,
            "{name} key positions"
        );
    }
    for spec in super::specs() {
        assert!(
            REDIS_7_0_COMMAND_INFO.iter().any(|row| row.0 == spec.name),
            "{} is not checked against Redis",
            spec.name
        );
    }
}

/// `COMMAND INFO <container>|<subcommand>` of Redis 7.0.15: name, arity, flags.
const REDIS_7_0_SUBCOMMAND_INFO: &[(&str, &str, i32, &str)] = &[
    ("xgroup", "create", -5, "write denyoom"),
    ("xgroup", "setid", -5, "write"),
    ("xgroup", "destroy", 4, "write"),
    ("xgroup", "createconsumer", 5, "write denyoom"),
    ("xgroup", "delconsumer", 5, "write"),
    ("xgroup", "help", 2, "loading stale"),
    ("xinfo", "stream", -3, "readonly"),
    ("xinfo", "groups", 3, "readonly"),
    ("xinfo", "consumers", 4, "readonly"),
    ("xinfo", "help", 2, "loading stale"),
];

#[test]
fn subcommands_match_redis_command_info() {
    for &(container, name, arity, expected_flags) in REDIS_7_0_SUBCOMMAND_INFO {
        let spec = lookup(container.as_bytes()).expect(container);
        assert_eq!(
            spec.flags, 0,
            "{container}: a container has no flags of its own"
        );
        let argv = [Bytes::from(container), Bytes::from(name.to_uppercase())];
        let sub = spec.subcommand(&argv).expect(name);
        assert_eq!((sub.name, sub.arity), (name, arity), "{container}|{name}");
        assert_eq!(
            flag_names(sub.flags),
            expected_flags,
            "{container}|{name} flags"
        );
    }
    let containers = REDIS_7_0_SUBCOMMAND_INFO.iter().map(|(c, ..)| *c);
    for spec in super::specs().filter(|spec| !spec.subcommands.is_empty()) {
        assert!(
            containers.clone().any(|c| c == spec.name),
            "{} subcommands are not checked",
            spec.name
        );
    }
}

#[test]
fn write_calls_follow_subcommands() {
    let is_write_call = |line: &str| {
        let argv: Vec<Bytes> = line
            .split(' ')
            .map(|w| Bytes::from(w.to_string()))
            .collect();
        let spec = lookup(&argv[0]).expect(line);
        spec.is_write_call(&argv)
    };
    for line in [
        "SET k v",
        "XGROUP CREATE s g $",
        "xgroup setid s g 0",
        "XGROUP DESTROY s g",
        "XGROUP CREATECONSUMER s g c",
        "XGROUP DELCONSUMER s g c",
    ] {
        assert!(is_write_call(line), "{line}");
    }
    for line in [
        "GET k",
        "XGROUP HELP",
        "XGROUP NOSUCH s",
        "XGROUP",
        "XINFO STREAM s",
        "XINFO HELP",
    ] {
        assert!(!is_write_call(line), "{line}");
    }
    let create = lookup(b"xgroup").expect("xgroup");
    assert!(!create.is_write(), "the container's own flags stay empty");
    let argv = [Bytes::from("XGROUP"), Bytes::from("CREATE")];
    assert_ne!(create.call_flags(&argv) & flags::DENYOOM, 0);
}
