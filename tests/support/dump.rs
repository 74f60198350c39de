//! The dataset of any live server as JSON lines, in the format of `tools/redis_dump.py`, read
//! over RESP with the commands that script sends — except `FUNCTION LIST`, which keeper does
//! not implement (a keeper node holds no function libraries). Tests compare
//! [`super::canonical`] forms of this and of `RedisServer::dump()`.

use serde_json::{Map, Value, json};

use super::client::{Client, Resp};

/// Every key of every database of the server on 127.0.0.1:`port`.
pub fn dump_port(port: u16) -> Vec<String> {
    let mut c = Client::connect(port).expect("connect to dump the dataset");
    let databases = match call(&mut c, &[b"CONFIG", b"GET", b"databases"]) {
        Resp::Array(items) if items.len() == 2 => text(&items[1]).parse::<u32>().unwrap(),
        other => panic!("CONFIG GET databases: {other:?}"),
    };
    let mut out = Vec::new();
    for db in 0..databases {
        call(&mut c, &[b"SELECT", db.to_string().as_bytes()]);
        let mut keys = std::collections::BTreeSet::new();
        let mut cursor = b"0".to_vec();
        loop {
            let reply = call(&mut c, &[b"SCAN", &cursor, b"COUNT", b"1000"]);
            let items = reply.items();
            cursor = bytes(&items[0]);
            keys.extend(items[1].items().iter().map(bytes));
            if cursor == b"0" {
                break;
            }
        }
        for key in keys {
            let typ = text(&call(&mut c, &[b"TYPE", &key]));
            let value = match typ.as_str() {
                "none" => continue, // expired since SCAN
                "string" => enc(&bytes(&call(&mut c, &[b"GET", &key]))),
                "list" => list(&call(&mut c, &[b"LRANGE", &key, b"0", b"-1"])),
                "set" => {
                    let mut members: Vec<Vec<u8>> = call(&mut c, &[b"SMEMBERS", &key])
                        .items()
                        .iter()
                        .map(bytes)
                        .collect();
                    members.sort();
                    Value::Array(members.iter().map(|m| enc(m)).collect())
                }
                "zset" => {
                    let flat = call(&mut c, &[b"ZRANGE", &key, b"0", b"-1", b"WITHSCORES"]);
                    let pairs = flat
                        .items()
                        .chunks(2)
                        .map(|p| json!([enc(&bytes(&p[0])), score(&text(&p[1]))]))
                        .collect();
                    Value::Array(pairs)
                }
                "hash" => hash(&call(&mut c, &[b"HGETALL", &key])),
                "stream" => stream(&mut c, &key),
                other => panic!("key {key:?} in db {db} has type {other}"),
            };
            let expire = match call(&mut c, &[b"PEXPIRETIME", &key]) {
                Resp::Int(t) if t >= 0 => json!(t),
                Resp::Int(_) => Value::Null,
                other => panic!("PEXPIRETIME: {other:?}"),
            };
            let line = json!({
                "db": db, "key": enc(&key), "type": typ, "expire_at_ms": expire, "value": value,
            });
            out.push(line.to_string());
        }
    }
    out
}

/// Sends `args` and reads the reply; an error reply fails the test.
fn call(c: &mut Client, args: &[&[u8]]) -> Resp {
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg);
        request.extend_from_slice(b"\r\n");
    }
    c.send_raw(&request);
    match c.read() {
        Resp::Error(e) => panic!("{}: {e}", String::from_utf8_lossy(args[0])),
        reply => reply,
    }
}

fn bytes(r: &Resp) -> Vec<u8> {
    match r {
        Resp::Bulk(b) => b.clone(),
        Resp::Simple(s) => s.clone().into_bytes(),
        Resp::Int(i) => i.to_string().into_bytes(),
        other => panic!("not a string: {other:?}"),
    }
}

fn text(r: &Resp) -> String {
    String::from_utf8_lossy(&bytes(r)).into_owned()
}

/// A byte string as the dump writes it: text when UTF-8, else `{"base64": …}`.
fn enc(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::from(s),
        Err(_) => json!({ "base64": base64(b) }),
    }
}

