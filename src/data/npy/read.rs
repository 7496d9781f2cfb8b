//! [`read`]: a whole file into memory, converting its values to `T`.

use std::path::Path;

use ndarray::{Array, Dimension, IxDyn, ShapeBuilder};

use crate::budget::check_buffer;
use crate::fs::read_full;
use crate::{Error, Float, Result};

use super::{
    check_data_len, checked_shape, element_name, format_error, io_error, open, read_header,
    truncated_data, unreachable_dims, Dtype, Header, MemoryOrder,
};

/// The values of a file are read and converted in blocks of this many bytes.
const BLOCK: usize = 1 << 16;

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
