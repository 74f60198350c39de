//! A planned failover's primary side (`FAILOVER`, Redis 7.0's `failoverCommand` and
//! `updateFailoverStatus`), as pure state: the server feeds it the replicas it sees and acts
//! on the [`Step`] it returns (see `server/failover.rs`).
//!
//! 1. `FAILOVER [TO host port [FORCE]] [TIMEOUT ms]` starts in
//!    [`FailoverState::WaitingForSync`]: clients' writes are paused, so the stream stops
//!    growing, and the primary waits for the target (or, without `TO`, any replica) to
//!    acknowledge all of it.
//! 2. Caught up (or the timeout passed with `FORCE`): [`FailoverState::InProgress`]. The node
//!    becomes a replica of the target and sends it `PSYNC <replid> <offset> FAILOVER`; the
//!    target promotes itself and answers `+CONTINUE`; the failover is over and the paused
//!    clients resume (their writes now get `-READONLY`).
//! 3. The timeout without `FORCE`, `FAILOVER ABORT`, or the target refusing the PSYNC abort
//!    it: the pause ends and the node stays (or turns back into) a primary.
//!
//! # Caught up
//! Redis compares a replica's last ACK with `master_repl_offset`. A replica answers
//! `REPLCONF GETACK *` with its offset *before* the GETACK, so Redis does not send one
//! while writes are paused and waits for the once-a-second ACK instead. keeper sends one
//! at once (and again whenever the stream moved past it, or a second passed) and also
//! counts as caught up a replica that answered the last GETACK when nothing followed it:
//! it read every byte before the GETACK, and applies the GETACK before it answers, so its
//! offset is the primary's. The failover then takes a round trip, not up to a second.

use std::time::{Duration, Instant};

/// Redis's `ERR syntax error`.
const SYNTAX: &str = "ERR syntax error";
const NOT_INTEGER: &str = "ERR value is not an integer or out of range";

/// A GETACK is sent again after this long without an answer that completes the wait (it
/// also keeps the links busy, standing in for the PING a paused primary does not send).
pub const GETACK_PERIOD: Duration = Duration::from_secs(1);

/// `master_failover_state` of `INFO replication`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailoverState {
    #[default]
    NoFailover,
    WaitingForSync,
    InProgress,
}

impl FailoverState {
    /// The word `INFO replication` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            FailoverState::NoFailover => "no-failover",
            FailoverState::WaitingForSync => "waiting-for-sync",
            FailoverState::InProgress => "failover-in-progress",
        }
    }
}

/// The replica a failover hands over to, as `FAILOVER TO` names it (Redis compares the host
/// with the replica's announced or peer address, case-insensitively, and the port with its
/// `listening-port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: i64,
}

/// A parsed `FAILOVER` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Abort,
    Start(Start),
}

/// The options of a `FAILOVER` that starts one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Start {
    pub target: Option<Target>,
    /// `TIMEOUT ms`; `None`: wait for ever (until `FAILOVER ABORT`).
    pub timeout_ms: Option<u64>,
    pub force: bool,
}

/// Parses `FAILOVER`'s arguments (after the name) as Redis 7.0: `ABORT` only alone; `TO`,
/// `TIMEOUT` and `FORCE` once each, in any order; the first bad value answers.
pub fn parse(args: &[&[u8]]) -> Result<Request, &'static str> {
    if let [only] = args
        && only.eq_ignore_ascii_case(b"abort")
    {
        return Ok(Request::Abort);
    }
    let mut start = Start::default();
    let mut j = 0;
    while j < args.len() {
        let word = args[j];
        if word.eq_ignore_ascii_case(b"timeout") && j + 1 < args.len() && start.timeout_ms.is_none()
        {
            let timeout = parse_long(args[j + 1]).ok_or(NOT_INTEGER)?;
            if timeout <= 0 {
                return Err("ERR FAILOVER timeout must be greater than 0");
            }
            start.timeout_ms = Some(timeout as u64);
            j += 2;
        } else if word.eq_ignore_ascii_case(b"to") && j + 2 < args.len() && start.target.is_none() {
            let port = parse_long(args[j + 2]).ok_or(NOT_INTEGER)?;
            start.target = Some(Target {
                host: String::from_utf8_lossy(args[j + 1]).into_owned(),
                port,
            });
            j += 3;
        } else if word.eq_ignore_ascii_case(b"force") && !start.force {
            start.force = true;
            j += 1;
        } else {
            return Err(SYNTAX);
        }
    }
    Ok(Request::Start(start))
}

