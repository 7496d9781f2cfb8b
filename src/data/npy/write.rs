//! [`write()`]: an array saved atomically, as NumPy writes it.

use std::io::{BufWriter, Write};
use std::path::Path;

use ndarray::{ArrayView, Dimension};

use crate::fs::write_atomic;
use crate::{Float, Result};

use super::{Dtype, MAGIC};

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
