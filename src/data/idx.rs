//! Reader for the IDX format (plain or gzipped): MNIST's, and any other set of images and
//! labels in it (Fashion-MNIST, EMNIST, KMNIST, your own), whatever the files are called.
//!
//! An IDX file is a big-endian header, then the raw data:
//!
//! | bytes | content |
//! | --- | --- |
//! | 0-1 | `0x00 0x00` |
//! | 2 | element type; only `0x08` (unsigned byte) is read here |
//! | 3 | number of dimensions `ndim` |
//! | 4 .. 4 + 4 ndim | each dimension, `u32` big-endian |
//! | then | the product of the dimensions, in bytes, row-major |
//!
//! Images are `idx3` (`n, rows, cols`) and labels `idx1` (`n`); [`read_set`] reads a pair
//! and checks that they belong together. A file starting with
//! the gzip magic `1f 8b` is decompressed on the fly.
//!
//! A header's claim alone never allocates anything. After the header, the claimed size must
//! fit the file (for gzip, the deflate format's maximum ratio of 1032:1 bounds what a file
//! of that size can hold) and the memory limit ([`crate::memory_limit`]), both as raw bytes
//! and as the array they become; then the buffer grows with the data that actually arrive
//! (doubling from 64 KiB, never past the claim), so a file that ends early costs memory in
//! proportion to what it holds. The data must end exactly where the header says. The memory
//! limit is what bounds a gzip bomb: a small file that truly expands to gigabytes is
//! refused before its data are read unless the caller raised the limit.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use ndarray::{Array1, Array2};

use crate::budget::check_buffer;
use crate::fs::read_full;
use crate::{Error, Float, Result};

/// The most bytes deflate can expand one input byte to (a 258-byte match per 2 bits).
const MAX_GZIP_RATIO: u64 = 1032;
/// The first step of the data buffer's growth; each next step doubles what has arrived.
const FIRST_CHUNK: usize = 1 << 16;
/// The element-type byte for unsigned bytes, the type image sets use.
const TYPE_U8: u8 = 0x08;
/// The path errors name for data read from memory.
const BYTES: &str = "<bytes>";

/// Reads an IDX image file (`idx3`, `n` images of `rows x cols` bytes) as an
/// `(n, rows * cols)` array of pixels scaled to `[0, 1]` (`byte / 255`), one image per row,
/// row-major inside the image. Plain or gzipped files. [`images_from_bytes`] reads the same
/// from memory.
///
/// # Errors
/// [`Error::Io`] if the file cannot be opened or read; [`Error::Format`] if it is not an
/// unsigned-byte IDX file with 3 dimensions, a row or column count is 0, the dimensions
/// overflow, the file is shorter or longer than the header says, or the gzip data are
/// corrupt; [`Error::FileTooLarge`] if the header claims more bytes, or more `T` pixels, than
/// [`crate::memory_limit`] allows (checked before the data are read). Each message names the
/// file and what to do.
///
/// ```no_run
/// use autoencoder::data::idx;
/// # fn main() -> autoencoder::Result<()> {
/// let x = idx::read_images::<f32>("data/mnist/t10k-images-idx3-ubyte.gz")?;
/// assert_eq!(x.dim(), (10_000, 784));
/// # Ok(()) }
/// ```
pub fn read_images<T: Float>(path: impl AsRef<Path>) -> Result<Array2<T>> {
    let path = path.as_ref();
    let (file, file_len) = open(path)?;
    images(file, file_len, path)
}

/// As [`read_images`], from the bytes of a file in memory, plain or gzipped (errors name
/// the path `<bytes>`).
///
/// # Errors
/// As [`read_images`].
///
/// ```
/// use autoencoder::data::idx;
/// # fn main() -> autoencoder::Result<()> {
/// // Two images of 1 x 2 pixels.
/// let file = [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 255, 51, 102];
/// let x = idx::images_from_bytes::<f64>(&file)?;
/// assert_eq!(x.dim(), (2, 2));
/// assert_eq!(x[[0, 1]], 1.0);
/// assert!(idx::images_from_bytes::<f64>(&file[..19]).is_err()); // truncated
/// # Ok(()) }
/// ```
pub fn images_from_bytes<T: Float>(bytes: &[u8]) -> Result<Array2<T>> {
    images(bytes, bytes.len() as u64, Path::new(BYTES))
}

