//! `CLIENT KILL` in every Redis 7.0 form, replayed on a real `redis-server` and on keeper
//! with the same connections: the replies and which connections end up closed must be the
//! same. Then what only replication shows: killing a replica's connection on its primary
//! drops the link (the replica reconnects and continues partially), and `TYPE master` on a
//! replica drops its link to the primary, which resumes with a partial resync.

mod support;

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use support::RedisServer;
use support::client::{Client, KeeperServer, Resp, info};
use support::wait_until;

/// `addr=` and `id=` of a connection, from its `CLIENT INFO`.
fn whoami(c: &mut Client) -> (String, String, String) {
    let line = c.cmd(&["CLIENT", "INFO"]).text();
    let field = |name: &str| {
        line.split(' ')
            .find_map(|f| f.strip_prefix(&format!("{name}=")))
            .unwrap_or_default()
            .to_string()
    };
    (field("id"), field("addr"), field("laddr"))
}

/// Waits until the server lists exactly `n` connections (closed ones may take a moment to
/// leave the list on either server).
fn settle(c: &mut Client, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = c.cmd(&["CLIENT", "LIST"]).text();
        let count = list.lines().filter(|l| !l.trim().is_empty()).count();
        if count == n {
            return;
        }
        assert!(Instant::now() < deadline, "expected {n} clients:\n{list}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Replies of a reply as text, for comparing two servers.
fn show(reply: Resp) -> String {
    match reply {
        Resp::Error(e) => format!("-{e}"),
        Resp::Int(n) => format!(":{n}"),
        Resp::Simple(s) => format!("+{s}"),
        other => format!("{other:?}"),
    }
}

/// Runs the same script on the server at `port`; returns what it observed.
fn script(port: u16) -> Vec<String> {
    let connect = || Client::connect(port).unwrap();
    let mut log = Vec::new();
    let mut me = connect();
    settle(&mut me, 1);
    let (my_id, my_addr, my_laddr) = whoami(&mut me);
    let run = |c: &mut Client, args: &[&str], log: &mut Vec<String>| {
        let reply = show(c.cmd(args));
        // Ids, addresses and ports differ between the two servers.
        let shown: Vec<&str> = args
            .iter()
            .map(|a| {
                if a.contains(':') || (*a != "0" && a.parse::<u64>().is_ok()) {
                    "<var>"
                } else {
                    a
                }
            })
            .collect();
        log.push(format!("{} -> {reply}", shown.join(" ")));
    };
    // Errors, in Redis's order of checks.
    for args in [
        &["CLIENT", "KILL"][..],
        &["CLIENT", "KILL", "127.0.0.1:1"],
        &["CLIENT", "KILL", "ID", "0"],
        &["CLIENT", "KILL", "ID", "abc"],
        &["CLIENT", "KILL", "ID", "-5"],
        &["CLIENT", "KILL", "TYPE", "foo"],
        &["CLIENT", "KILL", "TYPE", "NORMAL", "ID"],
        &["CLIENT", "KILL", "SKIPME", "maybe"],
        &["CLIENT", "KILL", "USER", "nobody"],
        &["CLIENT", "KILL", "FOO", "bar"],
        &["CLIENT", "KILL", "ID", "999999", "TYPE", "master"],
        &["CLIENT", "KILL", "USER", "default", "ID", "999999"],
        // The caller is skipped by default.
        &["CLIENT", "KILL", "ID", &my_id],
        &["CLIENT", "KILL", "ADDR", &my_addr],
    ] {
        run(&mut me, args, &mut log);
    }

    // TYPE pubsub closes the subscribed connection only.
    let mut subscriber = connect();
    subscriber.cmd(&["SUBSCRIBE", "news"]);
    let mut plain = connect();
    settle(&mut me, 3);
    run(&mut me, &["CLIENT", "KILL", "TYPE", "pubsub"], &mut log);
    log.push(format!("subscriber closed: {}", subscriber.is_closed()));
    settle(&mut me, 2);
    run(&mut me, &["PUBLISH", "news", "x"], &mut log);

    // TYPE normal: everyone but the caller.
    let mut other = connect();
    settle(&mut me, 3);
    run(&mut me, &["CLIENT", "KILL", "TYPE", "normal"], &mut log);
    log.push(format!("plain closed: {}", plain.is_closed()));
    log.push(format!("other closed: {}", other.is_closed()));
    settle(&mut me, 1);

    // ADDR and the old form name one connection; ID with LADDR and USER combine.
    let mut one = connect();
    let mut two = connect();
    let (two_id, two_addr, _) = whoami(&mut two);
    let (_, one_addr, _) = whoami(&mut one);
    run(&mut me, &["CLIENT", "KILL", "ADDR", &two_addr], &mut log);
    log.push(format!("two closed: {}", two.is_closed()));
    run(&mut me, &["CLIENT", "KILL", "ID", &two_id], &mut log);
    run(&mut me, &["CLIENT", "KILL", &one_addr], &mut log);
    log.push(format!("one closed: {}", one.is_closed()));
    let mut three = connect();
    let (three_id, _, _) = whoami(&mut three);
    settle(&mut me, 2);
    run(
        &mut me,
        &[
            "CLIENT", "KILL", "LADDR", &my_laddr, "USER", "default", "ID", &three_id,
        ],
        &mut log,
    );
    log.push(format!("three closed: {}", three.is_closed()));
    settle(&mut me, 1);

    // SKIPME no: the caller gets its reply, then the connection closes.
    let mut doomed = connect();
    let (doomed_id, doomed_addr, _) = whoami(&mut doomed);
    run(
        &mut doomed,
        &["CLIENT", "KILL", "ID", &doomed_id, "SKIPME", "no"],
        &mut log,
    );
    log.push(format!("doomed closed: {}", doomed.is_closed()));
    // The old form can close the caller too.
    let mut last = connect();
    let (_, last_addr, _) = whoami(&mut last);
    run(&mut last, &["CLIENT", "KILL", &last_addr], &mut log);
    log.push(format!("last closed: {}", last.is_closed()));
    // The caller survives all of it.
    run(&mut me, &["PING"], &mut log);
    drop(doomed_addr);
    log
}

#[test]
fn client_kill_matches_redis() {
    let tmp = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(tmp.path(), "dump.rdb");
    let expected = script(redis.port());
    let keeper = keeper_node(&tmp.path().join("keeper"), &[]);
    let actual = script(keeper.port);
    assert_eq!(expected, actual);
}

fn keeper_node(dir: &Path, extra: &[&str]) -> KeeperServer {
    std::fs::create_dir_all(dir).unwrap();
    let mut args = vec!["--save", ""];
    args.extend_from_slice(extra);
    KeeperServer::start(dir, &args)
}

/// The replica on `port` is linked and has applied all of the primary's stream.
fn in_sync(primary: u16, replica: u16) -> bool {
    let want = info(primary, "replication")["master_repl_offset"].clone();
    let fields = info(replica, "replication");
    fields.get("master_link_status").map(String::as_str) == Some("up")
        && fields.get("slave_repl_offset") == Some(&want)
}

fn partial_ok(port: u16) -> u64 {
    info(port, "stats")["sync_partial_ok"].parse().unwrap()
}

#[test]
fn killing_replication_links_resumes_them_partially() {
    let tmp = tempfile::tempdir().unwrap();
    let primary = keeper_node(&tmp.path().join("p"), &[]);
    let replica = keeper_node(
        &tmp.path().join("r"),
        &["--replicaof", "127.0.0.1", &primary.port.to_string()],
    );
    let mut c = primary.client();
    c.cmd(&["SET", "a", "1"]);
    wait_until("the replica to sync", || {
        in_sync(primary.port, replica.port)
    });
    let mut list = c.cmd(&["CLIENT", "LIST", "TYPE", "replica"]).text();
    assert_eq!(list.lines().count(), 1, "{list}");

    // On the primary: the replica's connection goes, the link with it; the replica
    // reconnects and continues from its offset.
    assert_eq!(c.cmd(&["CLIENT", "KILL", "TYPE", "slave"]), Resp::Int(1));
    assert_eq!(info(primary.port, "replication")["connected_slaves"], "0");
    c.cmd(&["SET", "b", "2"]);
    wait_until("the replica to come back", || {
        in_sync(primary.port, replica.port) && partial_ok(primary.port) == 1
    });
    assert_eq!(info(primary.port, "stats")["sync_full"], "1");

    // On the replica: TYPE master drops its link to the primary; it resumes partially.
    let mut r = replica.client();
    assert_eq!(r.cmd(&["CLIENT", "KILL", "TYPE", "master"]), Resp::Int(1));
    c.cmd(&["SET", "c", "3"]);
    wait_until("the replica to resume", || {
        in_sync(primary.port, replica.port) && partial_ok(primary.port) == 2
    });
    assert_eq!(info(primary.port, "stats")["sync_full"], "1");
    assert_eq!(r.cmd(&["GET", "c"]), Resp::bulk("3"));
    // Normal clients are not replicas, and a primary has no master link.
    assert_eq!(c.cmd(&["CLIENT", "KILL", "TYPE", "master"]), Resp::Int(0));
    list = r.cmd(&["CLIENT", "LIST", "TYPE", "normal"]).text();
    assert_eq!(list.lines().count(), 1, "{list}");
}
