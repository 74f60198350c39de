//! RESP, the Redis serialisation protocol: how commands travel in AOF records, the replication
//! stream and client connections.

mod reply;
mod request;

pub use reply::{Reply, format_double};
pub use request::{
    DEFAULT_MAX_BULK_LEN, INLINE_MAX_SIZE, Limits, ProtocolError, RequestParser, split_args,
};

/// Appends one command as a RESP2 multibulk (`*<argc>\r\n` then `$<len>\r\n<arg>\r\n` per
/// argument), the exact form of AOF records and of the replication stream.
pub fn write_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    out.push(b'*');
    reply::push_int(out, args.len() as i64);
    out.extend_from_slice(b"\r\n");
    for arg in args {
        let arg = arg.as_ref();
        out.push(b'$');
        reply::push_int(out, arg.len() as i64);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multibulk() {
        let mut out = Vec::new();
        write_command(&mut out, &["SET", "k", ""]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }
}