/// Reads an image file from `source` (of `source_len` bytes); `path` names it in errors.
fn images<T: Float>(source: impl Read, source_len: u64, path: &Path) -> Result<Array2<T>> {
    let what = Claim {
        name: "images (idx3)",
        array: if T::NAME == "f32" {
            "f32 pixels"
        } else {
            "f64 pixels"
        },
        element_bytes: std::mem::size_of::<T>(),
    };
    let (dims, bytes) = read_u8(source, source_len, path, 3, what)?;
    let (n, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows == 0 || cols == 0 {
        return Err(format_error(
            path,
            format!("images of {rows} x {cols} pixels are empty; the file is not an image set"),
        ));
    }
    // With no images the data are empty whatever the image size, so the header check
    // passes; an array shape must still fit in memory (ndarray refuses it otherwise).
    let too_big = || {
        format_error(
            path,
            format!("images of {rows} x {cols} pixels do not fit in memory; the header is corrupt"),
        )
    };
    let pixels_per_image = rows
        .checked_mul(cols)
        .filter(|p| {
            p.checked_mul(std::mem::size_of::<T>())
                .is_some_and(|b| b <= isize::MAX as usize)
        })
        .ok_or_else(too_big)?;
    let table: Vec<T> = (0..=255u8).map(|b| T::cast(f64::from(b) / 255.0)).collect();
    let pixels = bytes.into_iter().map(|b| table[usize::from(b)]).collect();
    Array2::from_shape_vec((n, pixels_per_image), pixels).map_err(|_| too_big())
}

/// Reads an IDX set: the images of [`read_images`] and the labels of [`read_labels`],
/// checked to be as many, for any pair of files (MNIST's own, Fashion-MNIST, EMNIST, or
/// yours, whatever their names). Errors name the files given.
///
/// ```no_run
/// use autoencoder::data::idx;
/// # fn main() -> autoencoder::Result<()> {
/// let (x, y) = idx::read_set::<f32>(
///     "fashion/t10k-images-idx3-ubyte.gz",
///     "fashion/t10k-labels-idx1-ubyte.gz",
/// )?;
/// assert_eq!(x.nrows(), y.len());
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`read_images`] and [`read_labels`]; [`Error::Format`] naming both files if the
/// label count differs from the image count.
pub fn read_set<T: Float>(
    images: impl AsRef<Path>,
    labels: impl AsRef<Path>,
) -> Result<(Array2<T>, Array1<u8>)> {
    let (images, labels) = (images.as_ref(), labels.as_ref());
    let x = read_images::<T>(images)?;
    let y = read_labels(labels)?;
    if x.nrows() != y.len() {
        return Err(format_error(
            labels,
            format!(
                "{} labels for the {} images of {}: the files do not belong together",
                y.len(),
                x.nrows(),
                images.display()
            ),
        ));
    }
    Ok((x, y))
}

/// Reads an IDX label file (`idx1`, `n` unsigned bytes) as an `(n)` array. Plain or
/// gzipped files.
///
/// # Errors
/// As [`read_images`], for a 1-dimensional file.
///
/// ```no_run
/// use autoencoder::data::idx;
/// # fn main() -> autoencoder::Result<()> {
/// let y = idx::read_labels("data/mnist/t10k-labels-idx1-ubyte.gz")?;
/// assert_eq!(&y.as_slice().unwrap()[..3], &[7, 2, 1]);
/// # Ok(()) }
/// ```
pub fn read_labels(path: impl AsRef<Path>) -> Result<Array1<u8>> {
    let path = path.as_ref();
    let (file, file_len) = open(path)?;
    labels(file, file_len, path)
}

/// As [`read_labels`], from the bytes of a file in memory, plain or gzipped (errors name
/// the path `<bytes>`).
///
/// # Errors
/// As [`read_labels`].
///
/// ```
/// use autoencoder::data::idx;
/// # fn main() -> autoencoder::Result<()> {
/// let file = [0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1];
/// assert_eq!(idx::labels_from_bytes(&file)?.to_vec(), vec![7, 2, 1]);
/// assert!(idx::labels_from_bytes(&file[..10]).is_err()); // truncated
/// # Ok(()) }
/// ```
pub fn labels_from_bytes(bytes: &[u8]) -> Result<Array1<u8>> {
    labels(bytes, bytes.len() as u64, Path::new(BYTES))
}

/// Reads a label file from `source` (of `source_len` bytes); `path` names it in errors.
fn labels(source: impl Read, source_len: u64, path: &Path) -> Result<Array1<u8>> {
    let what = Claim {
        name: "labels (idx1)",
        array: "labels",
        element_bytes: 1,
    };
    let (_, bytes) = read_u8(source, source_len, path, 1, what)?;
    Ok(Array1::from(bytes))
}

