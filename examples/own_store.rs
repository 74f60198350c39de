//! A cache server that keeps its own keyspace — a plain `HashMap` of strings — and gets Redis
//! persistence from keeper through the two traits alone: [`Dataset`] (hand out a point-in-time
//! view) and [`Apply`] (take loaded entries and replayed commands). Nothing of keeper's own
//! `Store` is used.
//!
//! ```text
//! cargo run --example own_store -- 127.0.0.1:7000 ./own-data [--appendonly]
//! redis-cli -p 7000 SET greeting hello
//! redis-cli -p 7000 SAVE            # ./own-data/dump.rdb, loadable by redis-server
//! redis-cli -p 7000 BGREWRITEAOF    # with --appendonly: ./own-data/appendonlydir/
//! ```
//!
//! With `--appendonly` the server also gets keeper's AOF (Redis 7's multi-part format,
//! `appendfsync always` with group commit): at start keeper's loader replays the directory
//! through [`Apply`]; each write is encoded as RESP and appended to [`Aof`] under the same lock
//! that orders the writes, and its reply waits for the fdatasync that covers it; a rewrite
//! writes the new base from a [`Dataset`] snapshot.
//!
//! Commands: PING, GET, SET, DEL, DBSIZE, SAVE, BGSAVE, BGREWRITEAOF. The keyspace is an
//! `Arc<HashMap<…>>`: a snapshot clones the `Arc` (O(1)), and the first write while a snapshot
//! is alive copies the map once (`Arc::make_mut`). That is the simplest point-in-time scheme
//! for a server of its own; keeper's `Store` uses persistent maps instead.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use keeper::aof::{self, Aof, RewriteTrigger};
use keeper::config::{AppendFsync, Config};
use keeper::dataset::{Apply, Dataset, DatasetSnapshot};
use keeper::resp::{Limits, Reply, RequestParser};
use keeper::snapshot::{self, ExpiredKeys, LoadOutcome, SaveOptions};
use keeper::{Entry, OsStorage, Value};

/// The server's own keyspace: one database of strings.
#[derive(Default)]
struct Strings {
    map: Arc<HashMap<Bytes, Bytes>>,
}

/// A frozen view of [`Strings`].
struct StringsSnapshot(Arc<HashMap<Bytes, Bytes>>);

impl Dataset for Strings {
    type Snapshot = StringsSnapshot;

    fn snapshot(&self) -> StringsSnapshot {
        StringsSnapshot(Arc::clone(&self.map))
    }
}

impl DatasetSnapshot for StringsSnapshot {
    fn databases(&self) -> usize {
        1
    }

    fn db_size(&self, _db: usize) -> (u64, u64) {
        (self.0.len() as u64, 0)
    }

    fn for_each_entry(
        &self,
        db: usize,
        visit: &mut dyn FnMut(Entry) -> keeper::Result<()>,
    ) -> keeper::Result<()> {
        if db == 0 {
            for (key, value) in self.0.iter() {
                visit(Entry::new(0, key.clone(), Value::String(value.clone())))?;
            }
        }
        Ok(())
    }
}

impl Apply for Strings {
    fn clear(&mut self) {
        self.map = Arc::default();
    }

    fn load_entry(&mut self, entry: Entry) -> keeper::Result<()> {
        match entry.value {
            Value::String(value) if entry.db == 0 => {
                Arc::make_mut(&mut self.map).insert(entry.key, value);
                Ok(())
            }
            other => Err(keeper::Error::InvalidArgument(format!(
                "this server keeps strings in db 0 only, the file has a {} in db {}",
                other.type_name(),
                entry.db
            ))),
        }
    }

    fn apply_command(&mut self, _db: usize, argv: &[Bytes], _now_ms: i64) -> keeper::Result<()> {
        match execute(self, argv) {
            Reply::Error(e) => Err(keeper::Error::InvalidArgument(e.into_owned())),
            _ => Ok(()),
        }
    }
}

