//! Shared helpers for integration tests: a real `redis-server` per test, a real S3-compatible
//! server ([`s3::S3Server`]), `redis-check-rdb`, the `keeper` binary, and the canonical form of
//! the JSON-lines dataset format, and a TCP proxy that cuts or stalls a link ([`proxy::Proxy`]).
//!
//! The dataset format is the one `tools/redis_dump.py` prints and `keeper inspect --format json`
//! prints: one `{"function":CODE}` line per function library and one
//! `{"db":0,"key":K,"type":T,"expire_at_ms":N|null,"value":V}` line per key (see
//! `fixtures/README.md`). Two producers may order lines, set members, hash fields and stream
//! groups differently and print scores differently (Python repr vs Rust), so tests compare
//! [`canonical`] forms only.
//!
//! Use from a test file with `mod support;`. Every server is killed and reaped on drop.

#![allow(dead_code)] // each test file uses a different subset

pub mod client;
pub mod dump;
pub mod proxy;
pub mod s3;
pub mod sentinel;

use std::cmp::Ordering;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// Upper bound for a server to answer after spawn (loading included). Generous on purpose: a
/// slow CI machine must not fail a test; this only stops a hung test.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Time a server gets to exit after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts when another process takes the chosen port between our probe and Redis's bind.
const PORT_ATTEMPTS: usize = 5;

