//! Feeds arbitrary bytes to the IDX reader (plain or gzipped, as images and as labels):
//! each call must return data or an error, never panic, and what it returns must match
//! the input (pixels in `[0, 1]`, no more data than the input can hold).
#![no_main]

use autoencoder::data::idx;
use libfuzzer_sys::fuzz_target;

/// The most bytes deflate expands one input byte to; a plain file holds at most its length.
const MAX_GZIP_RATIO: usize = 1032;

fuzz_target!(|data: &[u8]| {
    let bound = data.len().saturating_mul(MAX_GZIP_RATIO);
    if let Ok(x) = idx::images_from_bytes::<f32>(data) {
        assert!(x.len() <= bound);
        assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    if let Ok(x) = idx::images_from_bytes::<f64>(data) {
        assert!(x.len() <= bound);
    }
    if let Ok(y) = idx::labels_from_bytes(data) {
        assert!(y.len() <= bound);
    }
});