/// The data commands, shared by clients and replay.
fn execute(strings: &mut Strings, argv: &[Bytes]) -> Reply {
    let name = argv[0].to_ascii_lowercase();
    match (name.as_slice(), argv.len()) {
        (b"get", 2) => Reply::bulk_or_nil(strings.map.get(&argv[1]).cloned()),
        (b"set", 3) => {
            // Own copies: argv may share a large read buffer.
            let (key, value) = (
                Bytes::copy_from_slice(&argv[1]),
                Bytes::copy_from_slice(&argv[2]),
            );
            Arc::make_mut(&mut strings.map).insert(key, value);
            Reply::Ok
        }
        (b"del", n) if n >= 2 => {
            let map = Arc::make_mut(&mut strings.map);
            Reply::Int(
                argv[1..]
                    .iter()
                    .filter(|k| map.remove(*k).is_some())
                    .count() as i64,
            )
        }
        (b"dbsize", 1) => Reply::Int(strings.map.len() as i64),
        (b"ping", 1) => Reply::Simple("PONG".into()),
        _ => Reply::error(format!(
            "ERR unknown command or wrong arguments '{}'",
            String::from_utf8_lossy(&argv[0])
        )),
    }
}

/// What the server's one lock guards: the keyspace and, with `--appendonly`, the AOF. Both
/// change under the lock, so the AOF's order is the order writes were applied in.
struct State {
    strings: Strings,
    aof: Option<Aof>,
    /// The AOF's stream needs a `SELECT` before its first command (every incr file starts
    /// with one; this server has one database).
    selected: bool,
}