/// The dataset of the node (real Redis or keeper) on `port` as canonical JSON lines, from
/// `tools/redis_dump.py`; `Err` has the script's error output.
pub fn dump_port(port: u16) -> Result<Vec<String>, String> {
    let out = Command::new("python3")
        .arg(repo_root().join("tools/redis_dump.py"))
        .args(["--port", &port.to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("cannot run python3");
    if !out.status.success() {
        return Err(format!(
            "redis_dump.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(lines(&out.stdout))
}

/// The repository root (`CARGO_MANIFEST_DIR`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `keeper` command (the binary built for this test run).
pub fn keeper() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keeper"))
}

/// Runs `redis-check-rdb PATH`; returns whether it accepted the file and its combined output.
pub fn redis_check_rdb(path: impl AsRef<Path>) -> (bool, String) {
    let path = path.as_ref();
    let out = Command::new("redis-check-rdb")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run redis-check-rdb (install redis-tools): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A `redis-server` child on 127.0.0.1 serving an RDB file; killed and reaped on drop.
pub struct RedisServer {
    child: Child,
    port: u16,
    log_path: PathBuf,
}

impl RedisServer {
    /// Starts a server on `dir/dbfilename` (which need not exist); panics with the server log if
    /// it does not come up.
    pub fn start(dir: &Path, dbfilename: &str) -> RedisServer {
        Self::try_start(dir, dbfilename).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a server on `dir/dbfilename`. `Err` carries the reason and the server log, e.g.
    /// when Redis refuses the RDB file and exits.
    pub fn try_start(dir: &Path, dbfilename: &str) -> Result<RedisServer, String> {
        Self::try_start_with(dir, dbfilename, &[])
    }

    /// Like [`RedisServer::start`], with `extra` options after the defaults (the last value of
    /// an option wins, so e.g. `["--appendonly", "yes"]` loads `dir/appendonlydir`).
    pub fn start_with(dir: &Path, dbfilename: &str, extra: &[&str]) -> RedisServer {
        Self::try_start_with(dir, dbfilename, extra).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`RedisServer::try_start`], with `extra` options after the defaults.
    pub fn try_start_with(
        dir: &Path,
        dbfilename: &str,
        extra: &[&str],
    ) -> Result<RedisServer, String> {
        let mut last_err = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let log_path = dir.join(format!("redis-{port}.log"));
            let log =
                File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
            let log_err = log.try_clone().map_err(|e| e.to_string())?;
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .arg("--dir")
                .arg(dir)
                .args([
                    "--dbfilename",
                    dbfilename,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .spawn()
                .map_err(|e| format!("cannot run redis-server (install redis-server): {e}"))?;
            let mut server = RedisServer {
                child,
                port,
                log_path,
            };
            match server.wait_ready() {
                Ok(()) => return Ok(server),
                Err(e) => {
                    let log = server.log();
                    drop(server); // kills and reaps before the next attempt
                    last_err = format!(
                        "redis-server on {}/{dbfilename} (port {port}) did not start: {e}\n\
                         --- redis-server log ---\n{log}",
                        dir.display()
                    );
                    if !log.contains("Address already in use") && !e.contains("another process") {
                        break;
                    }
                }
            }
        }
        Err(last_err)
    }

    /// Waits until this child answers PING (a loading server replies LOADING, so keep waiting).
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("exited with {status}"));
            }
            if self.cli(&["ping"]).trim() == "PONG" {
                // The port may belong to someone else's server if ours failed to bind.
                let pid = format!("process_id:{}", self.child.id());
                if self
                    .cli(&["info", "server"])
                    .lines()
                    .any(|l| l.trim() == pid)
                {
                    return Ok(());
                }
                return Err("port answered by another process".into());
            }
            if Instant::now() > deadline {
                return Err(format!("no PONG within {START_TIMEOUT:?}"));
            }
            sleep(Duration::from_millis(50));
        }
    }

    fn cli(&self, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits for the server to exit by itself (after `SHUTDOWN`).
    pub fn wait_exit(&mut self) {
        let _ = self.child.wait();
    }

    /// The dataset as JSON lines, from `tools/redis_dump.py` (already canonical).
    pub fn dump(&self) -> Vec<String> {
        dump_port(self.port)
            .unwrap_or_else(|e| panic!("{e}\n--- redis-server log ---\n{}", self.log()))
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM first so Redis exits cleanly (it does not save: `--save ""`).
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + STOP_TIMEOUT;
            while let Ok(None) = self.child.try_wait() {
                if Instant::now() > deadline {
                    let _ = self.child.kill(); // SIGKILL
                    break;
                }
                sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.wait();
    }
}

/// True when the files a `keeper server` writes are plain Redis files. False on the suite's
/// second run (`KEEPER_STORAGE=scrambled`): the node then writes through a byte-transforming
/// backend, and tests that hand its files to real Redis tools (`redis-check-rdb`,
/// `redis-server`) skip that part; reading them back goes through
/// `keeper::storage::from_env()`.
pub fn plain_files() -> bool {
    std::env::var(keeper::storage::STORAGE_ENV).as_deref() != Ok("scrambled")
}

/// Polls `done` every 20 ms until it holds; panics naming `what` after 60 s.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(20));
    }
}

/// A loopback port that was free a moment ago (bind to port 0, then release it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind a loopback port")
}

/// Splits command output into non-empty lines.
pub fn lines(output: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(output)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// Current unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Key lines whose expiry is before `now_ms` removed: a primary drops those when it loads an
/// RDB, so this is what a real Redis holds after loading a file with expired keys.
pub fn drop_expired<S: AsRef<str>>(lines: &[S], now_ms: i64) -> Vec<String> {
    lines
        .iter()
        .map(|l| l.as_ref())
        .filter(|l| {
            let v: Value = parse(l);
            !matches!(v.get("expire_at_ms").and_then(Value::as_i64), Some(t) if t < now_ms)
        })
        .map(str::to_owned)
        .collect()
}

// ---- canonical form -----------------------------------------------------------------------

/// Canonicalises dataset JSON lines so two producers can be compared with `==`:
/// - lines sorted: function lines first (by code), then keys by (db, key bytes);
/// - set members sorted by bytes; zset pairs by (score, member bytes), with scores
///   re-serialised as f64 (`"inf"`/`"-inf"` kept); hash fields sorted by bytes, written as an
///   object when every field is a JSON string, else as `[field, value]` pairs;
/// - stream groups and consumers sorted by name, pending entries and IDs by numeric ID;
/// - every JSON object written with its keys sorted, no spaces.
///
/// Byte strings are compared as written (a JSON string or `{"base64":…}`), so a producer that
/// chooses the wrong representation still shows up as a difference. Panics on invalid JSON.
pub fn canonical<S: AsRef<str>>(lines: &[S]) -> Vec<String> {
    let mut out: Vec<(LineKey, String)> = lines
        .iter()
        .map(|l| l.as_ref().trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v = canonical_line(parse(l));
            let text = to_canonical_json(&v);
            (line_key(&v), text)
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, text)| text).collect()
}

/// Sort key of a line: (0, 0, code) for functions, (1, db, key bytes) for keys.
type LineKey = (u8, u64, Vec<u8>);

fn line_key(v: &Value) -> LineKey {
    match v.get("function") {
        Some(code) => (0, 0, bytes_of(code)),
        None => (
            1,
            v.get("db").and_then(Value::as_u64).unwrap_or(u64::MAX),
            v.get("key").map(bytes_of).unwrap_or_default(),
        ),
    }
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("invalid JSON line ({e}): {line}"))
}

fn canonical_line(mut v: Value) -> Value {
    let typ = v
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if let Some(value) = v.get_mut("value") {
        let taken = value.take();
        *value = match typ.as_str() {
            "set" => canonical_set(taken),
            "zset" => canonical_zset(taken),
            "hash" => canonical_hash(taken),
            "stream" => canonical_stream(taken),
            _ => taken,
        };
    }
    v
}

fn canonical_set(v: Value) -> Value {
    match v {
        Value::Array(mut members) => {
            members.sort_by_key(bytes_of);
            Value::Array(members)
        }
        other => other,
    }
}

fn canonical_zset(v: Value) -> Value {
    let Value::Array(pairs) = v else { return v };
    let mut pairs: Vec<(Value, f64)> = pairs
        .into_iter()
        .map(|p| match p {
            Value::Array(mut mp) if mp.len() == 2 => {
                let score = score_of(&mp[1]);
                (mp.swap_remove(0), score)
            }
            other => panic!("zset element is not [member, score]: {other}"),
        })
        .collect();
    pairs.sort_by(|a, b| {
        a.1.total_cmp(&b.1)
            .then_with(|| bytes_of(&a.0).cmp(&bytes_of(&b.0)))
    });
    Value::Array(
        pairs
            .into_iter()
            .map(|(m, s)| Value::Array(vec![m, score_json(s)]))
            .collect(),
    )
}

fn score_of(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => match s.as_str() {
            "inf" | "+inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            other => panic!("zset score is not a number or inf/-inf: {other:?}"),
        },
        other => panic!("zset score is not a number or inf/-inf: {other}"),
    }
}