fn parse_long(arg: &[u8]) -> Option<i64> {
    crate::command::parse_i64(arg)
}

/// What the failover needs to know of one registered replica.
#[derive(Debug, Clone)]
pub struct ReplicaView<'a> {
    /// Its announced (`REPLCONF ip-address`) or peer address.
    pub host: &'a str,
    /// Its `REPLCONF listening-port`.
    pub port: i64,
    /// Streaming (not in a full sync).
    pub online: bool,
    /// Its last acknowledged offset.
    pub ack: u64,
}

impl ReplicaView<'_> {
    fn is(&self, target: &Target) -> bool {
        self.host.eq_ignore_ascii_case(&target.host) && self.port == target.port
    }
}

/// What the server must do next for a failover waiting for its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing yet: wait for an ACK (or the next tick).
    Wait,
    /// Send `REPLCONF GETACK *` to the replicas, then [`Failover::getack_sent`].
    SendGetack,
    /// Become a replica of `target` and send it `PSYNC … FAILOVER` (the state is now
    /// [`FailoverState::InProgress`]). `forced`: the timeout passed with `FORCE`.
    FailOver { target: Target, forced: bool },
    /// Give up: log [`Failover::abort_message`] with this reason, then [`Failover::clear`].
    Abort(&'static str),
}

/// The failover of this node, if any.
#[derive(Debug, Default)]
pub struct Failover {
    state: FailoverState,
    target: Option<Target>,
    deadline: Option<Instant>,
    force: bool,
    /// `master_repl_offset` just before and just after the last GETACK this failover sent,
    /// and when it was sent.
    getack: Option<(u64, u64, Instant)>,
    /// Counts the failovers started, so a driver can tell its failover from a later one.
    generation: u64,
}

impl Failover {
    pub fn state(&self) -> FailoverState {
        self.state
    }

    /// The target, once known (given by `TO`, or chosen when a replica caught up).
    pub fn target(&self) -> Option<&Target> {
        self.target.as_ref()
    }

    /// The current failover's number (see [`Failover::start`]).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// True while clients' writes wait (from `FAILOVER` until it ends or is aborted).
    pub fn pauses_writes(&self) -> bool {
        self.state != FailoverState::NoFailover
    }

    /// `FAILOVER …` (not `ABORT`): Redis 7.0's checks in its order, then the wait starts.
    /// `is_replica`: this node is a replica. Returns the new failover's generation.
    pub fn start(
        &mut self,
        start: Start,
        is_replica: bool,
        replicas: &[ReplicaView<'_>],
        now: Instant,
    ) -> Result<u64, &'static str> {
        if self.state != FailoverState::NoFailover {
            return Err("ERR FAILOVER already in progress.");
        }
        if is_replica {
            return Err("ERR FAILOVER is not valid when server is a replica.");
        }
        if replicas.is_empty() {
            return Err("ERR FAILOVER requires connected replicas.");
        }
        if start.force && (start.timeout_ms.is_none() || start.target.is_none()) {
            return Err(
                "ERR FAILOVER with force option requires both a timeout and target HOST and IP.",
            );
        }
        if let Some(target) = &start.target {
            let Some(replica) = replicas.iter().find(|r| r.is(target)) else {
                return Err("ERR FAILOVER target HOST and PORT is not a replica.");
            };
            if !replica.online {
                return Err("ERR FAILOVER target replica is not online.");
            }
        }
        self.state = FailoverState::WaitingForSync;
        self.target = start.target;
        self.deadline = start.timeout_ms.map(|ms| now + Duration::from_millis(ms));
        self.force = start.force;
        self.getack = None;
        self.generation += 1;
        Ok(self.generation)
    }

