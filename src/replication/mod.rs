//! Redis's replication protocol (PSYNC2, `shared/redis-formats.md` §3).
//!
//! For now this holds [`sync`]: a point-in-time RDB fetched from a live node (real Redis or
//! `keeper server`) the way `redis-cli --rdb` fetches it, and the primary's side of that
//! transfer in `keeper server` (`REPLCONF rdb-only 1` clients only). Backups taken with
//! `keeper backup create --from HOST:PORT` ride on it.
//!
//! Issue 7 builds the full PSYNC2 primary and replica on these pieces: replication ids and
//! the backlog, partial resyncs, the command stream after the RDB, ACKs and `WAIT`, and
//! real replicas (which `keeper server` refuses until then).

pub mod backlog;
pub mod primary;
pub mod sync;
