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

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use ndarray::{Array, ArrayView, ArrayViewD, Dimension, IxDyn, ShapeBuilder};

use crate::budget::check_buffer;
use crate::fs::write_atomic;
use crate::{Error, Float, Result};

/// The magic string every `.npy` file starts with.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The longest header this module reads, in bytes. NumPy writes headers of 128 bytes or so
/// and by default refuses to read ones over 10,000.
pub const MAX_HEADER_LEN: usize = 1 << 16;

/// The values of a file are read and converted in blocks of this many bytes.
const BLOCK: usize = 1 << 16;

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
    fn of<T: Float>() -> Dtype {
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
    dtype: Dtype,
    big_endian: bool,
    order: MemoryOrder,
    shape: Vec<usize>,
    data_offset: u64,
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
    fn is_native(&self) -> bool {
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

/// Reads the `.npy` file at `path` into an array of `T` with `D` dimensions
/// (`ndarray::Ix2` for a data set, `Ix1` for scores or labels, `IxDyn` for any). An `f32`
/// file read as `f64` is exact; an `f64` file read as `f32` rounds each value to nearest.
/// A Fortran-order file comes back in Fortran layout, without a copy
/// (`.as_standard_layout()` gives row-major memory if needed); the values are the same
/// either way.
///
/// # Errors
/// As [`header`], and: [`Error::Format`] if the file has another number of dimensions
/// than `D`, its data are shorter or longer than the header says, or an `f64` value is too
/// large for `f32` (the message names its index); [`Error::FileTooLarge`] if the array
/// would exceed [`crate::memory_limit`] (checked before it is allocated).
///
/// ```
/// use autoencoder::data::npy;
/// use ndarray::{array, Array2};
/// # fn main() -> autoencoder::Result<()> {
/// # let dir = std::env::temp_dir().join(format!("npy-read-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("x.npy");
/// npy::write(&path, array![[1.0f64, 2.0], [3.0, 4.5]].view())?;
/// let x: Array2<f32> = npy::read(&path)?; // converted to f32
/// assert_eq!(x, array![[1.0f32, 2.0], [3.0, 4.5]]);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(()) }
/// ```
pub fn read<T: Float, D: Dimension>(path: impl AsRef<Path>) -> Result<Array<T, D>> {
    let path = path.as_ref();
    let (mut reader, file_len) = open(path)?;
    let header = read_header(&mut reader, path)?;
    let shape = checked_shape::<D>(&header, path)?;
    let data_len = check_data_len(&header, file_len, path)?;
    let too_large = |e: Error| e.in_file(path);
    let n = check_buffer(element_name::<T>(), &header.shape, std::mem::size_of::<T>())
        .map_err(too_large)?;
    let mut values: Vec<T> = Vec::with_capacity(n);
    let mut block = vec![0u8; BLOCK.min(usize::try_from(data_len).unwrap_or(BLOCK))];
    let mut remaining = data_len;
    while remaining > 0 {
        let want = block
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let got = read_full(&mut reader, &mut block[..want])
            .map_err(|e| io_error("cannot read", path, e))?;
        if got < want {
            // The file shrank since its length was read.
            return Err(truncated_data(
                path,
                &header,
                data_len - remaining + got as u64,
            ));
        }
        let first = values.len();
        values.resize(first + want / header.dtype.size(), T::zero());
        decode(&header, &block[..want], &mut values[first..], first, path)?;
        remaining -= want as u64;
    }
    let shape = IxDyn(&shape).set_f(header.order == MemoryOrder::Fortran);
    let array = Array::from_shape_vec(shape, values).map_err(|e| {
        format_error(
            path,
            format!("shape {:?} does not fit in memory ({e})", header.shape),
        )
    })?;
    array
        .into_dimensionality::<D>()
        .map_err(|_| unreachable_dims(path))
}

/// Decodes the raw values `bytes` of a file with `header` into `out`, one value per
/// `dtype.size()` bytes, converting to `T`; `first` is the index in the file of the first
/// value, for the message if an `f64` value overflows `f32`.
///
/// # Errors
/// [`Error::Format`] naming the value's index if a finite `f64` rounds to an infinite `f32`.
///
/// # Panics
/// If `bytes.len() != out.len() * header.dtype().size()`.
pub(crate) fn decode<T: Float>(
    header: &Header,
    bytes: &[u8],
    out: &mut [T],
    first: usize,
    path: &Path,
) -> Result<()> {
    let size = header.dtype.size();
    assert_eq!(
        bytes.len(),
        out.len() * size,
        "decode: block and output sizes"
    );
    let big = header.big_endian;
    match header.dtype {
        Dtype::F32 => {
            for (v, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                let b = [b[0], b[1], b[2], b[3]];
                let x = if big {
                    f32::from_be_bytes(b)
                } else {
                    f32::from_le_bytes(b)
                };
                *v = T::cast(f64::from(x));
            }
        }
        Dtype::F64 => {
            for (i, (v, b)) in out.iter_mut().zip(bytes.chunks_exact(8)).enumerate() {
                let b = [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
                let x = if big {
                    f64::from_be_bytes(b)
                } else {
                    f64::from_le_bytes(b)
                };
                *v = T::cast(x);
                if x.is_finite() && !v.is_finite() {
                    return Err(format_error(
                        path,
                        format!(
                            "value {x:e} at flat index {} ({} order) is too large for f32; \
                             read the file as f64, or rescale it",
                            first + i,
                            if header.order == MemoryOrder::C {
                                "C"
                            } else {
                                "Fortran"
                            },
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// An `.npy` file mapped into memory: its values are read from disk as they are touched,
/// so a file larger than memory can be trained on. [`NpyMap::view`] gives an
/// [`ArrayView`] that [`crate::Trainer::fit`], `encode` and the other calls take as they
/// take an array in memory, with the same results, bit for bit.
///
/// The element type must be the file's (no conversion without a copy) and in this
/// machine's byte order; a Fortran-order file gives a column-major view (same values).
///
/// ```
/// use autoencoder::data::npy::{self, NpyMap};
/// use ndarray::{Array2, ArrayView2};
/// # fn main() -> autoencoder::Result<()> {
/// # let dir = std::env::temp_dir().join(format!("npy-map-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("big.npy");
/// npy::write(&path, Array2::<f32>::from_shape_fn((100, 8), |(i, j)| (i + j) as f32).view())?;
/// // Safety: nothing modifies or truncates the file while `map` lives.
/// let map = unsafe { NpyMap::open(&path)? };
/// let x: ArrayView2<f32> = map.view()?;
/// assert_eq!(x[[99, 7]], 106.0);
/// # drop(map);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NpyMap {
    map: memmap2::Mmap,
    header: Header,
    path: PathBuf,
}

impl NpyMap {
    /// Maps the `.npy` file at `path` read-only, after checking its header and that the
    /// data fill the file exactly. Nothing is read beyond the header.
    ///
    /// # Safety
    /// The file must not be modified or truncated (by this or another process) while the
    /// map or a view of it lives: the operating system cannot prevent it, and the view would
    /// change under Rust's feet or, for a truncated file, the process would be killed by
    /// `SIGBUS` on access. This is the contract of every memory map (`memmap2::Mmap::map`).
    ///
    /// # Errors
    /// As [`header`], and [`Error::Format`] if the data are shorter or longer than the
    /// header says; [`Error::Io`] if the file cannot be mapped.
    pub unsafe fn open(path: impl AsRef<Path>) -> Result<NpyMap> {
        let path = path.as_ref();
        let (mut reader, file_len) = open(path)?;
        let header = read_header(&mut reader, path)?;
        check_data_len(&header, file_len, path)?;
        // SAFETY: the caller promises the file does not change while mapped.
        let map = unsafe { memmap2::Mmap::map(reader.get_ref()) }
            .map_err(|e| io_error("cannot map into memory", path, e))?;
        if map.len() as u64 != file_len {
            return Err(format_error(path, "changed while being opened".into()));
        }
        Ok(NpyMap {
            map,
            header,
            path: path.to_path_buf(),
        })
    }

    /// The file's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The values as an array view of `T` with `D` dimensions (`Ix2` for [`crate::Trainer::fit`]).
    ///
    /// # Errors
    /// [`Error::Format`] if `T` is not the file's type (read it with [`read`], which
    /// converts), the values are big-endian, the data start at an offset that is not a
    /// multiple of `T`'s size (not written by NumPy), or the file has another number of
    /// dimensions than `D`.
    pub fn view<T: Float, D: Dimension>(&self) -> Result<ArrayView<'_, T, D>> {
        let path = &self.path;
        let header = &self.header;
        if Dtype::of::<T>() != header.dtype {
            return Err(format_error(
                path,
                format!(
                    "holds {} values but a view of {} was asked for: map it as {}, or read it \
                     into memory with npy::read::<{}, _>, which converts",
                    header.dtype.name(),
                    T::NAME,
                    header.dtype.name(),
                    T::NAME
                ),
            ));
        }
        if !header.is_native() {
            return Err(format_error(
                path,
                "holds big-endian values, which cannot be used in place on this machine: read \
                 it with npy::read, or convert it in NumPy with a.astype(a.dtype.newbyteorder('<'))"
                    .into(),
            ));
        }
        let shape = checked_shape::<D>(header, path)?;
        let n = header.len().ok_or_else(|| unreachable_dims(path))?;
        let offset = usize::try_from(header.data_offset).map_err(|_| unreachable_dims(path))?;
        let bytes = &self.map[offset..];
        let ptr = bytes.as_ptr();
        if ptr.align_offset(std::mem::align_of::<T>()) != 0 {
            return Err(format_error(
                path,
                format!(
                    "the values start at byte {offset}, not a multiple of {} as {} needs: save \
                     the file with numpy.save (which aligns them), or read it with npy::read",
                    std::mem::align_of::<T>(),
                    T::NAME
                ),
            ));
        }
        debug_assert_eq!(bytes.len(), n * std::mem::size_of::<T>());
        // SAFETY: `bytes` holds exactly `n` values of `T` (checked against the file length
        // in `open`), is aligned for `T` (checked above), every bit pattern is a valid f32
        // or f64, and the map is read-only and lives as long as the returned borrow.
        let values: &[T] = unsafe { std::slice::from_raw_parts(ptr.cast::<T>(), n) };
        let dims = IxDyn(&shape).set_f(header.order == MemoryOrder::Fortran);
        let view: ArrayViewD<'_, T> =
            ArrayView::from_shape(dims, values).map_err(|_| unreachable_dims(path))?;
        view.into_dimensionality::<D>()
            .map_err(|_| unreachable_dims(path))
    }
}

/// Writes `array` to `path` as an `.npy` file (format 1.0, little-endian, `'<f4'` or
/// `'<f8'`), atomically: a previous file at `path` stays whole until the new one is
/// complete. A row-major array is written in C order and a column-major one in Fortran
/// order, each as it lies in memory; any other layout in C order. `np.load(path)` reads it.
///
/// # Errors
/// [`Error::Io`] if the file cannot be written (the message names it).
///
/// ```
/// use autoencoder::data::npy;
/// use ndarray::{array, Array1};
/// # fn main() -> autoencoder::Result<()> {
/// # let dir = std::env::temp_dir().join(format!("npy-write-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let scores = array![0.25f64, 1.5, 0.125];
/// let path = dir.join("scores.npy");
/// npy::write(&path, scores.view())?;
/// let back: Array1<f64> = npy::read(&path)?;
/// assert_eq!(back, scores);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(()) }
/// ```
pub fn write<T: Float, D: Dimension>(path: impl AsRef<Path>, array: ArrayView<T, D>) -> Result<()> {
    let path = path.as_ref();
    let fortran = array.ndim() > 1 && !array.is_standard_layout() && array.t().is_standard_layout();
    let header = header_bytes(Dtype::of::<T>(), fortran, array.shape());
    write_atomic(path, |file| {
        let mut out = BufWriter::new(file);
        out.write_all(&header)?;
        let mut put = |v: &T| -> std::io::Result<()> {
            match Dtype::of::<T>() {
                Dtype::F32 => out.write_all(&(v.as_f64() as f32).to_le_bytes()),
                Dtype::F64 => out.write_all(&v.as_f64().to_le_bytes()),
            }
        };
        if fortran {
            array.t().iter().try_for_each(&mut put)?;
        } else {
            array.iter().try_for_each(&mut put)?;
        }
        out.flush()
    })
}

/// The header of a format-1.0 file (format 2.0 past 65,535 bytes), padded with spaces so
/// that the values start at a multiple of 64 bytes, as NumPy does.
fn header_bytes(dtype: Dtype, fortran: bool, shape: &[usize]) -> Vec<u8> {
    let descr = match dtype {
        Dtype::F32 => "<f4",
        Dtype::F64 => "<f8",
    };
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let order = if fortran { "True" } else { "False" };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {dims}, }}");
    let v1 = (10 + dict.len() + 1).div_ceil(64) * 64 - 10 <= 0xffff;
    let prefix = if v1 { 10 } else { 12 };
    let total = (prefix + dict.len() + 1).div_ceil(64) * 64;
    dict.extend(std::iter::repeat_n(' ', total - prefix - dict.len() - 1));
    dict.push('\n');
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    if v1 {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(dict.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out
}

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

/// The header dict's three entries.
struct Dict {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A value in the header dict.
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// Parses `{'descr': ..., 'fortran_order': ..., 'shape': (...), }` (keys in any order,
/// either quote, trailing commas, Python 2's `3L`), then only whitespace.
fn parse_dict(text: &str) -> std::result::Result<Dict, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
    };
    p.expect(b'{')?;
    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        if !matches!(key.as_str(), "descr" | "fortran_order" | "shape") {
            return Err(format!("unknown key `{key}`"));
        }
        p.expect(b':')?;
        let value = p.value()?;
        match (key.as_str(), value) {
            ("descr", Value::Str(s)) => descr = Some(s),
            ("fortran_order", Value::Bool(b)) => fortran_order = Some(b),
            ("shape", Value::Tuple(t)) => shape = Some(t),
            _ => return Err(format!("`{key}` has a value of the wrong kind")),
        }
        p.skip_ws();
        if !p.eat(b',') {
            p.expect(b'}')?;
            break;
        }
    }
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err("text after the closing brace".into());
    }
    match (descr, fortran_order, shape) {
        (Some(descr), Some(fortran_order), Some(shape)) => Ok(Dict {
            descr,
            fortran_order,
            shape,
        }),
        (None, ..) => Err("no `descr`".into()),
        (_, None, _) => Err("no `fortran_order`".into()),
        (.., None) => Err("no `shape`".into()),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        let hit = self.s.get(self.pos) == Some(&c);
        self.pos += usize::from(hit);
        hit
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected `{}` at byte {}", c as char, self.pos))
        }
    }

    /// A quoted string without escapes.
    fn string(&mut self) -> std::result::Result<String, String> {
        self.skip_ws();
        let quote = match self.s.get(self.pos) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a quoted string at byte {}", self.pos)),
        };
        let start = self.pos + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == quote || c == b'\\')
            .ok_or("unterminated string")?;
        if self.s[start + len] == b'\\' {
            return Err("escapes in strings are not supported".into());
        }
        self.pos = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }

    fn value(&mut self) -> std::result::Result<Value, String> {
        self.skip_ws();
        let rest = &self.s[self.pos..];
        if rest.starts_with(b"True") {
            self.pos += 4;
            Ok(Value::Bool(true))
        } else if rest.starts_with(b"False") {
            self.pos += 5;
            Ok(Value::Bool(false))
        } else if rest.starts_with(b"(") {
            self.pos += 1;
            let mut dims = Vec::new();
            loop {
                if self.eat(b')') {
                    break;
                }
                dims.push(self.integer()?);
                if !self.eat(b',') {
                    self.expect(b')')?;
                    break;
                }
            }
            Ok(Value::Tuple(dims))
        } else if rest.starts_with(b"[") || rest.starts_with(b"{") {
            Err(
                "a structured dtype (a list of named fields) is not supported: save a plain \
                 float array, e.g. numpy.save(path, a.astype(numpy.float32))"
                    .into(),
            )
        } else {
            self.string().map(Value::Str)
        }
    }

    /// A non-negative integer (optionally Python 2's `L` suffix), checked for overflow.
    fn integer(&mut self) -> std::result::Result<usize, String> {
        self.skip_ws();
        let start = self.pos;
        let mut n: usize = 0;
        while let Some(&c @ b'0'..=b'9') = self.s.get(self.pos) {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(usize::from(c - b'0')))
                .ok_or("a dimension overflows")?;
            self.pos += 1;
        }
        if self.pos == start {
            return Err(format!("expected a dimension at byte {}", self.pos));
        }
        if self.s.get(self.pos) == Some(&b'L') {
            self.pos += 1;
        }
        Ok(n)
    }
}

/// The element type and byte order of a `descr`, or a message saying what it is and how
/// to convert it.
fn parse_descr(descr: &str) -> std::result::Result<(Dtype, bool), String> {
    let (order, code) = match descr.as_bytes().first() {
        Some(&c @ (b'<' | b'>' | b'=' | b'|')) => (c, &descr[1..]),
        _ => (b'=', descr),
    };
    let big_endian = match order {
        b'>' => true,
        b'<' => false,
        _ => cfg!(target_endian = "big"),
    };
    match code {
        "f4" => Ok((Dtype::F32, big_endian)),
        "f8" => Ok((Dtype::F64, big_endian)),
        _ => {
            let kind = match code.as_bytes().first() {
                Some(b'b') if code == "b1" => "booleans",
                Some(b'i') => "signed integers",
                Some(b'u') => "unsigned integers",
                Some(b'f') if code == "f2" => "16-bit floats",
                Some(b'f') => "extended-precision floats",
                Some(b'c') => "complex numbers",
                Some(b'O') => "Python objects",
                Some(b'U' | b'S' | b'a') => "strings",
                Some(b'M' | b'm') => "dates or time spans",
                _ => "values of an unknown type",
            };
            Err(format!(
                "dtype '{descr}' ({kind}) is not supported: this crate reads float32 ('<f4') and \
                 float64 ('<f8') arrays; convert in NumPy with \
                 numpy.save(path, a.astype(numpy.float32))"
            ))
        }
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

/// Reads until `buf` is full or the input ends; returns the number of bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
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
