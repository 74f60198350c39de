//! Real Redis Sentinel runs failover for keeper nodes: three `redis-sentinel` processes
//! monitor a keeper primary with two keeper replicas, each node started from its own config
//! file. Replica B's link goes through a proxy that is paused while writes go on, so B lags
//! behind A when the primary is SIGKILLed. Sentinel must promote A (the replica with the most
//! data), repoint B to it, and B must continue with a partial resync; a client that asks
//! Sentinel for the primary keeps writing, and every write the new primary acknowledged is on
//! both nodes. Sentinel's `CONFIG REWRITE`s leave A's file without a `replicaof` line and B's
//! pointing at A.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::client::{Client, KeeperServer, Resp, info_fields};
use support::proxy::Proxy;
use support::sentinel::{Sentinel, SentinelOptions};

/// Sentinel needs seconds to agree and fail over; this only stops a hung test.
const TIMEOUT: Duration = Duration::from_secs(180);

fn info(port: u16, section: &str) -> HashMap<String, String> {
    Client::connect(port)
        .ok()
        .and_then(|mut c| c.try_cmd(&["INFO", section]).ok())
        .map(|reply| info_fields(&reply))
        .unwrap_or_default()
}

fn field(port: u16, section: &str, name: &str) -> Option<String> {
    info(port, section).remove(name)
}

fn number(port: u16, section: &str, name: &str) -> Option<u64> {
    field(port, section, name).and_then(|v| v.parse().ok())
}

