//! [`NpyMap`]: a file mapped into memory, viewed without a copy.

use std::path::{Path, PathBuf};

use ndarray::{ArrayView, ArrayViewD, Dimension, IxDyn, ShapeBuilder};

use crate::{Float, Result};

use super::{
    check_data_len, checked_shape, format_error, io_error, open, read_header, unreachable_dims,
    Dtype, Header, MemoryOrder,
};

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