/// The server: the keyspace and where it is saved.
struct Server {
    state: Mutex<State>,
    dump: PathBuf,
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Server {
    /// Loads `dir/dump.rdb` when there is one; with `appendonly`, loads and opens the AOF
    /// directory instead (as Redis: the RDB is not read when the AOF is on).
    fn open(dir: &Path, appendonly: bool) -> keeper::Result<Server> {
        std::fs::create_dir_all(dir).map_err(|e| keeper::Error::io(dir, "create", e))?;
        let dump = dir.join("dump.rdb");
        let mut strings = Strings::default();
        let now = unix_ms();
        let mut aof_opened = None;
        if appendonly {
            let config = Config {
                dir: dir.to_path_buf(),
                appendonly: true,
                appendfsync: AppendFsync::Always,
                ..Config::default()
            };
            let prepared = Aof::prepare(&OsStorage, &config)?;
            let mut position = (String::from("0").repeat(40), 0);
            if let Some(manifest) = &prepared.manifest {
                let names = aof::manifest::AofNames::new(&config.appendfilename);
                let options = aof::loader::LoadOptions {
                    load_truncated: true,
                    now_ms: now,
                };
                let report = aof::loader::load(
                    &OsStorage,
                    &config.aof_dir(),
                    &names,
                    manifest,
                    &mut strings,
                    &options,
                )?;
                eprintln!("loaded {} AOF commands", report.commands());
                if let Some(repl) = report.repl {
                    position = (repl.replid, repl.offset);
                }
            }
            let aof = Aof::open(
                Arc::new(OsStorage),
                &config,
                prepared.manifest,
                &strings.snapshot(),
                &position.0,
                position.1,
            )?;
            aof_opened = Some(aof);
        } else if let LoadOutcome::Loaded(stats) =
            snapshot::load_rdb(&OsStorage, &dump, &mut strings, ExpiredKeys::SkipAt(now))?
        {
            eprintln!("loaded {} keys from {}", stats.keys_loaded, dump.display());
        }
        Ok(Server {
            state: Mutex::new(State {
                strings,
                aof: aof_opened,
                selected: false,
            }),
            dump,
        })
    }

    fn save(&self, view: StringsSnapshot) -> Reply {
        match snapshot::write_rdb(&OsStorage, &self.dump, &view, SaveOptions::default()) {
            Ok(_) => Reply::Ok,
            Err(e) => Reply::error(format!("ERR {e}")),
        }
    }

    fn command(self: &Arc<Self>, argv: &[Bytes]) -> Reply {
        let mut state = self.state.lock().expect("keyspace lock");
        match argv[0].to_ascii_lowercase().as_slice() {
            b"save" => {
                let view = state.strings.snapshot();
                drop(state);
                self.save(view)
            }
            b"bgsave" => {
                // The view is taken under the lock (one point of the write stream); the
                // file is written after it is released, while clients go on writing.
                let view = state.strings.snapshot();
                let server = Arc::clone(self);
                std::thread::spawn(move || server.save(view));
                Reply::Simple("Background saving started".into())
            }
            b"bgrewriteaof" => {
                let view = state.strings.snapshot();
                let State { aof, selected, .. } = &mut *state;
                let Some(aof) = aof else {
                    return Reply::error("ERR the AOF is off (start with --appendonly)");
                };
                let offset = aof.writer().offset();
                match aof.start_rewrite(view, offset, RewriteTrigger::Command) {
                    Ok(()) => {
                        // The new incr file starts with its own SELECT.
                        *selected = false;
                        Reply::Simple("Background append only file rewriting started".into())
                    }
                    Err(e) => Reply::error(e),
                }
            }
            name => {
                let is_write = matches!(name, b"set" | b"del");
                if is_write
                    && let Some(refusal) = state.aof.as_mut().and_then(|a| a.write_refusal(0))
                {
                    return Reply::error(refusal);
                }
                let reply = execute(&mut state.strings, argv);
                let changed = name == b"set" || matches!(reply, Reply::Int(n) if n > 0);
                let State { aof, selected, .. } = &mut *state;
                let Some(aof) = aof.as_mut().filter(|_| is_write && changed) else {
                    return reply;
                };
                let mut record = Vec::new();
                if !*selected {
                    keeper::resp::write_command(&mut record, &[&b"SELECT"[..], b"0"]);
                    *selected = true;
                }
                keeper::resp::write_command(&mut record, argv);
                aof.append(&record);
                let wait = aof.writer().ack_wait(aof.writer().offset());
                drop(state);
                // The reply waits for the fdatasync covering the write (group commit:
                // other clients' writes go on meanwhile).
                match wait.map_or(Ok(()), |w| w.wait_blocking()) {
                    Ok(()) => reply,
                    Err(e) => Reply::error(format!("ERR the write is not durable: {e}")),
                }
            }
        }
    }

    /// Collects a finished AOF rewrite (what keeper server's cron does), ten times a second.
    fn cron(self: Arc<Self>) {
        loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if let Some(aof) = &mut self.state.lock().expect("keyspace lock").aof {
                aof.finish_rewrite(false);
            }
        }
    }
}