fn wait_until(what: &str, logs: impl Fn() -> String, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            logs()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A keeper node started with `--config DIR/node.conf` holding `lines`.
fn node(dir: &Path, lines: &str) -> KeeperServer {
    std::fs::create_dir_all(dir).unwrap();
    let conf = dir.join("node.conf");
    std::fs::write(&conf, lines).unwrap();
    KeeperServer::start(dir, &["--config", conf.to_str().unwrap()])
}

fn config_text(node: &KeeperServer) -> String {
    std::fs::read_to_string(node.dir.join("node.conf")).unwrap()
}

/// The dataset of the node on `port` (`tools/redis_dump.py`). Nothing may cut it: once the
/// one failover is over, Sentinel has no reason to reconfigure a node (which closes its
/// normal connections with `CLIENT KILL TYPE normal`).
fn dump(port: u16, logs: impl Fn() -> String) -> Vec<String> {
    support::dump_port(port).unwrap_or_else(|e| panic!("dump of port {port}: {e}\n{}", logs()))
}

#[test]
fn sentinel_promotes_the_replica_with_most_data_and_the_other_continues_partially() {
    let tmp = tempfile::tempdir().unwrap();
    let base = "save \"\"\nrepl-backlog-size 16mb\n";
    let mut primary = node(&tmp.path().join("p"), base);
    let a = node(
        &tmp.path().join("a"),
        &format!("{base}replicaof 127.0.0.1 {}\n", primary.port),
    );
    let proxy = Proxy::start(primary.port);
    let b = node(
        &tmp.path().join("b"),
        &format!("{base}replicaof 127.0.0.1 {}\n", proxy.port()),
    );
    let mut c = primary.client();
    for i in 0..500 {
        c.cmd(&["SET", &format!("before:{i}"), &format!("v{i}")]);
    }
    c.cmd(&["RPUSH", "list", "a", "b", "c"]);
    let synced = |port: u16| {
        let want = number(primary.port, "replication", "master_repl_offset");
        field(port, "replication", "master_link_status").as_deref() == Some("up")
            && number(port, "replication", "slave_repl_offset") == want
    };
    let node_logs = || format!("--- A ---\n{}\n--- B ---\n{}", a.log(), b.log());
    wait_until("both replicas in sync", node_logs, || {
        synced(a.port) && synced(b.port)
    });

    let options = SentinelOptions::default();
    let sentinels: Vec<Sentinel> = (0..3)
        .map(|i| Sentinel::start(&tmp.path().join(format!("s{i}")), primary.port, &options))
        .collect();
    let all_logs = |sentinels: &[Sentinel]| {
        let mut text = node_logs();
        for (i, s) in sentinels.iter().enumerate() {
            text.push_str(&format!("\n--- sentinel {i} ---\n{}", s.log()));
        }
        text
    };
    // Every sentinel knows both replicas and the two other sentinels.
    wait_until(
        "the sentinels to discover the replicas and each other",
        || all_logs(&sentinels),
        || {
            sentinels.iter().all(|s| {
                let state = s.primary_state();
                state.get("num-slaves").map(String::as_str) == Some("2")
                    && state.get("num-other-sentinels").map(String::as_str) == Some("2")
            })
        },
    );

    // B stops receiving the stream; writes go on and reach A only.
    proxy.pause();
    for i in 0..300 {
        c.cmd(&["SET", &format!("lagging:{i}"), &format!("v{i}")]);
    }
    c.cmd(&["INCRBY", "counter", "7"]);
    wait_until("A to have every write", node_logs, || synced(a.port));
    let a_offset = number(a.port, "replication", "slave_repl_offset").unwrap();
    let b_offset = number(b.port, "replication", "slave_repl_offset").unwrap();
    assert!(
        b_offset < a_offset,
        "B ({b_offset}) must lag A ({a_offset})"
    );
    // Sentinel talks to B directly and must still see it behind the proxy (it would repoint
    // it after failover-timeout, which would end the lag).
    assert_eq!(
        number(b.port, "replication", "master_port"),
        Some(u64::from(proxy.port()))
    );
    drop(c);
    // Sentinel takes a new run_id for a restart: it must not change with the replication id.
    let a_run_id = field(a.port, "server", "run_id").unwrap();
    assert_ne!(
        Some(&a_run_id),
        field(a.port, "replication", "master_replid").as_ref()
    );

    // The crash, and a client that follows Sentinel to keep writing.
    primary.kill();
    let killed_at = Instant::now();
    let old_port = primary.port;
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(String, u16)>>> = Arc::default();
    let first_new_write: Arc<Mutex<Option<Duration>>> = Arc::default();
    let sentinel_ports: Vec<u16> = sentinels.iter().map(Sentinel::port).collect();
    let writer = {
        let (stop, acked, first) = (stop.clone(), acked.clone(), first_new_write.clone());
        thread::spawn(move || {
            let mut i = 0u64;
            let mut conn: Option<(u16, Client)> = None;
            while !stop.load(Ordering::SeqCst) {
                if conn.is_none() {
                    let port = sentinel_ports.iter().find_map(|&s| {
                        let mut client = Client::connect(s).ok()?;
                        match client
                            .try_cmd(&["SENTINEL", "get-master-addr-by-name", "mymaster"])
                            .ok()?
                        {
                            Resp::Array(items) if items.len() == 2 => {
                                items[1].text().parse::<u16>().ok()
                            }
                            _ => None,
                        }
                    });
                    conn = port.and_then(|p| Client::connect(p).ok().map(|c| (p, c)));
                    if conn.is_none() {
                        thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                }
                let Some((port, client)) = conn.as_mut() else {
                    continue;
                };
                let key = format!("after:{i}");
                match client.try_cmd(&["SET", &key, "x"]) {
                    Ok(Resp::Simple(ok)) if ok == "OK" => {
                        if *port != old_port {
                            let mut first = first.lock().unwrap();
                            if first.is_none() {
                                *first = Some(killed_at.elapsed());
                            }
                        }
                        acked.lock().unwrap().push((key, *port));
                        i += 1;
                    }
                    // READONLY before the promotion, or a refusal: ask Sentinel again.
                    Ok(_) => {
                        conn = None;
                        thread::sleep(Duration::from_millis(20));
                    }
                    // The old primary is gone, or Sentinel's CLIENT KILL closed us.
                    Err(_) => conn = None,
                }
            }
        })
    };

    wait_until(
        "every sentinel to name A as the primary",
        || all_logs(&sentinels),
        || sentinels.iter().all(|s| s.primary_port() == Some(a.port)),
    );
    wait_until(
        "B to replicate from A",
        || all_logs(&sentinels),
        || {
            number(b.port, "replication", "master_port") == Some(u64::from(a.port))
                && field(b.port, "replication", "master_link_status").as_deref() == Some("up")
        },
    );
    wait_until(
        "the client to write to A",
        || all_logs(&sentinels),
        || {
            acked
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, p)| *p == a.port)
                .count()
                >= 200
        },
    );
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let failover_time = first_new_write.lock().unwrap().unwrap();
    println!(
        "Sentinel failover: {:.2} s from the primary's SIGKILL to the new primary \
         acknowledging a write",
        failover_time.as_secs_f64()
    );

    // A was promoted; B continued from it with a partial resync and has the same data.
    assert_eq!(
        field(a.port, "replication", "role").as_deref(),
        Some("master")
    );
    assert_eq!(field(a.port, "server", "run_id"), Some(a_run_id));
    let a_offset = number(a.port, "replication", "master_repl_offset").unwrap();
    wait_until("B to catch up with A", node_logs, || {
        number(b.port, "replication", "slave_repl_offset") == Some(a_offset)
    });
    let stats = info(a.port, "stats");
    assert_eq!(stats["sync_full"], "0", "A served a full sync: {stats:?}");
    assert!(
        stats["sync_partial_ok"].parse::<u64>().unwrap() >= 1,
        "B did not continue partially: {stats:?}"
    );
    let a_data = dump(a.port, || all_logs(&sentinels));
    assert_eq!(
        a_data,
        dump(b.port, || all_logs(&sentinels)),
        "B's data differs from A's"
    );
    // Every write the new primary acknowledged is on both nodes.
    let mut on_a = Client::connect(a.port).unwrap();
    let mut on_b = Client::connect(b.port).unwrap();
    for (key, port) in acked.lock().unwrap().iter() {
        if *port == a.port {
            assert_eq!(on_a.cmd(&["GET", key]), Resp::bulk("x"), "{key} lost on A");
            assert_eq!(on_b.cmd(&["GET", key]), Resp::bulk("x"), "{key} lost on B");
        }
    }
    assert_eq!(on_b.cmd(&["GET", "lagging:299"]), Resp::bulk("v299"));

    // Sentinel's CONFIG REWRITEs: A is a primary, B a replica of A, across restarts.
    let a_conf = config_text(&a);
    assert!(
        !a_conf.contains("replicaof"),
        "A's config:\n{a_conf}\n{}",
        all_logs(&sentinels)
    );
    let b_conf = config_text(&b);
    assert!(
        b_conf.contains(&format!("replicaof 127.0.0.1 {}\n", a.port)),
        "B's config:\n{b_conf}\n{}",
        all_logs(&sentinels)
    );
    // One failover: no sentinel switched the primary twice (a second failover would have
    // promoted B).
    for (i, s) in sentinels.iter().enumerate() {
        assert_eq!(
            s.log().matches("+switch-master").count(),
            1,
            "sentinel {i} switched the primary more than once\n{}",
            all_logs(&sentinels)
        );
    }
}

