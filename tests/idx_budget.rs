//! The memory limit bounds what an IDX file can make the reader allocate: a gzip bomb (a
//! small file that truly expands to hundreds of megabytes) is refused after its header,
//! before its data are decompressed, with an error naming the file.
//!
//! This binary holds a single test because it lowers the process-wide limit, and the tests
//! of one binary run as threads of one process: nothing else runs beside it. The limit is
//! restored to the default when the test ends, failed or not.

use std::io::Write;
use std::path::{Path, PathBuf};

use autoencoder::data::idx::{images_from_bytes, read_images, read_labels};
use autoencoder::{memory_limit, set_memory_limit, Error, Result, DEFAULT_MEMORY_LIMIT};
use flate2::write::GzEncoder;
use flate2::Compression;

mod common;
mod largest;
use largest::{largest_allocation, MAX_GZIP_RATIO};

/// Puts the default limit back when dropped, so a failing assertion cannot leave it low.
struct RestoreLimit;

impl Drop for RestoreLimit {
    fn drop(&mut self) {
        let _ = set_memory_limit(DEFAULT_MEMORY_LIMIT);
    }
}

/// A gzipped unsigned-byte IDX file for `dims` whose data are all `byte`, compressed a
/// megabyte at a time (the plain file is never held in memory).
fn gzip_idx(dims: &[u32], byte: u8) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    let mut header = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        header.extend_from_slice(&d.to_be_bytes());
    }
    enc.write_all(&header).expect("gzip in memory");
    let mut left: u64 = dims.iter().map(|&d| u64::from(d)).product();
    let block = vec![byte; 1 << 20];
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        enc.write_all(&block[..n]).expect("gzip in memory");
        left -= n as u64;
    }
    enc.finish().expect("gzip in memory")
}

/// Writes `bytes` to a fresh file named `name` under the test's temporary folder.
fn file(name: &str, bytes: &[u8]) -> PathBuf {
    common::idx::file("idx_budget", name, bytes)
}

/// Asserts `result` is `FileTooLarge` on `path` for `what` of `bytes` bytes under `limit`.
fn assert_too_large<T: std::fmt::Debug>(
    result: Result<T>,
    path: &Path,
    what: &str,
    bytes: u128,
    limit: u64,
) {
    match result {
        Err(
            e @ Error::FileTooLarge {
                what: w,
                bytes: b,
                limit: l,
                ..
            },
        ) => {
            assert_eq!((w, b, l), (what, Some(bytes), limit), "{e}");
            let Error::FileTooLarge { path: p, .. } = &e else {
                unreachable!()
            };
            assert_eq!(p, path);
            let message = e.to_string();
            assert!(
                message.contains(&path.display().to_string())
                    && message.contains("set_memory_limit"),
                "{message}"
            );
        }
        other => panic!("expected FileTooLarge for {what}, got {other:?}"),
    }
}

#[test]
fn the_memory_limit_bounds_what_a_file_may_claim() -> Result<()> {
    let _restore = RestoreLimit;
    let mib = 1u64 << 20;

    // A gzip bomb: 250,000 blank images of 28 x 28 (196 MB, 784 MB as f32) in a file of
    // about 200 KB, within what deflate's ratio allows, so only the limit stops it. The
    // reader used to decompress all of it and return the array.
    let claim: u64 = 250_000 * 28 * 28;
    let bomb = gzip_idx(&[250_000, 28, 28], 0);
    assert!(bomb.len() < 300_000, "{} bytes", bomb.len());
    assert!(bomb.len() as u64 * MAX_GZIP_RATIO >= claim);
    let path = file("bomb.idx.gz", &bomb);
    set_memory_limit(64 * mib)?;
    let (result, largest) = largest_allocation(|| read_images::<f32>(&path));
    assert_too_large(result, &path, "raw data", claim.into(), 64 * mib);
    assert!(largest < 1 << 20, "allocated {largest} bytes");
    let labels = gzip_idx(&[200_000_000], 0);
    let path = file("bomb_labels.idx.gz", &labels);
    let (result, largest) = largest_allocation(|| read_labels(&path));
    assert_too_large(result, &path, "raw data", 200_000_000, 64 * mib);
    assert!(largest < 1 << 20, "allocated {largest} bytes");

    // The array the bytes become counts too: 2,000 images are 1.6 MB of bytes, 6.3 MB of
    // f32 and 12.5 MB of f64 pixels; under an 8 MiB limit f32 reads and f64 is refused.
    let small = gzip_idx(&[2_000, 28, 28], 255);
    set_memory_limit(8 * mib)?;
    assert_eq!(images_from_bytes::<f32>(&small)?.dim(), (2_000, 784));
    let (result, largest) = largest_allocation(|| images_from_bytes::<f64>(&small));
    assert_too_large(
        result,
        Path::new("<bytes>"),
        "f64 pixels",
        2_000 * 784 * 8,
        8 * mib,
    );
    assert!(largest < 1 << 20, "allocated {largest} bytes");
    // Raised, the limit lets the same file through.
    set_memory_limit(16 * mib)?;
    let x = images_from_bytes::<f64>(&small)?;
    assert_eq!(x.dim(), (2_000, 784));
    assert!(x.iter().all(|&v| v == 1.0));

    set_memory_limit(DEFAULT_MEMORY_LIMIT)?;
    assert_eq!(memory_limit(), DEFAULT_MEMORY_LIMIT);
    Ok(())
}
