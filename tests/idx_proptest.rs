//! Property tests for the IDX reader: random bytes and mutated IDX files, plain and
//! gzipped, give an error or well-formed data, never a panic, and a forged header never
//! makes the reader allocate more than the input can hold. (The fuzz target `idx_reader`
//! in fuzz/ runs the same property longer.)
//! `PROPTEST_CASES=100000 cargo test --release --test idx_proptest` runs more cases.

use autoencoder::data::idx;
use autoencoder::{Error, Result};
use proptest::prelude::*;

mod common;
mod largest;
use common::idx::gzip;
use largest::largest_allocation;

/// The most bytes deflate expands one input byte to.
const MAX_GZIP_RATIO: usize = largest::MAX_GZIP_RATIO as usize;

/// Allocations any read may make whatever its input: buffers, the inflate state, messages.
const FIXED: usize = 1 << 16;

/// A valid unsigned-byte IDX file with the given dimensions.
fn idx_file(dims: &[u32]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    let n: u32 = dims.iter().product();
    bytes.extend((0..n).map(|i| (i * 37 % 256) as u8));
    bytes
}

/// Valid files to mutate: images (3 x 4 x 5) and labels (7), each plain and gzipped.
fn seeds() -> [Vec<u8>; 4] {
    let images = idx_file(&[3, 4, 5]);
    let labels = idx_file(&[7]);
    [images.clone(), labels.clone(), gzip(&images), gzip(&labels)]
}

/// Reads `bytes` as images (both element types) and as labels: each read returns an error
/// or data that fit the input, and allocates no more than the input can hold.
fn read_all(bytes: &[u8]) {
    let bound = bytes.len().saturating_mul(MAX_GZIP_RATIO);
    let (x, largest) = largest_allocation(|| idx::images_from_bytes::<f32>(bytes));
    if let Ok(x) = x {
        assert!(x.len() <= bound);
        assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    // f32 pixels: 4 bytes for each byte the input can hold.
    assert!(largest <= 4 * bound + FIXED, "allocated {largest} bytes");
    let (x, largest) = largest_allocation(|| idx::images_from_bytes::<f64>(bytes));
    if let Ok(x) = x {
        assert!(x.len() <= bound);
        assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    assert!(largest <= 8 * bound + FIXED, "allocated {largest} bytes");
    let (y, largest) = largest_allocation(|| idx::labels_from_bytes(bytes));
    if let Ok(y) = y {
        assert!(y.len() <= bound);
    }
    assert!(largest <= bound + FIXED, "allocated {largest} bytes");
}

/// One edit of a file.
#[derive(Debug, Clone)]
enum Mutation {
    /// XOR the byte at (position modulo length) with a non-zero mask.
    Flip(usize, u8),
    /// Cut the file at (position modulo length).
    Truncate(usize),
    /// Insert bytes at (position modulo length + 1).
    Insert(usize, Vec<u8>),
    /// Overwrite the header's (index modulo 4) 4-byte word (magic, then dimensions, in a
    /// plain file) with a big-endian value.
    Word(usize, u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(p, m)| Mutation::Flip(p, m)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(p, b)| Mutation::Insert(p, b)),
        (
            any::<usize>(),
            prop_oneof![
                Just(0u32),
                Just(1),
                Just(u32::MAX),
                Just(1 << 16),
                Just(0x0000_0803),
                Just(0x0000_0801),
                any::<u32>()
            ]
        )
            .prop_map(|(i, v)| Mutation::Word(i, v)),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len();
    match mutation {
        Mutation::Flip(p, m) if len > 0 => bytes[p % len] ^= m,
        Mutation::Truncate(p) if len > 0 => bytes.truncate(p % len),
        Mutation::Insert(p, b) => {
            let at = p % (len + 1);
            bytes.splice(at..at, b.iter().copied());
        }
        Mutation::Word(i, v) => {
            let at = 4 * (i % 4);
            if at + 4 <= len {
                bytes[at..at + 4].copy_from_slice(&v.to_be_bytes());
            }
        }
        _ => {}
    }
}

/// 256 cases per property, or `PROPTEST_CASES` if set.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        read_all(&bytes);
        read_all(&gzip(&bytes));
    }

    #[test]
    fn mutated_files_never_panic(
        which in 0usize..4,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = seeds()[which].clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        read_all(&bytes);
    }

    /// Mutate the plain file, then gzip it: forged headers behind a valid gzip layer.
    #[test]
    fn gzipped_mutated_files_never_panic(
        which in 0usize..2,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = seeds()[which].clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        read_all(&gzip(&bytes));
    }
}

