//! A real `redis-sentinel` process for failover tests: its own writable config file in a
//! folder, a free loopback port, one monitored primary named by the caller; killed and
//! reaped on drop.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::client::{Client, Resp};

/// How a sentinel watches its primary.
#[derive(Debug, Clone)]
pub struct SentinelOptions {
    /// The name clients ask for (`SENTINEL get-master-addr-by-name NAME`).
    pub name: String,
    pub quorum: u32,
    /// `down-after-milliseconds`: how long without a valid reply makes the primary down.
    /// Keep it above Sentinel's ping period (1 s) with a margin: see the default.
    pub down_after_ms: u64,
    /// `failover-timeout`; also how long Sentinel leaves a replica pointed elsewhere before
    /// it reconfigures it (`+fix-slave-config`).
    pub failover_timeout_ms: u64,
}

impl Default for SentinelOptions {
    fn default() -> Self {
        SentinelOptions {
            name: "mymaster".into(),
            quorum: 2,
            // Not 1000: redis-sentinel 7.0 has a window that makes a new primary look down.
            // At `+switch-master` a sentinel that did not lead the failover resets the
            // primary's link, starting the down clock (`act_ping_time`) at once, but keeps the
            // link's `last_reconn_time` from its once-a-second reconnects to the dead primary,
            // so it connects to the new one up to 1 s (its ping period) plus a timer tick
            // later. With `down-after-milliseconds 1000` the new primary can be `+sdown`
            // before its first PONG arrives, and the other sentinels' "is down" answers,
            // stale from the first failover, make it `+odown` at once: a second failover
            // promotes the lagging replica (sentinel.c `sentinelResetMaster`,
            // `sentinelReconnectInstance`; seen in CI, stop 20). Twice the ping period leaves
            // a second of margin.
            down_after_ms: 2000,
            failover_timeout_ms: 20_000,
        }
    }
}

/// A `redis-sentinel` child on 127.0.0.1.
pub struct Sentinel {
    child: Child,
    port: u16,
    log: PathBuf,
    name: String,
}

impl Sentinel {
    /// Starts a sentinel in `dir` (created) monitoring `127.0.0.1:primary_port`, and waits
    /// until it answers PING.
    pub fn start(dir: &Path, primary_port: u16, options: &SentinelOptions) -> Sentinel {
        std::fs::create_dir_all(dir).expect("sentinel dir");
        let mut last = String::new();
        for _ in 0..5 {
            let port = super::free_port();
            let conf = dir.join(format!("sentinel-{port}.conf"));
            let log = dir.join(format!("sentinel-{port}.log"));
            let text = format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\n\
                 sentinel resolve-hostnames no\n\
                 sentinel monitor {name} 127.0.0.1 {primary_port} {quorum}\n\
                 sentinel down-after-milliseconds {name} {down}\n\
                 sentinel failover-timeout {name} {timeout}\n\
                 sentinel parallel-syncs {name} 1\n",
                dir = dir.display(),
                name = options.name,
                quorum = options.quorum,
                down = options.down_after_ms,
                timeout = options.failover_timeout_ms,
            );
            std::fs::write(&conf, text).expect("write sentinel config");
            let out = File::create(&log).expect("sentinel log");
            let err = out.try_clone().expect("sentinel log");
            let child = Command::new("redis-sentinel")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .expect("cannot run redis-sentinel (install redis-sentinel)");
            let mut sentinel = Sentinel {
                child,
                port,
                log,
                name: options.name.clone(),
            };
            match sentinel.wait_ready() {
                Ok(()) => return sentinel,
                Err(e) => {
                    last = format!("redis-sentinel did not start: {e}\n{}", sentinel.log());
                    if !sentinel.log().contains("Address already in use") {
                        break;
                    }
                }
            }
        }
        panic!("{last}")
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("exited with {status}"));
            }
            if let Ok(mut client) = Client::connect(self.port)
                && let Ok(Resp::Simple(pong)) = client.try_cmd(&["PING"])
                && pong == "PONG"
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("no PONG within 30 s".into());
            }
            sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sends one command on a new connection; `None` when the sentinel cannot be reached.
    pub fn cmd(&self, args: &[&str]) -> Option<Resp> {
        Client::connect(self.port).ok()?.try_cmd(args).ok()
    }

    /// `SENTINEL get-master-addr-by-name`: the port of the primary it knows now (always on
    /// 127.0.0.1 here).
    pub fn primary_port(&self) -> Option<u16> {
        match self.cmd(&["SENTINEL", "get-master-addr-by-name", &self.name])? {
            Resp::Array(items) if items.len() == 2 => items[1].text().parse().ok(),
            _ => None,
        }
    }

    /// `SENTINEL master NAME` as field → value.
    pub fn primary_state(&self) -> std::collections::HashMap<String, String> {
        let mut fields = std::collections::HashMap::new();
        if let Some(Resp::Array(items)) = self.cmd(&["SENTINEL", "master", &self.name]) {
            for pair in items.chunks_exact(2) {
                fields.insert(pair[0].text(), pair[1].text());
            }
        }
        fields
    }

    /// What the sentinel logged so far (its `+sdown`, `+switch-master`, … events).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
