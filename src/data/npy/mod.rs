//! `.npy` files, NumPy's array format: read into memory, map from disk, write.
//!
//! A file is a header, then the raw values:
//!
//! | bytes | content |
//! | --- | --- |
//! | 0-5 | magic `\x93NUMPY` |
//! | 6-7 | format version, major and minor (1.0, 2.0 or 3.0) |
//! | 8-9 (1.0) or 8-11 (2.0, 3.0) | `HEADER_LEN`, little-endian `u16` or `u32` |
//! | then | `HEADER_LEN` bytes: a Python dict literal, e.g. `{'descr': '<f4', 'fortran_order': False, 'shape': (100, 30), }`, padded with spaces, ending in `\n` |
//! | then | the product of `shape` values of the `descr` type, in C (row-major) order or, if `fortran_order`, column-major |
//!
//! This module reads `f32` (`'<f4'`, `'>f4'`) and `f64` (`'<f8'`, `'>f8'`) files in either
//! order and refuses every other `descr` with an error that names it and says how to convert
//! it in NumPy. [`read`] loads a file (converting between `f32` and `f64` if asked);
//! [`NpyMap`] maps a file into memory without reading it, for data larger than memory, and
//! hands out an [`ndarray::ArrayView`] that [`crate::Trainer::fit`] takes as it is; [`write()`]
//! saves an array atomically, as `np.load` reads it.
//!
//! Nothing a header claims is allocated before it is checked: the header itself is at most
//! [`MAX_HEADER_LEN`] bytes and is read as it arrives, and the data must fill the file
//! exactly (neither shorter nor longer) and fit [`crate::memory_limit`] before the buffer
//! that receives them is allocated.
//!
//! Why not the `ndarray-npy` crate: its reader allocates whatever length a header claims
//! (up to 4 GiB for the header, the whole shape for the data) before reading it, so a
//! 100-byte file can abort the process; it does not give the data's offset, which the
//! memory map needs; and it brings a Python-literal parser built on `pest`. The format needs
//! none of that.

mod dict;
mod header;
mod map;
mod read;
mod write;

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use ndarray::Dimension;

use crate::{Error, Float, Result};

use dict::{parse_descr, parse_dict};
pub(crate) use header::read_header;
use header::MAGIC;
pub use header::{header, Dtype, Header, MemoryOrder, MAX_HEADER_LEN};
pub use map::NpyMap;
pub(crate) use read::decode;
pub use read::read;
pub use write::write;

// What the parts share: checks of a header against a file and the errors they report.

/// The header's shape, checked to have `D`'s number of dimensions.
fn checked_shape<D: Dimension>(header: &Header, path: &Path) -> Result<Vec<usize>> {
    match D::NDIM {
        Some(n) if n != header.shape.len() => Err(format_error(
            path,
            format!(
                "holds an array of shape {:?} ({} dimensions) but {n} dimensions were asked for{}",
                header.shape,
                header.shape.len(),
                match (n, header.shape.len()) {
                    (2, 1) =>
                        ": for one feature per row, reshape it in NumPy with a.reshape(-1, 1)",
                    (1, 2) => ": read it as a 2-d array (Ix2)",
                    _ => "",
                }
            ),
        )),
        _ => Ok(header.shape.clone()),
    }
}

/// Checks that the data fill the file of `file_len` bytes exactly; returns their length.
fn check_data_len(header: &Header, file_len: u64, path: &Path) -> Result<u64> {
    let data_len = header.data_len().ok_or_else(|| {
        format_error(
            path,
            format!(
                "the shape {:?} overflows: its size does not fit in memory; the header is corrupt",
                header.shape
            ),
        )
    })?;
    let have = file_len.saturating_sub(header.data_offset);
    if have < data_len {
        return Err(truncated_data(path, header, have));
    }
    if have > data_len {
        return Err(format_error(
            path,
            format!(
                "{have} bytes of data follow the header, but its shape {:?} of {} needs {data_len}: \
                 the header or the file is wrong",
                header.shape,
                header.dtype.name()
            ),
        ));
    }
    Ok(data_len)
}

fn truncated_data(path: &Path, header: &Header, have: u64) -> Error {
    format_error(
        path,
        format!(
            "truncated: the shape {:?} of {} needs {} bytes of data but only {have} follow the header",
            header.shape,
            header.dtype.name(),
            header.data_len().unwrap_or(u64::MAX),
        ),
    )
}

fn truncated_header(path: &Path) -> Error {
    format_error(
        path,
        "the file ends inside its header: it is truncated".into(),
    )
}

/// Shapes were checked against the dimension and the file before: this cannot happen.
fn unreachable_dims(path: &Path) -> Error {
    format_error(path, "internal error: shape check out of step".into())
}

fn element_name<T: Float>() -> &'static str {
    if T::NAME == "f32" {
        "f32 values"
    } else {
        "f64 values"
    }
}

/// Opens a file: a buffered reader and the file's length.
fn open(path: &Path) -> Result<(BufReader<File>, u64)> {
    let file = File::open(path).map_err(|e| io_error("cannot open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| io_error("cannot read", path, e))?
        .len();
    Ok((BufReader::new(file), len))
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn format_error(path: &Path, reason: String) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        reason,
    }
}