/// Opens a file for [`read_u8`]: a buffered reader and the file's length.
fn open(path: &Path) -> Result<(BufReader<File>, u64)> {
    let io = |action| {
        move |source| Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let file = File::open(path).map_err(io("cannot open"))?;
    let file_len = file.metadata().map_err(io("cannot read"))?.len();
    Ok((BufReader::new(file), file_len))
}

/// What a caller of [`read_u8`] reads, for messages and the memory limit.
struct Claim {
    /// The kind of file, e.g. `"images (idx3)"`.
    name: &'static str,
    /// The array the bytes become, e.g. `"f32 pixels"`.
    array: &'static str,
    /// Bytes per element of that array.
    element_bytes: usize,
}

/// Reads an unsigned-byte IDX file with `ndim` dimensions from `file`, which holds
/// `file_len` bytes: its dimensions and its data. `path` names the file in errors.
fn read_u8(
    mut file: impl Read,
    file_len: u64,
    path: &Path,
    ndim: usize,
    claim: Claim,
) -> Result<(Vec<usize>, Vec<u8>)> {
    let what = claim.name;
    let mut magic = [0u8; 2];
    let got = read_full(&mut file, &mut magic).map_err(|e| read_error(path, false, e))?;
    let gzipped = got == 2 && magic == [0x1f, 0x8b];
    // Chain the two bytes back in front of the rest, through the decoder if gzipped.
    let rest = std::io::Cursor::new(magic[..got].to_vec()).chain(file);
    let mut reader: Box<dyn Read> = if gzipped {
        Box::new(MultiGzDecoder::new(rest))
    } else {
        Box::new(rest)
    };
    let read_err = |e: std::io::Error| read_error(path, gzipped, e);

    let mut header = [0u8; 4];
    let got = read_full(&mut reader, &mut header).map_err(read_err)?;
    if got < 4 {
        return Err(format_error(
            path,
            format!("only {got} bytes: too short for an IDX header (4 bytes of magic number); the file is truncated or empty: get a fresh copy"),
        ));
    }
    if header[0] != 0 || header[1] != 0 {
        return Err(format_error(
            path,
            format!(
                "wrong magic number {:02x} {:02x} {:02x} {:02x}: an IDX file starts with 00 00; \
                 this is not an IDX file (expected IDX {what})",
                header[0], header[1], header[2], header[3]
            ),
        ));
    }
    if header[2] != TYPE_U8 {
        return Err(format_error(
            path,
            format!(
                "element type 0x{:02x} is not supported: expected 0x08 (unsigned byte) for {what}",
                header[2]
            ),
        ));
    }
    if usize::from(header[3]) != ndim {
        return Err(format_error(
            path,
            format!(
                "{} dimensions (magic number 0x{:08x}), expected {ndim} for {what}; \
                 is this an image file given as labels or the reverse?",
                header[3],
                u32::from_be_bytes(header)
            ),
        ));
    }
    let mut raw = vec![0u8; 4 * ndim];
    let got = read_full(&mut reader, &mut raw).map_err(read_err)?;
    if got < raw.len() {
        return Err(format_error(
            path,
            format!("the header stops after {} of its {} dimension bytes: the file is truncated: get a fresh copy", got, raw.len()),
        ));
    }
    let dims: Vec<usize> = raw
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let len = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&len| usize::try_from(len).is_ok())
        .ok_or_else(|| {
            format_error(
                path,
                format!("dimensions {dims:?} overflow: their product does not fit in memory; the header is corrupt"),
            )
        })?;
    let header_len = 4 + 4 * ndim as u64;
    // The most data this file can hold: a header that claims more is corrupt. A quick first
    // refusal; what bounds memory is the limit below and the buffer's growth with the data.
    let capacity = if gzipped {
        file_len.saturating_mul(MAX_GZIP_RATIO)
    } else {
        file_len.saturating_sub(header_len)
    };
    if len > capacity {
        return Err(format_error(
            path,
            format!(
                "the header {dims:?} promises {len} bytes of data but a {}file of {file_len} bytes \
                 holds at most {capacity}: the file is truncated or its header is corrupt: get a fresh copy",
                if gzipped { "gzip " } else { "" }
            ),
        ));
    }
    // The memory limit, on the raw bytes and on the array they become, before any data.
    let too_large = |e: Error| e.in_file(path);
    check_buffer("raw data", &dims, 1).map_err(too_large)?;
    check_buffer(claim.array, &dims, claim.element_bytes).map_err(too_large)?;
    let len = len as usize; // fits: checked against usize above
                            // Grow with the data that arrive, never from the claim alone: a file that ends early
                            // costs at most twice what it holds plus the first chunk.
    let mut data: Vec<u8> = Vec::new();
    while data.len() < len {
        let filled = data.len();
        let next = len.min(filled + filled.max(FIRST_CHUNK));
        data.reserve_exact(next - filled);
        data.resize(next, 0);
        let got = read_full(&mut reader, &mut data[filled..]).map_err(read_err)?;
        if filled + got < next {
            let got = filled + got;
            return Err(format_error(
                path,
                format!("truncated: the header {dims:?} promises {len} bytes of data but only {got} follow: the file is truncated, get a fresh copy"),
            ));
        }
    }
    let mut extra = [0u8; 1];
    if read_full(&mut reader, &mut extra).map_err(read_err)? > 0 {
        return Err(format_error(
            path,
            format!("data continue past the {len} bytes the header {dims:?} promises: the header or the file is wrong: get a fresh copy"),
        ));
    }
    Ok((dims, data))
}

/// A read error: corrupt gzip data is a format error, anything else an I/O error.
fn read_error(path: &Path, gzipped: bool, e: std::io::Error) -> Error {
    use std::io::ErrorKind::{InvalidData, InvalidInput, UnexpectedEof};
    if gzipped && matches!(e.kind(), InvalidData | InvalidInput | UnexpectedEof) {
        format_error(
            path,
            format!("corrupt or truncated gzip data ({e}): get a fresh copy"),
        )
    } else {
        Error::Io {
            action: "cannot read",
            path: path.to_path_buf(),
            source: e,
        }
    }
}

fn format_error(path: &Path, reason: String) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        reason,
    }
}
