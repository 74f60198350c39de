//! A tiny blocking RESP client for server tests, and a `keeper server` child process.
//!
//! The client writes commands as multibulk (or raw bytes) and reads whole replies, RESP2 or
//! RESP3, into [`Resp`] values tests compare with `==`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    /// RESP2 `$-1` / `*-1`, RESP3 `_`.
    Nil,
    Array(Vec<Resp>),
    Map(Vec<(Resp, Resp)>),
    Set(Vec<Resp>),
    Push(Vec<Resp>),
    Double(String),
    Bool(bool),
    Verbatim(String),
}

impl Resp {
    /// A bulk string reply with `s`.
    pub fn bulk(s: &str) -> Resp {
        Resp::Bulk(s.as_bytes().to_vec())
    }

    /// The text of a simple, bulk or verbatim string (panics otherwise).
    pub fn text(&self) -> String {
        match self {
            Resp::Simple(s) | Resp::Verbatim(s) => s.clone(),
            Resp::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("not a string reply: {other:?}"),
        }
    }

    /// The error text (panics if the reply is not an error).
    pub fn error(&self) -> &str {
        match self {
            Resp::Error(e) => e,
            other => panic!("not an error reply: {other:?}"),
        }
    }

    /// The elements of an array, set or push reply (panics otherwise).
    pub fn items(&self) -> &[Resp] {
        match self {
            Resp::Array(v) | Resp::Set(v) | Resp::Push(v) => v,
            other => panic!("not an aggregate reply: {other:?}"),
        }
    }
}

/// A connection to a server.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connects to 127.0.0.1:`port` (10 s read timeout, so a missing reply fails the test).
    pub fn connect(port: u16) -> std::io::Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Sends one command and reads its reply.
    pub fn cmd(&mut self, args: &[&str]) -> Resp {
        self.send(args);
        self.read()
    }

    /// Sends one command and reads its reply; `Err` when the connection is gone (the crash
    /// harness kills servers under its clients).
    pub fn try_cmd(&mut self, args: &[&str]) -> std::io::Result<Resp> {
        let mut out = Vec::new();
        encode(&mut out, args);
        self.writer.write_all(&out)?;
        self.try_read()
    }

    /// Sends one command without reading.
    pub fn send(&mut self, args: &[&str]) {
        let mut out = Vec::new();
        encode(&mut out, args);
        self.send_raw(&out);
    }

    /// Writes bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write to server");
    }

    /// Reads one reply (panics on EOF or timeout).
    pub fn read(&mut self) -> Resp {
        self.try_read().expect("read reply")
    }

    /// Reads one reply; `Err` on EOF or timeout.
    pub fn try_read(&mut self) -> std::io::Result<Resp> {
        let line = self.line()?;
        let (kind, rest) = line.split_at(1);
        let int = |s: &str| {
            s.parse::<i64>()
                .unwrap_or_else(|_| panic!("bad length {s:?}"))
        };
        Ok(match kind {
            "+" => Resp::Simple(rest.into()),
            "-" => Resp::Error(rest.into()),
            ":" => Resp::Int(int(rest)),
            "_" => Resp::Nil,
            "," => Resp::Double(rest.into()),
            "#" => Resp::Bool(rest == "t"),
            "$" | "=" => {
                let len = int(rest);
                if len < 0 {
                    Resp::Nil
                } else {
                    let mut data = vec![0; len as usize + 2];
                    self.reader.read_exact(&mut data)?;
                    data.truncate(len as usize);
                    if kind == "=" {
                        Resp::Verbatim(String::from_utf8_lossy(&data[4..]).into_owned())
                    } else {
                        Resp::Bulk(data)
                    }
                }
            }
            "*" | "~" | ">" => {
                let len = int(rest);
                if len < 0 {
                    Resp::Nil
                } else {
                    let items = (0..len)
                        .map(|_| self.try_read())
                        .collect::<std::io::Result<Vec<_>>>()?;
                    match kind {
                        "*" => Resp::Array(items),
                        "~" => Resp::Set(items),
                        _ => Resp::Push(items),
                    }
                }
            }
            "%" => {
                let len = int(rest);
                let mut pairs = Vec::new();
                for _ in 0..len {
                    let k = self.try_read()?;
                    pairs.push((k, self.try_read()?));
                }
                Resp::Map(pairs)
            }
            _ => panic!("unknown reply type in {line:?}"),
        })
    }

    fn line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(line.trim_end_matches("\r\n").to_string())
    }

    /// True when the server closed the connection (reads EOF within the timeout).
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0) | Err(_))
    }
}