    /// A GETACK went out: `before` and `after` are `master_repl_offset` around it.
    pub fn getack_sent(&mut self, before: u64, after: u64, now: Instant) {
        self.getack = Some((before, after, now));
    }

    /// True when a replica that acknowledged `ack` holds every byte of the stream up to
    /// `offset` (see the module docs).
    fn caught_up(&self, ack: u64, offset: u64) -> bool {
        ack == offset
            || matches!(self.getack, Some((before, after, _)) if after == offset && ack == before)
    }

    /// Redis's `updateFailoverStatus` while waiting for the target: `offset` is
    /// `master_repl_offset`, `replicas` the registered replicas.
    pub fn poll(&mut self, now: Instant, offset: u64, replicas: &[ReplicaView<'_>]) -> Step {
        if self.state != FailoverState::WaitingForSync {
            return Step::Wait;
        }
        if self.deadline.is_some_and(|deadline| deadline <= now) {
            if self.force
                && let Some(target) = self.target.clone()
            {
                self.state = FailoverState::InProgress;
                return Step::FailOver {
                    target,
                    forced: true,
                };
            }
            return Step::Abort("Replica never caught up before timeout");
        }
        // Only a streaming replica counts: one in a full sync may show an ACK of 0 that
        // equals the offset of a primary that never wrote, and it could not continue from
        // this node's history anyway (Redis 7.0 would fail over to it and be refused).
        let synced = |r: &&ReplicaView<'_>| r.online && self.caught_up(r.ack, offset);
        let chosen = match &self.target {
            Some(target) => replicas
                .iter()
                .find(|r| r.is(target))
                .filter(synced)
                .map(|_| target.clone()),
            None => replicas.iter().find(synced).map(|r| Target {
                host: r.host.to_owned(),
                port: r.port,
            }),
        };
        if let Some(target) = chosen {
            self.state = FailoverState::InProgress;
            self.target = Some(target.clone());
            return Step::FailOver {
                target,
                forced: false,
            };
        }
        let stale = match self.getack {
            None => true,
            Some((_, after, at)) => after != offset || now.duration_since(at) >= GETACK_PERIOD,
        };
        if stale { Step::SendGetack } else { Step::Wait }
    }

    /// When the wait ends (the deadline), for a driver's sleep.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Ends the failover (done or aborted): back to [`FailoverState::NoFailover`]. Returns
    /// the state it was in.
    pub fn clear(&mut self) -> FailoverState {
        let was = self.state;
        self.state = FailoverState::NoFailover;
        self.target = None;
        self.deadline = None;
        self.force = false;
        self.getack = None;
        was
    }

    /// The log line of an abort, in Redis's words.
    pub fn abort_message(&self, reason: &str) -> String {
        match &self.target {
            Some(t) => format!("FAILOVER to {}:{} aborted: {reason}", t.host, t.port),
            None => format!("FAILOVER to any replica aborted: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Vec<u8>> {
        line.split_whitespace()
            .map(|w| w.as_bytes().to_vec())
            .collect()
    }

    fn parsed(line: &str) -> Result<Request, &'static str> {
        let owned = args(line);
        let refs: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        parse(&refs)
    }

    fn replica(host: &'static str, port: i64, ack: u64) -> ReplicaView<'static> {
        ReplicaView {
            host,
            port,
            online: true,
            ack,
        }
    }

    fn to(host: &str, port: i64) -> Option<Target> {
        Some(Target {
            host: host.into(),
            port,
        })
    }

    #[test]
    fn parse_matches_redis() {
        assert_eq!(parsed("abort"), Ok(Request::Abort));
        assert_eq!(parsed("ABORT"), Ok(Request::Abort));
        assert_eq!(parsed(""), Ok(Request::Start(Start::default())));
        assert_eq!(
            parsed("TIMEOUT 50 to Host 7 force"),
            Ok(Request::Start(Start {
                target: to("Host", 7),
                timeout_ms: Some(50),
                force: true
            }))
        );
        for syntax in [
            "abort timeout 5",
            "timeout 5 abort",
            "abort abort",
            "to",
            "to 127.0.0.1",
            "foo",
            "timeout 5 timeout 6",
            "force force",
            "to h 1 to h 1",
            "timeout",
        ] {
            assert_eq!(parsed(syntax), Err(SYNTAX), "{syntax}");
        }
        assert_eq!(parsed("to h abc"), Err(NOT_INTEGER));
        assert_eq!(parsed("timeout abc"), Err(NOT_INTEGER));
        for bad in ["timeout 0", "timeout -5", "to h 1 timeout 0"] {
            assert_eq!(
                parsed(bad),
                Err("ERR FAILOVER timeout must be greater than 0"),
                "{bad}"
            );
        }
        // Left to right: the first bad word answers.
        assert_eq!(parsed("bogus timeout 0"), Err(SYNTAX));
    }

    #[test]
    fn start_checks_in_redis_order() {
        let now = Instant::now();
        let one = [replica("127.0.0.1", 7001, 0)];
        let mut f = Failover::default();
        let start = |target, timeout_ms, force| Start {
            target,
            timeout_ms,
            force,
        };
        assert_eq!(
            f.start(start(None, None, false), true, &one, now),
            Err("ERR FAILOVER is not valid when server is a replica.")
        );
        assert_eq!(
            f.start(start(None, None, false), false, &[], now),
            Err("ERR FAILOVER requires connected replicas.")
        );
        assert_eq!(
            f.start(start(to("127.0.0.1", 7001), None, true), false, &one, now),
            Err("ERR FAILOVER with force option requires both a timeout and target HOST and IP.")
        );
        assert_eq!(
            f.start(start(None, Some(10), true), false, &one, now),
            Err("ERR FAILOVER with force option requires both a timeout and target HOST and IP.")
        );
        assert_eq!(
            f.start(start(to("127.0.0.1", 7002), None, false), false, &one, now),
            Err("ERR FAILOVER target HOST and PORT is not a replica.")
        );
        let syncing = [ReplicaView {
            online: false,
            ..replica("127.0.0.1", 7001, 0)
        }];
        assert_eq!(
            f.start(
                start(to("127.0.0.1", 7001), None, false),
                false,
                &syncing,
                now
            ),
            Err("ERR FAILOVER target replica is not online.")
        );
        assert_eq!(f.state(), FailoverState::NoFailover);
        let generation = f
            .start(
                start(to("LOCALHOST", 7001), None, false),
                false,
                &[replica("localhost", 7001, 0)],
                now,
            )
            .unwrap();
        assert_eq!(generation, 1);
        assert_eq!(f.state(), FailoverState::WaitingForSync);
        assert!(f.pauses_writes());
        assert_eq!(
            f.start(start(None, None, false), true, &one, now),
            Err("ERR FAILOVER already in progress."),
            "already running comes before the replica check"
        );
    }

    #[test]
    fn waits_for_the_target_to_acknowledge_everything() {
        let now = Instant::now();
        let mut f = Failover::default();
        let behind = [replica("10.0.0.1", 1, 90), replica("10.0.0.2", 2, 100)];
        f.start(
            Start {
                target: to("10.0.0.1", 1),
                ..Start::default()
            },
            false,
            &behind,
            now,
        )
        .unwrap();
        // Another replica caught up does not count when a target was named.
        assert_eq!(f.poll(now, 100, &behind), Step::SendGetack);
        f.getack_sent(100, 137, now);
        assert_eq!(f.poll(now, 137, &behind), Step::Wait);
        // The target answers the GETACK with the offset before it: caught up.
        let answered = [replica("10.0.0.1", 1, 100)];
        assert_eq!(
            f.poll(now, 137, &answered),
            Step::FailOver {
                target: to("10.0.0.1", 1).unwrap(),
                forced: false
            }
        );
        assert_eq!(f.state(), FailoverState::InProgress);
        // Polling again does nothing: the replica link takes it from here.
        assert_eq!(f.poll(now, 137, &answered), Step::Wait);
        assert_eq!(f.clear(), FailoverState::InProgress);
        assert!(!f.pauses_writes());
    }

    #[test]
    fn an_answer_to_an_older_getack_is_not_enough() {
        let now = Instant::now();
        let mut f = Failover::default();
        let r = [replica("h", 1, 0)];
        f.start(Start::default(), false, &r, now).unwrap();
        assert_eq!(f.poll(now, 100, &r), Step::SendGetack);
        f.getack_sent(100, 137, now);
        // Something was propagated after the GETACK (an expired key's DEL): ask again.
        let old_answer = [replica("h", 1, 100)];
        assert_eq!(f.poll(now, 150, &old_answer), Step::SendGetack);
        f.getack_sent(150, 187, now);
        assert_eq!(f.poll(now, 187, &old_answer), Step::Wait);
        // The periodic GETACK.
        assert_eq!(
            f.poll(now + GETACK_PERIOD, 187, &old_answer),
            Step::SendGetack
        );
        // A full ACK (the replica's periodic one) counts too, as in Redis.
        assert!(matches!(
            f.poll(now, 187, &[replica("h", 1, 187)]),
            Step::FailOver { .. }
        ));
        assert_eq!(f.target(), to("h", 1).as_ref(), "the replica chosen");
    }

    #[test]
    fn a_replica_in_full_sync_is_never_chosen() {
        let now = Instant::now();
        let mut f = Failover::default();
        let syncing = [ReplicaView {
            online: false,
            ..replica("h", 1, 0)
        }];
        f.start(Start::default(), false, &syncing, now).unwrap();
        assert_eq!(f.poll(now, 0, &syncing), Step::SendGetack);
        f.getack_sent(0, 37, now);
        assert_eq!(f.poll(now, 37, &syncing), Step::Wait);
    }

    #[test]
    fn the_timeout_aborts_unless_forced() {
        let now = Instant::now();
        let late = now + Duration::from_millis(50);
        let r = [replica("h", 1, 0)];
        let mut f = Failover::default();
        f.start(
            Start {
                target: to("h", 1),
                timeout_ms: Some(50),
                force: false,
            },
            false,
            &r,
            now,
        )
        .unwrap();
        assert_eq!(f.poll(now, 10, &r), Step::SendGetack);
        assert_eq!(
            f.poll(late, 10, &r),
            Step::Abort("Replica never caught up before timeout")
        );
        assert_eq!(
            f.abort_message("Replica never caught up before timeout"),
            "FAILOVER to h:1 aborted: Replica never caught up before timeout"
        );
        assert_eq!(f.clear(), FailoverState::WaitingForSync);

        f.start(
            Start {
                target: to("h", 1),
                timeout_ms: Some(50),
                force: true,
            },
            false,
            &r,
            now,
        )
        .unwrap();
        assert_eq!(f.generation(), 2);
        assert_eq!(
            f.poll(late, 10, &r),
            Step::FailOver {
                target: to("h", 1).unwrap(),
                forced: true
            }
        );
        assert_eq!(f.state(), FailoverState::InProgress);
        assert_eq!(
            f.abort_message("Failover manually aborted"),
            "FAILOVER to h:1 aborted: Failover manually aborted"
        );
    }
}
