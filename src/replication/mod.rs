//! Redis's replication protocol (PSYNC2, `shared/redis-formats.md` §3).
//!
//! - [`sync`]: a point-in-time RDB fetched from a live node (real Redis or `keeper server`) the
//!   way `redis-cli --rdb` fetches it, and the sending side of a full sync's RDB. Backups
//!   taken with `keeper backup create --from HOST:PORT` ride on it.
//! - [`backlog`]: the last `repl-backlog-size` bytes of the stream, for partial resyncs.
//! - [`primary`]: the replica registry, the sink that feeds the backlog and every replica,
//!   the PSYNC decision, output-buffer limits, ACKs for `WAIT`, and the stream to a replica.
//! - [`failover`]: a planned failover's primary side (`FAILOVER`), as a state machine.
//! - [`replica`]: the replica's side: the link to a primary (real Redis or keeper) that keeps
//!   this node's keyspace, offsets and AOF following the primary's stream.

pub mod backlog;
pub mod failover;
pub mod primary;
pub mod replica;
pub mod sync;
