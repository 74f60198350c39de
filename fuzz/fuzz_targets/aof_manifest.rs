//! Feeds arbitrary bytes to the AOF manifest parser: a manifest or a clear error, never a
//! panic; whatever parses writes back to bytes that parse to the same manifest.
#![no_main]

use std::path::Path;

use keeper::aof::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::parse(data, Path::new("fuzz.manifest")) {
        let bytes = m.to_bytes();
        if let Ok(again) = Manifest::parse(&bytes, Path::new("fuzz.manifest")) {
            assert_eq!(again, m);
        }
    }
});
