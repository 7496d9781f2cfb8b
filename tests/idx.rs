//! The IDX reader on hand-made files: what it reads, and every way a file can be wrong.

use std::path::PathBuf;

use autoencoder::data::idx::{read_images, read_labels};
use autoencoder::{Error, Result};

mod common;
use common::idx::{gzip, idx};

/// Writes `bytes` to a fresh file named `name` under the test's temporary folder.
fn file(name: &str, bytes: &[u8]) -> PathBuf {
    common::idx::file("idx_tests", name, bytes)
}

/// Two 2 x 3 images: pixel values 0, 51, ..., 255 and back.
fn two_images() -> Vec<u8> {
    idx(
        &[2, 2, 3],
        &[0, 51, 102, 153, 204, 255, 255, 204, 153, 102, 51, 0],
    )
}

/// Asserts `result` is a format error on `path` whose reason contains `needle`.
fn assert_format<T: std::fmt::Debug>(result: Result<T>, path: &PathBuf, needle: &str) {
    match result {
        Err(Error::Format { path: p, reason }) => {
            assert_eq!(&p, path);
            assert!(
                reason.contains(needle),
                "reason `{reason}` should contain `{needle}`"
            );
        }
        other => panic!("expected Error::Format containing `{needle}`, got {other:?}"),
    }
}

#[test]
fn reads_plain_and_gzipped_images_scaled_to_unit_interval() -> Result<()> {
    for (name, bytes) in [
        ("img.idx", two_images()),
        ("img.idx.gz", gzip(&two_images())),
    ] {
        let x = read_images::<f32>(file(name, &bytes))?;
        assert_eq!(x.dim(), (2, 6));
        assert_eq!(x[[0, 0]], 0.0);
        assert_eq!(x[[0, 1]], 0.2);
        assert_eq!(x[[0, 5]], 1.0);
        assert_eq!(x[[1, 0]], 1.0);
        assert_eq!(x[[1, 5]], 0.0);
    }
    let x = read_images::<f64>(file("img64.idx", &two_images()))?;
    assert_eq!(x[[0, 3]], 153.0 / 255.0);
    Ok(())
}

#[test]
fn reads_plain_and_gzipped_labels() -> Result<()> {
    let bytes = idx(&[4], &[5, 0, 4, 1]);
    for (name, bytes) in [("lab.idx", bytes.clone()), ("lab.idx.gz", gzip(&bytes))] {
        let y = read_labels(file(name, &bytes))?;
        assert_eq!(y.to_vec(), vec![5, 0, 4, 1]);
    }
    Ok(())
}

#[test]
fn wrong_magic_is_a_format_error() {
    let mut bytes = two_images();
    bytes[0] = 0x50; // e.g. a PNG or text file
    let path = file("magic.idx", &bytes);
    assert_format(read_images::<f32>(&path), &path, "wrong magic number");
}

#[test]
fn unsupported_element_type_is_a_format_error() {
    let mut bytes = two_images();
    bytes[2] = 0x0D; // f32 data
    let path = file("type.idx", &bytes);
    assert_format(read_images::<f32>(&path), &path, "element type 0x0d");
}

#[test]
fn wrong_number_of_dimensions_is_a_format_error() {
    let labels = file("labels_as_images.idx", &idx(&[3], &[1, 2, 3]));
    assert_format(read_images::<f32>(&labels), &labels, "expected 3");
    let images = file("images_as_labels.idx", &two_images());
    assert_format(read_labels(&images), &images, "expected 1");
}

#[test]
fn empty_images_are_a_format_error() {
    let path = file("zero_cols.idx", &idx(&[2, 28, 0], &[]));
    assert_format(read_images::<f32>(&path), &path, "empty");
}

#[test]
fn truncated_files_are_format_errors() {
    let full = two_images();
    let cases: [(&str, &[u8], &str); 4] = [
        ("empty.idx", &[], "too short"),
        ("short_magic.idx", &full[..3], "too short"),
        ("short_dims.idx", &full[..9], "truncated"),
        ("short_data.idx", &full[..full.len() - 1], "truncated"),
    ];
    for (name, bytes, needle) in cases {
        let path = file(name, bytes);
        assert_format(read_images::<f32>(&path), &path, needle);
    }
}

#[test]
fn trailing_data_is_a_format_error() {
    let mut bytes = two_images();
    bytes.push(7);
    let path = file("long.idx", &bytes);
    assert_format(read_images::<f32>(&path), &path, "continue past");
    let path = file("long.idx.gz", &gzip(&bytes));
    assert_format(read_images::<f32>(&path), &path, "continue past");
}

#[test]
fn overflowing_dimensions_are_a_format_error() {
    let path = file(
        "overflow.idx",
        &idx(&[u32::MAX, u32::MAX, u32::MAX], &[0; 16]),
    );
    assert_format(read_images::<f32>(&path), &path, "overflow");
}

#[test]
fn a_header_promising_more_than_the_file_holds_allocates_nothing() {
    // 4 billion images claimed, 12 bytes present: rejected from the header and file size.
    let path = file("huge.idx", &idx(&[4_000_000_000, 28, 28], &[0; 12]));
    assert_format(read_images::<f32>(&path), &path, "holds at most");
    // Through gzip, the bound is deflate's maximum ratio (1032:1) times the file size.
    let path = file(
        "huge.idx.gz",
        &gzip(&idx(&[4_000_000_000, 28, 28], &[0; 12])),
    );
    assert_format(read_images::<f32>(&path), &path, "holds at most");
}

#[test]
fn corrupt_or_truncated_gzip_is_a_format_error() {
    let gz = gzip(&two_images());
    let path = file("cut.idx.gz", &gz[..gz.len() / 2]);
    assert_format(read_images::<f32>(&path), &path, "gzip");
    let mut bad = gz.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff; // the deflate stream or the CRC no longer matches
    let path = file("flipped.idx.gz", &bad);
    assert!(matches!(
        read_images::<f32>(&path),
        Err(Error::Format { .. })
    ));
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no_such_file.idx");
    match read_labels(&path) {
        Err(e @ Error::Io { .. }) => assert!(e.to_string().contains("no_such_file.idx")),
        other => panic!("expected Error::Io, got {other:?}"),
    }
}
