//! The libz-ng-sys shim (proxy/zlib-shim) must behave like zlib: Pingora's
//! compression module links flate2 against it.

use std::io::{Read, Write};

#[test]
fn gzip_round_trips_through_the_zlib_shim() {
    let data = b"portcullis portcullis portcullis ".repeat(1000);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&data).unwrap();
    let compressed = encoder.finish().unwrap();
    assert!(compressed.len() < data.len() / 10);
    let mut decoder = flate2::read::GzDecoder::new(&compressed[..]);
    let mut out = Vec::new();
    decoder.read_to_end(&mut out).unwrap();
    assert_eq!(out, data);
}