fn score_json(s: f64) -> Value {
    if s == f64::INFINITY {
        Value::from("inf")
    } else if s == f64::NEG_INFINITY {
        Value::from("-inf")
    } else {
        Value::from(s) // serde_json f64: one spelling per value
    }
}

fn canonical_hash(v: Value) -> Value {
    let mut pairs: Vec<(Value, Value)> = match v {
        Value::Object(map) => map
            .into_iter()
            .map(|(f, v)| (Value::String(f), v))
            .collect(),
        Value::Array(items) => items
            .into_iter()
            .map(|p| match p {
                Value::Array(mut fv) if fv.len() == 2 => {
                    let value = fv.pop().unwrap_or(Value::Null);
                    (fv.pop().unwrap_or(Value::Null), value)
                }
                other => panic!("hash element is not [field, value]: {other}"),
            })
            .collect(),
        other => return other,
    };
    pairs.sort_by_key(|(f, _)| bytes_of(f));
    if pairs.iter().all(|(f, _)| f.is_string()) {
        let map: Map<String, Value> = pairs
            .into_iter()
            .map(|(f, v)| (f.as_str().unwrap_or_default().to_owned(), v))
            .collect();
        Value::Object(map)
    } else {
        Value::Array(
            pairs
                .into_iter()
                .map(|(f, v)| Value::Array(vec![f, v]))
                .collect(),
        )
    }
}

