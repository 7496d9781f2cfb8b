//! The header: its fields ([`Header`], [`Dtype`], [`MemoryOrder`]) and how it is read.

use std::io::Read;
use std::path::Path;

use crate::{Float, Result};

use super::{format_error, io_error, open, parse_descr, parse_dict, truncated_header};
use crate::fs::read_full;

/// The magic string every `.npy` file starts with.
pub(super) const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The longest header this module reads, in bytes. NumPy writes headers of 128 bytes or so
/// and by default refuses to read ones over 10,000.
pub const MAX_HEADER_LEN: usize = 1 << 16;

/// The element type of an `.npy` file this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// 32-bit floats, `descr` `'<f4'` or `'>f4'`.
    F32,
    /// 64-bit floats, `descr` `'<f8'` or `'>f8'`.
    F64,
}

impl Dtype {
    /// `"f32"` or `"f64"`, as [`Float::NAME`] spells them.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F64 => "f64",
        }
    }

    /// Bytes per value: 4 or 8.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F64 => 8,
        }
    }

    /// The type of `T`.
    pub(super) fn of<T: Float>() -> Dtype {
        if T::NAME == "f32" {
            Dtype::F32
        } else {
            Dtype::F64
        }
    }
}

/// The order in which a file lays out its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryOrder {
    /// Row-major (`fortran_order: False`): the last index varies fastest.
    C,
    /// Column-major (`fortran_order: True`): the first index varies fastest.
    Fortran,
}

/// What an `.npy` header says: element type, byte order, memory order, shape, and where the
/// values start. From [`header`] or [`NpyMap::header`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub(super) dtype: Dtype,
    pub(super) big_endian: bool,
    pub(super) order: MemoryOrder,
    pub(super) shape: Vec<usize>,
    pub(super) data_offset: u64,
}

impl Header {
    /// The element type.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// Whether the values are stored big-endian (`'>f4'`, `'>f8'`); NumPy writes
    /// little-endian on every common machine.
    pub fn is_big_endian(&self) -> bool {
        self.big_endian
    }

    /// Row-major or column-major.
    pub fn order(&self) -> MemoryOrder {
        self.order
    }

    /// The array's shape; `[]` for a scalar.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The byte offset of the first value from the start of the file.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// The number of values, the product of the shape (1 for a scalar), or `None` if it
    /// overflows `usize`.
    pub fn len(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }

    /// Whether the array holds no values (some dimension is 0).
    pub fn is_empty(&self) -> bool {
        self.shape.contains(&0)
    }

    /// The number of data bytes, or `None` if it overflows `u64`.
    pub(crate) fn data_len(&self) -> Option<u64> {
        let n = u64::try_from(self.len()?).ok()?;
        n.checked_mul(self.dtype.size() as u64)
    }

    /// Whether the values are in this machine's byte order.
    pub(super) fn is_native(&self) -> bool {
        self.big_endian == cfg!(target_endian = "big")
    }

    /// Whether the data bytes are values of `T` as this machine stores them, so they can
    /// be read straight into a `[T]`.
    pub(crate) fn holds<T: Float>(&self) -> bool {
        self.dtype == Dtype::of::<T>() && self.is_native()
    }
}

/// Reads the header of the `.npy` file at `path`, without its data: to see a file's shape
/// and type before loading or mapping it.
///
/// # Errors
/// [`Error::Io`] if the file cannot be opened or read; [`Error::Format`] if it is not an
/// `.npy` file, its header is malformed, or its type is not `f32` or `f64` (the message
/// names the type and how to convert it).
///
/// ```
/// use autoencoder::data::npy::{self, Dtype, MemoryOrder};
/// # fn main() -> autoencoder::Result<()> {
/// # let dir = std::env::temp_dir().join(format!("npy-header-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("x.npy");
/// npy::write(&path, ndarray::Array2::<f32>::zeros((5, 3)).view())?;
/// let header = npy::header(&path)?;
/// assert_eq!((header.dtype(), header.order(), header.shape()), (Dtype::F32, MemoryOrder::C, &[5, 3][..]));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(()) }
/// ```
pub fn header(path: impl AsRef<Path>) -> Result<Header> {
    let path = path.as_ref();
    let (mut reader, _) = open(path)?;
    read_header(&mut reader, path)
}

/// Reads an `.npy` header from `reader`, positioned at the start of the file, and leaves
/// it at the first value; `path` names the file in errors. The header's
/// [`Header::data_offset`] is the number of bytes consumed.
///
/// # Errors
/// As [`header`].
pub(crate) fn read_header(reader: &mut impl Read, path: &Path) -> Result<Header> {
    let read_err = |e| io_error("cannot read", path, e);
    let mut start = [0u8; 10];
    let got = read_full(reader, &mut start).map_err(read_err)?;
    if got < 6 || start[..6] != MAGIC[..] {
        return Err(format_error(
            path,
            format!(
                "does not start with the .npy magic string \\x93NUMPY{}: this is not a .npy file \
                 (write one with numpy.save)",
                if got < 6 {
                    format!(" (the file has only {got} bytes)")
                } else {
                    String::new()
                }
            ),
        ));
    }
    if got < 10 {
        return Err(truncated_header(path));
    }
    let (major, minor) = (start[6], start[7]);
    let (header_len, prefix) = match (major, minor) {
        (1, 0) => (usize::from(u16::from_le_bytes([start[8], start[9]])), 10),
        (2 | 3, 0) => {
            let mut rest = [0u8; 2];
            if read_full(reader, &mut rest).map_err(read_err)? < 2 {
                return Err(truncated_header(path));
            }
            let len = u32::from_le_bytes([start[8], start[9], rest[0], rest[1]]);
            (usize::try_from(len).unwrap_or(usize::MAX), 12)
        }
        _ => {
            return Err(format_error(
                path,
                format!(
                    ".npy format version {major}.{minor} is not supported: this reader knows \
                     1.0, 2.0 and 3.0; save the file again with numpy.save"
                ),
            ))
        }
    };
    if header_len > MAX_HEADER_LEN {
        return Err(format_error(
            path,
            format!(
                "the header claims {header_len} bytes, more than the {MAX_HEADER_LEN} this reader \
                 accepts (NumPy writes about 128): the file is corrupt or not a plain array"
            ),
        ));
    }
    // Grows with the bytes that arrive, never from the claim alone.
    let mut text = Vec::new();
    reader
        .take(header_len as u64)
        .read_to_end(&mut text)
        .map_err(read_err)?;
    if text.len() < header_len {
        return Err(truncated_header(path));
    }
    let text = std::str::from_utf8(&text).map_err(|_| {
        format_error(
            path,
            "the header is not text (UTF-8): the file is corrupt".into(),
        )
    })?;
    let dict = parse_dict(text).map_err(|reason| {
        format_error(
            path,
            format!("malformed header `{}`: {reason}", text.trim_end()),
        )
    })?;
    let (dtype, big_endian) =
        parse_descr(&dict.descr).map_err(|reason| format_error(path, reason))?;
    Ok(Header {
        dtype,
        big_endian,
        order: if dict.fortran_order {
            MemoryOrder::Fortran
        } else {
            MemoryOrder::C
        },
        shape: dict.shape,
        data_offset: (prefix + header_len) as u64,
    })
}