fn base64(b: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &x)| acc | (x as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn score(s: &str) -> Value {
    let f: f64 = s.parse().unwrap_or_else(|_| match s {
        "inf" | "+inf" => f64::INFINITY,
        "-inf" => f64::NEG_INFINITY,
        _ => panic!("score {s:?}"),
    });
    if f.is_infinite() {
        Value::from(if f > 0.0 { "inf" } else { "-inf" })
    } else {
        Value::from(f)
    }
}

fn list(r: &Resp) -> Value {
    Value::Array(r.items().iter().map(|x| enc(&bytes(x))).collect())
}

fn hash(r: &Resp) -> Value {
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = r
        .items()
        .chunks(2)
        .map(|p| (bytes(&p[0]), bytes(&p[1])))
        .collect();
    pairs.sort();
    if pairs.iter().all(|(f, _)| std::str::from_utf8(f).is_ok()) {
        let map: Map<String, Value> = pairs
            .iter()
            .map(|(f, v)| (String::from_utf8_lossy(f).into_owned(), enc(v)))
            .collect();
        Value::Object(map)
    } else {
        Value::Array(pairs.iter().map(|(f, v)| json!([enc(f), enc(v)])).collect())
    }
}

/// `[k1, v1, k2, v2, …]` → name → reply.
fn fields(r: &Resp) -> std::collections::HashMap<String, Resp> {
    r.items()
        .chunks(2)
        .map(|p| (text(&p[0]), p[1].clone()))
        .collect()
}

fn int(r: &Resp) -> i64 {
    match r {
        Resp::Int(i) => *i,
        other => text(other).parse().unwrap(),
    }
}

fn stream(c: &mut Client, key: &[u8]) -> Value {
    let info = fields(&call(
        c,
        &[b"XINFO", b"STREAM", key, b"FULL", b"COUNT", b"0"],
    ));
    let mut groups = Vec::new();
    for g in info["groups"].items().iter().map(fields) {
        let pending: Vec<Value> = g["pending"]
            .items()
            .iter()
            .map(|p| {
                let p = p.items();
                json!({
                    "id": text(&p[0]), "consumer": enc(&bytes(&p[1])),
                    "delivery_time_ms": int(&p[2]), "delivery_count": int(&p[3]),
                })
            })
            .collect();
        let consumers: Vec<Value> = g["consumers"]
            .items()
            .iter()
            .map(fields)
            .map(|cons| {
                let seen = int(&cons["seen-time"]);
                let active = cons.get("active-time").map(int).unwrap_or(seen);
                let pending: Vec<Value> = cons["pending"]
                    .items()
                    .iter()
                    .map(|p| Value::from(text(&p.items()[0])))
                    .collect();
                json!({
                    "name": enc(&bytes(&cons["name"])), "seen_time_ms": seen,
                    "active_time_ms": active, "pending": pending,
                })
            })
            .collect();
        let entries_read = match &g["entries-read"] {
            Resp::Nil => Value::Null,
            other => json!(int(other)),
        };
        groups.push(json!({
            "name": enc(&bytes(&g["name"])), "last_id": text(&g["last-delivered-id"]),
            "entries_read": entries_read, "pending": pending, "consumers": consumers,
        }));
    }
    let entries: Vec<Value> = info["entries"]
        .items()
        .iter()
        .map(|e| {
            let e = e.items();
            let pairs: Vec<Value> = e[1]
                .items()
                .chunks(2)
                .map(|p| json!([enc(&bytes(&p[0])), enc(&bytes(&p[1]))]))
                .collect();
            json!({ "id": text(&e[0]), "fields": pairs })
        })
        .collect();
    json!({
        "entries": entries,
        "length": int(&info["length"]),
        "last_id": text(&info["last-generated-id"]),
        "first_id": text(&info["recorded-first-entry-id"]),
        "max_deleted_id": text(&info["max-deleted-entry-id"]),
        "entries_added": int(&info["entries-added"]),
        "groups": groups,
    })
}