fn canonical_stream(mut v: Value) -> Value {
    if let Some(Value::Array(entries)) = v.get_mut("entries") {
        entries.sort_by(|a, b| cmp_ids(&a["id"], &b["id"]));
    }
    if let Some(Value::Array(groups)) = v.get_mut("groups") {
        for g in groups.iter_mut() {
            if let Some(Value::Array(pending)) = g.get_mut("pending") {
                pending.sort_by(|a, b| cmp_ids(&a["id"], &b["id"]));
            }
            if let Some(Value::Array(consumers)) = g.get_mut("consumers") {
                for c in consumers.iter_mut() {
                    if let Some(Value::Array(ids)) = c.get_mut("pending") {
                        ids.sort_by(cmp_ids);
                    }
                }
                consumers.sort_by_key(|c| bytes_of(&c["name"]));
            }
        }
        groups.sort_by_key(|g| bytes_of(&g["name"]));
    }
    v
}

/// Orders stream IDs `"ms-seq"` numerically (unparsable IDs last, by text).
fn cmp_ids(a: &Value, b: &Value) -> Ordering {
    let parse = |v: &Value| -> Option<(u64, u64)> {
        let (ms, seq) = v.as_str()?.split_once('-')?;
        Some((ms.parse().ok()?, seq.parse().ok()?))
    };
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.to_string().cmp(&b.to_string()),
    }
}

/// The raw bytes a JSON byte string stands for: text as UTF-8, `{"base64":…}` decoded. Anything
/// else (a producer bug) sorts by its JSON text so the difference still shows.
fn bytes_of(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Object(m) if m.len() == 1 => match m.get("base64").and_then(Value::as_str) {
            Some(b64) => base64_decode(b64).unwrap_or_else(|| v.to_string().into_bytes()),
            None => v.to_string().into_bytes(),
        },
        other => other.to_string().into_bytes(),
    }
}

/// Standard base64 (with or without padding).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let sextet = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let digits = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= sextet(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        match chunk.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 => out.extend_from_slice(&bytes[1..3]),
            2 => out.push(bytes[1]),
            _ => return None,
        }
    }
    Some(out)
}

/// JSON text with object keys sorted at every level (independent of serde_json's map order).
fn to_canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_json(v, &mut out);
    out
}

fn write_json(v: &Value, out: &mut String) {
    match v {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_json(&map[k], out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

// ---- comparing ----------------------------------------------------------------------------

/// `Ok` when two canonical line lists are equal, else a short report of the differing lines.
pub fn compare(what: &str, expected: &[String], actual: &[String]) -> Result<(), String> {
    if expected == actual {
        return Ok(());
    }
    let short = |s: &str| -> String {
        if s.len() > 400 {
            let mut end = 400;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}… ({} bytes)", &s[..end], s.len())
        } else {
            s.to_owned()
        }
    };
    let missing: Vec<&String> = expected.iter().filter(|l| !actual.contains(l)).collect();
    let extra: Vec<&String> = actual.iter().filter(|l| !expected.contains(l)).collect();
    let mut report = format!(
        "{what}: {} expected lines, {} actual; {} missing, {} unexpected",
        expected.len(),
        actual.len(),
        missing.len(),
        extra.len()
    );
    for l in missing.iter().take(5) {
        report.push_str(&format!("\n  - {}", short(l)));
    }
    for l in extra.iter().take(5) {
        report.push_str(&format!("\n  + {}", short(l)));
    }
    if missing.is_empty() && extra.is_empty() {
        report.push_str("\n  (same lines, different multiplicity)");
    }
    Err(report)
}
