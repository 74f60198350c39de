//! Feeds arbitrary bytes to the RDB reader through both sources. It must return events or a
//! clear error, never panic, hang or allocate out of proportion to the input.
#![no_main]

use keeper::rdb::Reader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut reader) = Reader::from_slice(data) {
        while let Ok(Some(_)) = reader.next_event() {}
    }
    if let Ok(mut reader) = Reader::from_reader(data) {
        while let Ok(Some(_)) = reader.next_event() {}
    }
});
