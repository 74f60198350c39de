//! The append-only file. For now: the commands that recreate a dataset, which are both the
//! RESP base of an AOF rewrite (`aof-use-rdb-preamble no`) and `keeper inspect --format resp`.

pub mod rewrite;
pub mod writer;
