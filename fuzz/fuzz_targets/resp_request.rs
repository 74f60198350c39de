//! Feeds arbitrary bytes to the RESP request parser, whole and cut into pieces at positions
//! taken from the input. It must never panic or allocate out of proportion, and the commands
//! (or the error) must be the same however the bytes arrive.
#![no_main]

use bytes::{Bytes, BytesMut};
use keeper::resp::{Limits, RequestParser};
use libfuzzer_sys::fuzz_target;

fn parse(chunks: &[&[u8]], limits: Limits) -> (Vec<Vec<Bytes>>, Option<String>) {
    let mut parser = RequestParser::new();
    let mut buf = BytesMut::new();
    let mut commands = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match parser.next_command(&mut buf, limits) {
                Ok(Some(argv)) => commands.push(argv),
                Ok(None) => break,
                Err(e) => return (commands, Some(e.0)),
            }
        }
    }
    (commands, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut_seed, input)) = data.split_first() else {
        return;
    };
    for unauthenticated in [false, true] {
        let limits = Limits { unauthenticated, ..Limits::default() };
        let whole = parse(&[input], limits);
        // Cut into pieces of 1..=16 bytes, sizes chosen by the first byte.
        let step = usize::from(cut_seed % 16) + 1;
        let pieces: Vec<&[u8]> = input.chunks(step).collect();
        let split = parse(&pieces, limits);
        assert_eq!(whole, split, "the parse depends on how the bytes arrived");
    }
});
