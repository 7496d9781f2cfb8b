//! The IDX reader allocates as the data arrive, never from a header's claim alone: a file
//! whose header claims far more than it holds is a format error, found quickly and with
//! little memory. (The memory limit on files that truly expand that far, gzip bombs, is in
//! tests/idx_budget.rs, a binary of its own because it changes the process-wide limit.)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use autoencoder::data::idx::{images_from_bytes, labels_from_bytes, read_images, read_labels};
use autoencoder::{Error, Result};
use flate2::{Compression, GzBuilder};

mod common;
mod largest;
use common::idx::idx;
use largest::{largest_allocation, MAX_GZIP_RATIO};

/// MNIST's training images: 60,000 of 28 x 28 bytes.
const MNIST: [u32; 3] = [60_000, 28, 28];
const MNIST_BYTES: u64 = 60_000 * 28 * 28;

/// `bytes` gzipped, with a gzip comment of `padding` bytes (flate2 reads up to 65,535): the
/// file is then large enough that deflate's maximum ratio cannot rule out a big claim from
/// the file's size alone, as with a real corrupt file of a few megabytes.
fn gzip_padded(bytes: &[u8], padding: usize) -> Vec<u8> {
    let mut enc = GzBuilder::new()
        .comment(vec![b'c'; padding])
        .write(Vec::new(), Compression::default());
    enc.write_all(bytes).expect("gzip in memory");
    enc.finish().expect("gzip in memory")
}

/// Writes `bytes` to a fresh file named `name` under the test's temporary folder.
fn file(name: &str, bytes: &[u8]) -> PathBuf {
    common::idx::file("idx_limits", name, bytes)
}

/// Asserts `result` is a format error on `path` whose reason contains each of `needles`.
fn assert_format<T: std::fmt::Debug>(result: Result<T>, path: &Path, needles: &[&str]) {
    match result {
        Err(Error::Format { path: p, reason }) => {
            assert_eq!(p, path);
            for needle in needles {
                assert!(reason.contains(needle), "`{reason}` lacks `{needle}`");
            }
        }
        other => panic!("expected Error::Format, got {other:?}"),
    }
}

/// A 60 KB gzip file whose header claims MNIST's 47 MB of images but which holds 10 bytes.
/// The reader used to reserve the 47 MB the header claims before reading anything (and a
/// 4 MB file could make it reserve 4 GB); now the buffer grows with the data, so the error
/// comes after one 64 KiB step.
#[test]
fn a_claim_of_mnist_with_ten_bytes_is_refused_with_little_memory() -> Result<()> {
    let gz = gzip_padded(&idx(&MNIST, &[7; 10]), 60_000);
    assert!(
        gz.len() as u64 * MAX_GZIP_RATIO > MNIST_BYTES,
        "the file size allows the claim"
    );
    let path = file("claims_mnist.idx.gz", &gz);
    let start = Instant::now();
    let (result, largest) = largest_allocation(|| read_images::<f32>(&path));
    assert_format(
        result,
        &path,
        &["truncated", "47040000 bytes", "only 10 follow"],
    );
    assert!(largest < 1 << 20, "allocated {largest} bytes");
    let (result, largest) = largest_allocation(|| images_from_bytes::<f64>(&gz));
    assert_format(result, Path::new("<bytes>"), &["only 10 follow"]);
    assert!(largest < 1 << 20, "allocated {largest} bytes");
    // The same claim as one label vector.
    let labels = gzip_padded(&idx(&[47_040_000], &[7; 10]), 60_000);
    let path = file("claims_labels.idx.gz", &labels);
    let (result, largest) = largest_allocation(|| read_labels(&path));
    assert_format(result, &path, &["only 10 follow"]);
    assert!(largest < 1 << 20, "allocated {largest} bytes");
    let (result, largest) = largest_allocation(|| labels_from_bytes(&labels));
    assert!(matches!(result, Err(Error::Format { .. })), "{result:?}");
    assert!(largest < 1 << 20, "allocated {largest} bytes");
    // Generous: the reads above take milliseconds.
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    Ok(())
}

/// A file that claims 47 MB and ends after 3 MB: memory follows the 3 MB that arrived
/// (at most twice that, plus the first step), not the claim.
#[test]
fn memory_follows_the_data_that_arrive() -> Result<()> {
    let held = 3_000_000;
    let gz = gzip_padded(&idx(&MNIST, &vec![9; held]), 60_000);
    assert!(
        gz.len() as u64 * MAX_GZIP_RATIO > MNIST_BYTES,
        "the file size allows the claim"
    );
    let (result, largest) = largest_allocation(|| images_from_bytes::<f32>(&gz));
    assert_format(result, Path::new("<bytes>"), &["only 3000000 follow"]);
    assert!(largest <= 2 * held + (1 << 16), "allocated {largest} bytes");
    // A complete file of the same size reads, into buffers of exactly its size: 3 MB of
    // bytes, then 12 MB of f32 pixels.
    let full = gzip_padded(&idx(&[3_000, 1_000, 1], &vec![255; held]), 0);
    let (x, largest) = largest_allocation(|| images_from_bytes::<f32>(&full));
    let x = x?;
    assert_eq!(x.dim(), (3_000, 1_000));
    assert!(x.iter().all(|&v| v == 1.0));
    assert!(largest <= 4 * held + (1 << 16), "allocated {largest} bytes");
    Ok(())
}