/// Appends `args` as a RESP multibulk.
pub fn encode(out: &mut Vec<u8>, args: &[&str]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// The `INFO` text as `field → value`.
/// The fields of `INFO section` on the node at `port`.
pub fn info(port: u16, section: &str) -> std::collections::HashMap<String, String> {
    let mut c = Client::connect(port).expect("connect");
    info_fields(&c.cmd(&["INFO", section]))
}

pub fn info_fields(info: &Resp) -> std::collections::HashMap<String, String> {
    info.text()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// A `keeper server` child on 127.0.0.1 with its data in a folder; SIGKILLed on drop.
pub struct KeeperServer {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    log: PathBuf,
}

impl KeeperServer {
    /// Starts `keeper server --port P --dir DIR` plus `extra` options on a free port and
    /// waits until it answers. `--repl-diskless-sync-delay 0` comes first unless `extra`
    /// sets that option, so full syncs do not wait Redis's default 5 s.
    pub fn start(dir: &Path, extra: &[&str]) -> KeeperServer {
        Self::try_start(dir, extra).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`KeeperServer::start`]; `Err` has the reason and the server's log.
    pub fn try_start(dir: &Path, extra: &[&str]) -> Result<KeeperServer, String> {
        Self::try_start_on(dir, None, extra, &[])
    }

    /// Starts it again on `port` (a restart that replicas find where they left it).
    pub fn start_on(dir: &Path, port: u16, extra: &[&str]) -> KeeperServer {
        Self::try_start_on(dir, Some(port), extra, &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`KeeperServer::start`], with `env` added to the server's environment.
    pub fn start_with_env(dir: &Path, extra: &[&str], env: &[(String, String)]) -> KeeperServer {
        Self::try_start_on(dir, None, extra, env).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start_on(
        dir: &Path,
        fixed: Option<u16>,
        extra: &[&str],
        env: &[(String, String)],
    ) -> Result<KeeperServer, String> {
        let mut last = String::new();
        for _ in 0..5 {
            let port = fixed.unwrap_or_else(super::free_port);
            let log = dir.join(format!("keeper-{port}.log"));
            let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
            let err = out.try_clone().map_err(|e| e.to_string())?;
            // A primary's diskless full sync starts at once (Redis's default waits 5 s for
            // more replicas), unless the test sets the delay itself.
            let delay: &[&str] = if extra.contains(&"--repl-diskless-sync-delay") {
                &[]
            } else {
                &["--repl-diskless-sync-delay", "0"]
            };
            let child = super::keeper()
                .args(["server", "--port", &port.to_string(), "--dir"])
                .arg(dir)
                .args(delay)
                .args(extra)
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .map_err(|e| format!("cannot run keeper: {e}"))?;
            let mut server = KeeperServer {
                child,
                port,
                dir: dir.to_path_buf(),
                log,
            };
            match server.wait_ready() {
                Ok(()) => return Ok(server),
                Err(e) => {
                    last = format!(
                        "keeper server did not start: {e}\n--- log ---\n{}",
                        server.log()
                    );
                    if !server.log().contains("Address already in use")
                        && !e.contains("another process")
                    {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("exited with {status}"));
            }
            // Connection errors mean "not yet": a reset can come from a listener that is
            // going away (ours failing to start, or another test's server).
            if let Ok(mut client) = Client::connect(self.port)
                && let Ok(reply) = client.try_cmd(&["PING"])
            {
                return match reply {
                    Resp::Simple(ref s) if s == "PONG" => self.check_own_port(&mut client),
                    // A password-protected node: its INFO needs AUTH, so it cannot be asked
                    // for its pid; our child still running is the best evidence.
                    Resp::Error(ref e) if e.starts_with("NOAUTH") => Ok(()),
                    other => Err(format!("unexpected PING reply {other:?}")),
                };
            }
            if Instant::now() > deadline {
                return Err("no reply within 60 s".into());
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// The port may belong to another test's server when ours failed to bind it (two
    /// tests picked the same free port): the server that answered must be our child.
    fn check_own_port(&self, client: &mut Client) -> Result<(), String> {
        let info = client
            .try_cmd(&["INFO", "server"])
            .map_err(|e| format!("INFO server: {e}"))?;
        let pid = self.child.id().to_string();
        if info_fields(&info).get("process_id") == Some(&pid) {
            Ok(())
        } else {
            Err("port answered by another process".into())
        }
    }

    /// A new connection.
    pub fn client(&self) -> Client {
        Client::connect(self.port).expect("connect to keeper")
    }

    /// Runs `redis-cli -p PORT args…` and returns its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        self.cli_stdin(args, "")
    }

    /// Runs `redis-cli -p PORT args…` with `input` on stdin.
    pub fn cli_stdin(&self, args: &[&str], input: &str) -> String {
        let mut child = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run redis-cli (install redis-tools)");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write redis-cli stdin");
        let out = child.wait_with_output().expect("redis-cli output");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// SIGKILL now (a crash), and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit by itself (after SHUTDOWN).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "keeper did not exit\n{}",
                self.log()
            );
            sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (e.g. "TERM", "KILL") to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for KeeperServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
