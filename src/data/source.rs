//! [`RowSource`]: where training rows come from. The trainer, [`crate::Pca`] and the
//! files of this folder meet here: a source says how many rows it has, how wide they are,
//! and copies the rows asked for into a buffer the caller owns.

use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};

use crate::error::{Error, Result};
use crate::float::Float;

/// Rows of training data, wherever they live: in memory (`ArrayView2`, `Array2`), in a
/// `.npy` file ([`crate::data::NpyRows`]), in a list of `.npy` shards
/// ([`crate::data::NpyShards`]), or in any storage a user implements this trait for.
///
/// A source is read, never changed: [`RowSource::read_rows`] copies rows
/// `start .. start + out.nrows()` into `out` `(m, width)`, which the caller allocated once
/// (the trainer reads whole blocks of rows into its read-ahead buffers on a helper thread,
/// hence `Sync`). Everything else has a default built on it.
///
/// # Implementing it for your own storage
/// Give the number of rows and the width, and copy a range of rows: read it from a file,
/// a database cursor or a decompressor into `out`, row `start + i` into `out.row(i)`.
/// Keep the rows the same from one call to the next (the trainer's results are
/// reproducible only if the data are), allocate nothing per call if you can (the training
/// step allocates nothing), and report failures as [`Error::Io`] or [`Error::Format`]
/// naming the file. Reads of long ranges are what the block shuffle
/// ([`crate::Shuffle::Blocks`]) asks for; override [`RowSource::gather`] if your storage
/// reads scattered rows faster than one range at a time.
///
/// ```
/// use autoencoder::data::RowSource;
/// use autoencoder::{Activation, Adam, Autoencoder, Result, Shuffle, Trainer};
/// use ndarray::ArrayViewMut2;
/// use rand::SeedableRng;
///
/// /// Rows computed on demand: row `i` is `sin(i + j)`, never stored.
/// struct Waves {
///     rows: usize,
///     width: usize,
/// }
///
/// impl RowSource<f32> for Waves {
///     fn n_rows(&self) -> usize {
///         self.rows
///     }
///     fn width(&self) -> usize {
///         self.width
///     }
///     fn read_rows(&self, start: usize, mut out: ArrayViewMut2<'_, f32>) -> Result<()> {
///         for (i, mut row) in out.rows_mut().into_iter().enumerate() {
///             for (j, v) in row.iter_mut().enumerate() {
///                 *v = ((start + i + j) as f32).sin() * 0.5 + 0.5;
///             }
///         }
///         Ok(())
///     }
/// }
///
/// # fn main() -> Result<()> {
/// let mut ae = Autoencoder::<f32>::builder(8)
///     .latent(3, Activation::Tanh)
///     .build(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1))?;
/// let waves = Waves { rows: 1000, width: 8 };
/// let history = Trainer::new(Adam::new(1e-2))
///     .epochs(2)
///     .shuffle(Shuffle::Blocks { block_rows: 100, buffer_blocks: 4 })
///     .fit(&mut ae, &waves, None)?;
/// assert_eq!(history.epochs.len(), 2);
/// # Ok(()) }
/// ```
pub trait RowSource<T: Float>: Sync {
    /// Number of rows.
    fn n_rows(&self) -> usize;

    /// Values per row.
    fn width(&self) -> usize;

    /// Copies rows `start .. start + out.nrows()` into `out` `(m, width)`; the caller
    /// keeps the range inside `0..n_rows()`.
    ///
    /// # Errors
    /// Whatever reading the storage fails with: [`Error::Io`] for an operating-system error,
    /// [`Error::Format`] for bytes that are not the rows they should be,
    /// [`Error::ShapeMismatch`] for a range or buffer that does not fit the source.
    fn read_rows(&self, start: usize, out: ArrayViewMut2<'_, T>) -> Result<()>;

    /// Copies row `rows[i]` into `out.row(i)` for every `i`; `out` is `(rows.len(), width)`.
    /// The default reads each run of consecutive indices with one
    /// [`RowSource::read_rows`].
    ///
    /// # Errors
    /// As [`RowSource::read_rows`].
    fn gather(&self, rows: &[usize], mut out: ArrayViewMut2<'_, T>) -> Result<()> {
        check_gather(self, rows, &out)?;
        let mut r = 0;
        while r < rows.len() {
            let start = rows[r];
            let mut len = 1;
            while r + len < rows.len() && rows[r + len] == start + len {
                len += 1;
            }
            self.read_rows(start, out.slice_mut(s![r..r + len, ..]))?;
            r += len;
        }
        Ok(())
    }

    /// All rows as one array, when they are in memory: the trainer then checks them once
    /// before training and gathers batches straight from them. `None` (the default) for
    /// storage read piece by piece, whose rows are checked as they are read.
    fn as_array(&self) -> Option<ArrayView2<'_, T>> {
        None
    }
}

impl<T: Float> RowSource<T> for ArrayView2<'_, T> {
    fn n_rows(&self) -> usize {
        self.nrows()
    }

    fn width(&self) -> usize {
        self.ncols()
    }

    fn read_rows(&self, start: usize, mut out: ArrayViewMut2<'_, T>) -> Result<()> {
        let end = check_range_of(self, start, &out)?;
        out.assign(&self.slice(s![start..end, ..]));
        Ok(())
    }

    fn gather(&self, rows: &[usize], mut out: ArrayViewMut2<'_, T>) -> Result<()> {
        check_gather(self, rows, &out)?;
        for (mut dst, &i) in out.rows_mut().into_iter().zip(rows) {
            dst.assign(&self.row(i));
        }
        Ok(())
    }

    fn as_array(&self) -> Option<ArrayView2<'_, T>> {
        Some(self.view())
    }
}