/// What Sentinel's hello messages rely on: as Redis 7.0 outside cluster mode, a PUBLISH on a
/// primary reaches the subscribers of its replicas through the replication stream (the
/// offsets stay equal), and a PUBLISH on a replica stays there.
#[test]
fn publish_on_a_primary_reaches_subscribers_of_its_replicas() {
    let tmp = tempfile::tempdir().unwrap();
    let primary = node(&tmp.path().join("p"), "save \"\"\n");
    let replica = node(
        &tmp.path().join("r"),
        &format!("save \"\"\nreplicaof 127.0.0.1 {}\n", primary.port),
    );
    let no_logs = String::new;
    wait_until("the replica to link", no_logs, || {
        field(replica.port, "replication", "master_link_status").as_deref() == Some("up")
    });
    let mut subscriber = replica.client();
    subscriber.cmd(&["SUBSCRIBE", "__sentinel__:hello"]);
    let mut p = primary.client();
    // Nobody listens on the primary itself.
    assert_eq!(
        p.cmd(&["PUBLISH", "__sentinel__:hello", "from-primary"]),
        Resp::Int(0)
    );
    assert_eq!(
        subscriber.read(),
        Resp::Array(vec![
            Resp::bulk("message"),
            Resp::bulk("__sentinel__:hello"),
            Resp::bulk("from-primary"),
        ])
    );
    let primary_offset = number(primary.port, "replication", "master_repl_offset");
    wait_until("equal offsets", no_logs, || {
        number(replica.port, "replication", "slave_repl_offset") == primary_offset
    });
    // A replica's own PUBLISH reaches its subscribers and moves no offset.
    let mut r = replica.client();
    assert_eq!(
        r.cmd(&["PUBLISH", "__sentinel__:hello", "from-replica"]),
        Resp::Int(1)
    );
    assert_eq!(subscriber.read().items()[2], Resp::bulk("from-replica"));
    assert_eq!(
        number(replica.port, "replication", "slave_repl_offset"),
        primary_offset
    );
    assert_eq!(
        number(primary.port, "replication", "master_repl_offset"),
        primary_offset
    );
}
