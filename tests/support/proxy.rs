//! A loopback TCP proxy for replication fault tests: a replica connects to the proxy instead of
//! its primary, and the test cuts, stalls or truncates the link while both nodes keep running.
//!
//! Every accepted connection gets its own upstream connection and two pump threads. The pumps
//! poll the controls every few milliseconds; a `cut` takes effect at once (the sockets are shut
//! down under them) and `pause` returns only once no pump is writing, so nothing read after it
//! is forwarded until `resume`. Dropping the proxy closes everything.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How often idle pumps and the accept loop look at the controls.
const POLL: Duration = Duration::from_millis(10);

#[derive(Default)]
struct Controls {
    stopped: AtomicBool,
    paused: AtomicBool,
    /// Held shared by a pump while it checks `paused` and forwards one read, and exclusively
    /// by `pause` after it sets the flag: once `pause` holds it, no pump is past its check.
    forwarding: RwLock<()>,
    /// 0: no limit; else a connection is cut once this many bytes went downstream (from the
    /// upstream server to the client) on it.
    cut_after_downstream: AtomicU64,
    /// 0: no limit; else a connection stops forwarding downstream once this many bytes went
    /// down on it, until the limit is lifted (the connection stays open).
    hold_after_downstream: AtomicU64,
    accepted: AtomicU64,
    cuts: AtomicU64,
    downstream_bytes: AtomicU64,
    /// Both sockets of every live connection (by connection number), to shut down on `cut`.
    /// A connection leaves the list when its pumps end, so its sockets really close (a
    /// socket kept open here would let the server write into it until its buffers fill,
    /// rather than see the connection reset).
    live: Mutex<Vec<(u64, TcpStream, TcpStream)>>,
}

impl Controls {
    fn cut_all(&self) {
        let live = std::mem::take(&mut *self.live.lock().expect("proxy lock"));
        for (_, client, upstream) in live {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
            self.cuts.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A proxy on a free loopback port forwarding to `127.0.0.1:upstream_port`.
pub struct Proxy {
    port: u16,
    controls: Arc<Controls>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    pub fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let port = listener.local_addr().expect("proxy addr").port();
        listener.set_nonblocking(true).expect("proxy nonblocking");
        let controls = Arc::new(Controls::default());
        let accept = {
            let controls = Arc::clone(&controls);
            thread::spawn(move || accept_loop(&listener, upstream_port, &controls))
        };
        Proxy {
            port,
            controls,
            accept: Some(accept),
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes every connection now; new ones are accepted as before.
    pub fn cut(&self) {
        self.controls.cut_all();
    }

    /// Stops forwarding in both directions (bytes wait in the socket buffers); connections
    /// stay open. On return no byte is in flight through the proxy: a pump that read before
    /// the pause holds its bytes until `resume`.
    pub fn pause(&self) {
        self.controls.paused.store(true, Ordering::SeqCst);
        // Waits out a pump that passed its check before the flag was set.
        drop(self.controls.forwarding.write().expect("proxy lock"));
    }

    pub fn resume(&self) {
        self.controls.paused.store(false, Ordering::SeqCst);
    }

    /// Cuts each connection once `bytes` went downstream on it; `None` lifts the limit.
    pub fn cut_after_downstream(&self, bytes: Option<u64>) {
        self.controls
            .cut_after_downstream
            .store(bytes.unwrap_or(0), Ordering::SeqCst);
    }

    /// Holds each connection's downstream once `bytes` went down on it (the server's
    /// writes back up; nothing is lost); `None` lets them go on.
    pub fn hold_after_downstream(&self, bytes: Option<u64>) {
        self.controls
            .hold_after_downstream
            .store(bytes.unwrap_or(0), Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.controls.accepted.load(Ordering::SeqCst)
    }

    /// Connections closed by `cut` or by the downstream limit so far.
    pub fn cuts(&self) -> u64 {
        self.controls.cuts.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from the upstream server to clients, over all connections.
    pub fn downstream_bytes(&self) -> u64 {
        self.controls.downstream_bytes.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.controls.stopped.store(true, Ordering::SeqCst);
        self.controls.cut_all();
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, upstream_port: u16, controls: &Arc<Controls>) {
    while !controls.stopped.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(POLL);
                continue;
            }
            Err(_) => return,
        };
        let number = controls.accepted.fetch_add(1, Ordering::SeqCst);
        let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
            // The server is down: the client sees a closed connection, as it would directly.
            continue;
        };
        if client.set_nonblocking(false).is_err() {
            continue;
        }
        let clones = (client.try_clone(), upstream.try_clone());
        let (Ok(client2), Ok(upstream2)) = clones else {
            continue;
        };
        if let (Ok(c), Ok(u)) = (client.try_clone(), upstream.try_clone()) {
            controls
                .live
                .lock()
                .expect("proxy lock")
                .push((number, c, u));
        }
        let up = Arc::clone(controls);
        thread::spawn(move || pump(client, upstream2, &up, false, number));
        let down = Arc::clone(controls);
        thread::spawn(move || pump(upstream, client2, &down, true, number));
    }
}

/// Copies `from` → `to` until either side closes, honouring pause and the downstream limit.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    controls: &Controls,
    downstream: bool,
    number: u64,
) {
    let _ = from.set_read_timeout(Some(POLL));
    let mut buf = vec![0u8; 64 * 1024];
    let mut forwarded = 0u64;
    loop {
        if controls.stopped.load(Ordering::SeqCst) {
            break;
        }
        if controls.paused.load(Ordering::SeqCst) {
            thread::sleep(POLL);
            continue;
        }
        let hold = controls.hold_after_downstream.load(Ordering::SeqCst);
        if downstream && hold > 0 && forwarded >= hold {
            thread::sleep(POLL);
            continue;
        }
        let limit = controls.cut_after_downstream.load(Ordering::SeqCst);
        let want = if downstream && limit > 0 {
            let left = limit.saturating_sub(forwarded);
            if left == 0 {
                controls.cuts.fetch_add(1, Ordering::SeqCst);
                break;
            }
            buf.len().min(usize::try_from(left).unwrap_or(usize::MAX))
        } else {
            buf.len()
        };
        let want = if downstream && hold > 0 {
            want.min(usize::try_from(hold - forwarded).unwrap_or(usize::MAX))
        } else {
            want
        };
        match from.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => {
                if !forward(&mut to, &buf[..n], controls) {
                    break;
                }
                forwarded += n as u64;
                if downstream {
                    controls
                        .downstream_bytes
                        .fetch_add(n as u64, Ordering::SeqCst);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
    controls
        .live
        .lock()
        .expect("proxy lock")
        .retain(|(n, _, _)| *n != number);
}

/// Writes one read's bytes to `to`, waiting while the proxy is paused. False when `to` failed
/// or the proxy stopped.
fn forward(to: &mut TcpStream, bytes: &[u8], controls: &Controls) -> bool {
    loop {
        if controls.stopped.load(Ordering::SeqCst) {
            return false;
        }
        let gate = controls.forwarding.read().expect("proxy lock");
        if controls.paused.load(Ordering::SeqCst) {
            drop(gate);
            thread::sleep(POLL);
            continue;
        }
        return to.write_all(bytes).is_ok();
    }
}