fn serve_client(server: Arc<Server>, mut socket: TcpStream) -> std::io::Result<()> {
    let mut parser = RequestParser::new();
    let mut input = BytesMut::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = socket.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        input.extend_from_slice(&chunk[..n]);
        let mut out = Vec::new();
        loop {
            match parser.next_command(&mut input, Limits::default()) {
                Ok(Some(argv)) if argv.is_empty() => {}
                Ok(Some(argv)) => server.command(&argv).encode(&mut out, false),
                Ok(None) => break,
                Err(e) => {
                    Reply::error(e.0).encode(&mut out, false);
                    socket.write_all(&out)?;
                    return Ok(());
                }
            }
        }
        socket.write_all(&out)?;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7000".into());
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "own-data".into()));
    let appendonly = args.next().as_deref() == Some("--appendonly");
    let server = Arc::new(Server::open(&dir, appendonly)?);
    std::thread::spawn({
        let server = Arc::clone(&server);
        move || server.cron()
    });
    let listener = TcpListener::bind(&addr)?;
    eprintln!("own_store listening on {addr}, data in {}", dir.display());
    for socket in listener.incoming() {
        let server = Arc::clone(&server);
        let socket = socket?;
        std::thread::spawn(move || serve_client(server, socket));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(server: &Arc<Server>, words: &[&str]) -> Reply {
        let argv: Vec<Bytes> = words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        server.command(&argv)
    }

    #[test]
    fn saves_a_dump_redis_tools_accept_and_loads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let server = Arc::new(Server::open(dir.path(), false).unwrap());
        assert_eq!(run(&server, &["SET", "greeting", "hello"]), Reply::Ok);
        assert_eq!(run(&server, &["SET", "n", "42"]), Reply::Ok);
        assert_eq!(run(&server, &["SAVE"]), Reply::Ok);
        assert_eq!(run(&server, &["SET", "after", "x"]), Reply::Ok);
        drop(server);

        // The file is a real RDB: Redis's own checker accepts it.
        let check = std::process::Command::new("redis-check-rdb")
            .arg(dir.path().join("dump.rdb"))
            .output()
            .expect("redis-check-rdb (redis-tools) must be installed");
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stdout)
        );

        let server = Arc::new(Server::open(dir.path(), false).unwrap());
        assert_eq!(run(&server, &["GET", "greeting"]), Reply::bulk("hello"));
        assert_eq!(run(&server, &["GET", "after"]), Reply::Nil);
        assert_eq!(run(&server, &["DBSIZE"]), Reply::Int(2));
    }

    #[test]
    fn the_aof_through_the_traits_survives_restarts_and_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        let server = Arc::new(Server::open(dir.path(), true).unwrap());
        assert_eq!(run(&server, &["SET", "greeting", "hello"]), Reply::Ok);
        assert_eq!(run(&server, &["SET", "gone", "x"]), Reply::Ok);
        assert_eq!(run(&server, &["DEL", "gone"]), Reply::Int(1));
        drop(server);

        let server = Arc::new(Server::open(dir.path(), true).unwrap());
        assert_eq!(run(&server, &["GET", "greeting"]), Reply::bulk("hello"));
        assert_eq!(run(&server, &["DBSIZE"]), Reply::Int(1));
        assert_eq!(
            run(&server, &["BGREWRITEAOF"]),
            Reply::Simple("Background append only file rewriting started".into())
        );
        assert_eq!(run(&server, &["SET", "during", "rewrite"]), Reply::Ok);
        {
            let mut state = server.state.lock().unwrap();
            assert!(state.aof.as_mut().unwrap().finish_rewrite(true));
        }
        assert_eq!(run(&server, &["SET", "after", "rewrite"]), Reply::Ok);
        drop(server);

        // Real Redis's checker accepts the directory keeper wrote for this server.
        let check = std::process::Command::new("redis-check-aof")
            .arg(dir.path().join("appendonlydir/appendonly.aof.manifest"))
            .output()
            .expect("redis-check-aof (redis-tools) must be installed");
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stdout)
        );
        let server = Arc::new(Server::open(dir.path(), true).unwrap());
        assert_eq!(run(&server, &["DBSIZE"]), Reply::Int(3));
        assert_eq!(run(&server, &["GET", "during"]), Reply::bulk("rewrite"));
    }

    #[test]
    fn replayed_commands_go_through_apply() {
        let mut strings = Strings::default();
        let set: Vec<Bytes> = ["SET", "k", "v"].iter().map(|w| Bytes::from(*w)).collect();
        strings.apply_command(0, &set, 0).unwrap();
        assert_eq!(strings.map.get(&b"k"[..]).map(|v| &v[..]), Some(&b"v"[..]));
        let bad: Vec<Bytes> = ["LPUSH", "k", "v"]
            .iter()
            .map(|w| Bytes::from(*w))
            .collect();
        assert!(strings.apply_command(0, &bad, 0).is_err());
    }
}