#[test]
fn unmutated_seeds_read() -> Result<()> {
    let [images, labels, images_gz, labels_gz] = seeds();
    for bytes in [&images, &images_gz] {
        let x = idx::images_from_bytes::<f64>(bytes)?;
        assert_eq!(x.dim(), (3, 20));
        assert_eq!(x[[0, 1]], 37.0 / 255.0);
    }
    for bytes in [&labels, &labels_gz] {
        assert_eq!(idx::labels_from_bytes(bytes)?.to_vec(), &labels[8..]);
    }
    Ok(())
}

/// The path readers and the byte readers are one parser: same data, same errors.
#[test]
fn paths_read_as_bytes() -> Result<()> {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("idx-proptest");
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (i, bytes) in seeds().iter().enumerate() {
        let path = dir.join(format!("seed-{i}"));
        std::fs::write(&path, bytes).expect("write temp file");
        if i % 2 == 0 {
            assert_eq!(
                idx::read_images::<f32>(&path)?,
                idx::images_from_bytes::<f32>(bytes)?
            );
        } else {
            assert_eq!(idx::read_labels(&path)?, idx::labels_from_bytes(bytes)?);
        }
        let cut = &bytes[..bytes.len() - 1];
        std::fs::write(&path, cut).expect("write temp file");
        let (Err(Error::Format { reason: a, .. }), Err(Error::Format { reason: b, .. })) =
            (idx::read_labels(&path), idx::labels_from_bytes(cut))
        else {
            panic!("a truncated file is a format error");
        };
        assert_eq!(a, b);
    }
    Ok(())
}

/// A forged header claiming 4 billion images of 64k x 64k pixels, plain or gzipped:
/// a format error, and no allocation beyond the fixed buffers.
#[test]
fn forged_header_allocates_nothing_big() -> Result<()> {
    let mut plain = idx_file(&[1, 2, 2]);
    for d in 0..3 {
        let at = 4 + 4 * d;
        plain[at..at + 4].copy_from_slice(&[0xff, 0xff, 0xff, 0xff][..]);
    }
    let mut small_dims = idx_file(&[1, 2, 2]);
    small_dims[4..8].copy_from_slice(&(1u32 << 30).to_be_bytes());
    for bytes in [
        plain.clone(),
        gzip(&plain),
        small_dims.clone(),
        gzip(&small_dims),
    ] {
        let (result, largest) = largest_allocation(|| idx::images_from_bytes::<f32>(&bytes));
        assert!(
            matches!(result, Err(Error::Format { .. })),
            "{result:?} for {bytes:?}"
        );
        assert!(largest <= FIXED, "allocated {largest} bytes");
    }
    // The measure sees real allocations: a valid 64 x 64 x 64 file fills 4 * 64^3 bytes.
    let valid = idx_file(&[64, 64, 64]);
    let (result, largest) = largest_allocation(|| idx::images_from_bytes::<f32>(&valid));
    assert_eq!(result?.dim(), (64, 4096));
    assert!(largest >= 4 * 64 * 64 * 64, "allocated {largest} bytes");
    Ok(())
}

/// Regression (found by the `idx_reader` fuzz target): zero images of 65535 x 65535^2
/// pixels is an empty data block, but the shape overflows what an array may hold; it
/// used to panic in `from_shape_vec`. Now a format error.
#[test]
fn zero_images_too_large_to_shape_is_an_error() -> Result<()> {
    let mut bytes = idx_file(&[0, 1, 1]);
    bytes[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    bytes[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
    for bytes in [bytes.clone(), gzip(&bytes)] {
        let err = idx::images_from_bytes::<f32>(&bytes).expect_err("a shape too large");
        assert!(err.to_string().contains("do not fit in memory"), "{err}");
        assert!(matches!(
            idx::images_from_bytes::<f64>(&bytes),
            Err(Error::Format { .. })
        ));
    }
    // Zero images of a sane size are still an empty set.
    assert_eq!(
        idx::images_from_bytes::<f32>(&idx_file(&[0, 28, 28]))?.dim(),
        (0, 784)
    );
    Ok(())
}
