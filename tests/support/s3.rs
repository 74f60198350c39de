//! A real S3-compatible server for tests: `s3s-fs` (0.14.x), which stores each object as a file
//! under `<root>/<bucket>/<key>` and speaks the S3 REST API with SigV4 authentication.
//!
//! `tools/test` installs it (`cargo install s3s-fs --version '~0.14' --features binary
//! --locked`). A test that needs it and does not find it panics saying so: object-storage
//! tests never pass by being skipped.
//!
//! ```ignore
//! let s3 = S3Server::start();
//! let target = Target::parse_with_env(&s3.url("node-1"), s3.env())?;
//! // or, for a child process: Command::new(..).envs(s3.env())
//! ```

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::{PORT_ATTEMPTS, START_TIMEOUT, free_port};

/// The bucket every server starts with (an S3 bucket is a directory of the server's root).
pub const BUCKET: &str = "keeper-test";
/// Credentials the server demands (SigV4): requests signed with others are refused.
pub const ACCESS_KEY: &str = "keeper-test-access-key";
pub const SECRET_KEY: &str = "keeper-test-secret-key";
pub const REGION: &str = "us-east-1";

/// An `s3s-fs` child on 127.0.0.1 with one empty bucket, [`BUCKET`], in a temporary root;
/// killed and reaped on drop (then the root is removed).
pub struct S3Server {
    child: Child,
    port: u16,
    log_path: PathBuf,
    // Removed after `Drop::drop` has reaped the child.
    dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts a server; panics with its log if it does not come up.
    pub fn start() -> S3Server {
        let binary = s3s_fs_binary();
        let dir = tempfile::tempdir().expect("cannot create a temporary directory");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join(BUCKET)).expect("cannot create the bucket directory");
        let mut last_err = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let log_path = dir.path().join(format!("s3s-fs-{port}.log"));
            let log = File::create(&log_path).expect("cannot create the s3s-fs log");
            let log_err = log.try_clone().expect("cannot clone a file handle");
            let child = Command::new(&binary)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg(&root)
                // Its "server is running at" line is logged at info level.
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
            let mut child = child;
            match wait_ready(&mut child, port, &log_path) {
                Ok(()) => {
                    return S3Server {
                        child,
                        port,
                        log_path,
                        dir,
                    };
                }
                Err(e) => {
                    kill(&mut child);
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    last_err = format!(
                        "s3s-fs on port {port} did not start: {e}\n--- s3s-fs log ---\n{log}"
                    );
                    if !log.contains("Address already in use") {
                        break;
                    }
                }
            }
        }
        panic!("{last_err}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `AWS_*` variables that point an S3 client at this server (for
    /// `Target::parse_with_env`, or `Command::envs` for a child process).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// `s3://BUCKET/prefix` (`s3://BUCKET` for an empty prefix).
    pub fn url(&self, prefix: &str) -> String {
        if prefix.is_empty() {
            format!("s3://{BUCKET}")
        } else {
            format!("s3://{BUCKET}/{prefix}")
        }
    }

    /// The server's root: the bucket directory and the server's own bookkeeping files
    /// (multipart parts, metadata) live here.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Where the object `key` of [`BUCKET`] is stored as a file (to inspect or damage it).
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root().join(BUCKET).join(key)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Waits until the server logs that it listens on `port` (so the port is ours, not another
/// process's) and answers an HTTP request there.
fn wait_ready(child: &mut Child, port: u16, log_path: &Path) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let listening = format!("server is running at http://127.0.0.1:{port}");
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("exited with {status}"));
        }
        let log = std::fs::read_to_string(log_path).unwrap_or_default();
        if log.contains(&listening) && answers(port) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("no answer within {START_TIMEOUT:?}"));
        }
        sleep(Duration::from_millis(20));
    }
}

/// Whether an unsigned request to `port` gets an S3 error document back (it must be refused:
/// the server requires a signature).
fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request =
        format!("GET /{BUCKET} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    let mut response = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut response).is_ok()
        && response.starts_with("HTTP/1.1 403")
        && response.contains("<Error>")
}

/// Kills and reaps `child` (nothing to flush: objects are files, and the root is removed next).
fn kill(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// The `s3s-fs` executable: on `PATH`, else where `cargo install` puts it.
fn s3s_fs_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));
    on_path
        .into_iter()
        .chain(cargo_home.map(|home| home.join("bin")))
        .map(|dir| dir.join("s3s-fs"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "s3s-fs (the S3-compatible test server) is not installed: run tools/test, which \
                 installs it, or `cargo install s3s-fs --version '~0.14' --features binary --locked`"
            )
        })
}