impl<T: Float> RowSource<T> for Array2<T> {
    fn n_rows(&self) -> usize {
        self.nrows()
    }

    fn width(&self) -> usize {
        self.ncols()
    }

    fn read_rows(&self, start: usize, out: ArrayViewMut2<'_, T>) -> Result<()> {
        self.view().read_rows(start, out)
    }

    fn gather(&self, rows: &[usize], out: ArrayViewMut2<'_, T>) -> Result<()> {
        self.view().gather(rows, out)
    }

    fn as_array(&self) -> Option<ArrayView2<'_, T>> {
        Some(self.view())
    }
}

impl<T: Float, S: RowSource<T> + ?Sized> RowSource<T> for &S {
    fn n_rows(&self) -> usize {
        (**self).n_rows()
    }

    fn width(&self) -> usize {
        (**self).width()
    }

    fn read_rows(&self, start: usize, out: ArrayViewMut2<'_, T>) -> Result<()> {
        (**self).read_rows(start, out)
    }

    fn gather(&self, rows: &[usize], out: ArrayViewMut2<'_, T>) -> Result<()> {
        (**self).gather(rows, out)
    }

    fn as_array(&self) -> Option<ArrayView2<'_, T>> {
        (**self).as_array()
    }
}

/// Checks that rows `start .. start + out.nrows()` exist in a source of `source.n_rows()`
/// rows and that `out` has its width; returns the end of the range.
///
/// # Errors
/// [`Error::ShapeMismatch`] naming the range and both shapes.
pub(crate) fn check_range_of<T: Float, S: RowSource<T> + ?Sized>(
    source: &S,
    start: usize,
    out: &ArrayViewMut2<'_, T>,
) -> Result<usize> {
    let end = start
        .checked_add(out.nrows())
        .filter(|&e| e <= source.n_rows());
    match end {
        Some(end) if out.ncols() == source.width() => Ok(end),
        _ => Err(Error::ShapeMismatch {
            context: "RowSource::read_rows",
            expected: format!(
                "rows inside 0..{} into a buffer {} wide",
                source.n_rows(),
                source.width()
            ),
            found: format!("rows from {start} into a buffer {:?}", out.dim()),
        }),
    }
}

/// Checks that `out` is `(rows.len(), width)` and every index is a row of `source`.
///
/// # Errors
/// [`Error::ShapeMismatch`] naming the first index out of range, or both shapes.
pub(crate) fn check_gather<T: Float, S: RowSource<T> + ?Sized>(
    source: &S,
    rows: &[usize],
    out: &ArrayViewMut2<'_, T>,
) -> Result<()> {
    let bad = rows.iter().find(|&&i| i >= source.n_rows());
    if bad.is_none() && out.dim() == (rows.len(), source.width()) {
        return Ok(());
    }
    Err(Error::ShapeMismatch {
        context: "RowSource::gather",
        expected: format!(
            "indices inside 0..{} into a buffer ({}, {})",
            source.n_rows(),
            rows.len(),
            source.width()
        ),
        found: match bad {
            Some(i) => format!("index {i}"),
            None => format!("a buffer {:?}", out.dim()),
        },
    })
}

/// The trainer's and PCA's first check of a source: it has rows and columns, and `width`
/// columns if given; `context` names the data in the error. Values are checked where they
/// are read (all at once for in-memory data, as they stream otherwise).
pub(crate) fn check_shape<T: Float, S: RowSource<T> + ?Sized>(
    source: &S,
    width: Option<usize>,
    context: &'static str,
) -> Result<()> {
    let (n, d) = (source.n_rows(), source.width());
    if n == 0 || d == 0 {
        return Err(Error::EmptyData {
            context,
            rows: n,
            cols: d,
        });
    }
    match width {
        Some(w) if w != d => Err(Error::ShapeMismatch {
            context,
            expected: format!("(_, {w})"),
            found: format!("({n}, {d})"),
        }),
        _ => Ok(()),
    }
}

/// `(min, max)` over every value of `source`, read in chunks of `chunk` `(rows, width)`
/// (a buffer the caller owns); `(0, 0)` for no values.
///
/// # Errors
/// As the source's reads.
pub(crate) fn streamed_value_range<T: Float, S: RowSource<T> + ?Sized>(
    source: &S,
    mut chunk: ArrayViewMut2<'_, T>,
) -> Result<(T, T)> {
    let mut range: Option<(T, T)> = None;
    let step = chunk.nrows().max(1);
    for start in (0..source.n_rows()).step_by(step) {
        let rows = step.min(source.n_rows() - start);
        let mut part = chunk.slice_mut(s![..rows, ..]);
        source.read_rows(start, part.view_mut())?;
        let (lo, hi) = crate::data::value_range(part.view());
        range = Some(match range {
            Some((a, b)) => (a.min(lo), b.max(hi)),
            None => (lo, hi),
        });
    }
    Ok(range.unwrap_or((T::zero(), T::zero())))
}

/// A [`NonFiniteData`](Error::NonFiniteData) error found in a chunk of a source, moved to
/// the chunk's place in the source (`first` is the chunk's first row); other errors as
/// they are.
pub(crate) fn at_row(e: Error, first: usize) -> Error {
    match e {
        Error::NonFiniteData {
            context,
            row,
            col,
            value,
        } => Error::NonFiniteData {
            context,
            row: row + first,
            col,
            value,
        },
        e => e,
    }
}
