//! A cache server that keeps its own keyspace — a plain `HashMap` of strings — and gets Redis
//! persistence from keeper through the two traits alone: [`Dataset`] (hand out a point-in-time
//! view) and [`Apply`] (take loaded entries and replayed commands). Nothing of keeper's own
//! `Store` is used.
//!
//! ```text
//! cargo run --example own_store -- 127.0.0.1:7000 ./own-data
//! redis-cli -p 7000 SET greeting hello
//! redis-cli -p 7000 SAVE            # ./own-data/dump.rdb, loadable by redis-server
//! ```
//!
//! Commands: PING, GET, SET, DEL, DBSIZE, SAVE, BGSAVE. The keyspace is an
//! `Arc<HashMap<…>>`: a snapshot clones the `Arc` (O(1)), and the first write while a snapshot
//! is alive copies the map once (`Arc::make_mut`). That is the simplest point-in-time scheme
//! for a server of its own; keeper's `Store` uses persistent maps instead.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
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

/// The server: the keyspace and where it is saved.
struct Server {
    strings: Mutex<Strings>,
    dump: PathBuf,
}

impl Server {
    /// Loads `dir/dump.rdb` when there is one.
    fn open(dir: &Path) -> keeper::Result<Server> {
        std::fs::create_dir_all(dir).map_err(|e| keeper::Error::io(dir, "create", e))?;
        let dump = dir.join("dump.rdb");
        let mut strings = Strings::default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        if let LoadOutcome::Loaded(stats) =
            snapshot::load_rdb(&OsStorage, &dump, &mut strings, ExpiredKeys::SkipAt(now))?
        {
            eprintln!("loaded {} keys from {}", stats.keys_loaded, dump.display());
        }
        Ok(Server {
            strings: Mutex::new(strings),
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
        let mut strings = self.strings.lock().expect("keyspace lock");
        match argv[0].to_ascii_lowercase().as_slice() {
            b"save" => {
                let view = strings.snapshot();
                drop(strings);
                self.save(view)
            }
            b"bgsave" => {
                // The view is taken under the lock (one point of the write stream); the
                // file is written after it is released, while clients go on writing.
                let view = strings.snapshot();
                let server = Arc::clone(self);
                std::thread::spawn(move || server.save(view));
                Reply::Simple("Background saving started".into())
            }
            _ => execute(&mut strings, argv),
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
    let server = Arc::new(Server::open(&dir)?);
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
        let server = Arc::new(Server::open(dir.path()).unwrap());
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

        let server = Arc::new(Server::open(dir.path()).unwrap());
        assert_eq!(run(&server, &["GET", "greeting"]), Reply::bulk("hello"));
        assert_eq!(run(&server, &["GET", "after"]), Reply::Nil);
        assert_eq!(run(&server, &["DBSIZE"]), Reply::Int(2));
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
