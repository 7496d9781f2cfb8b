//! Row sources over `.npy` files that are read piece by piece, never held in memory:
//! [`NpyRows`] (one file) and [`NpyShards`] (several files as one data set).
//!
//! Reads are positioned reads (`pread`) into the caller's rows, not a memory map: the
//! pages of a mapped file count in the process's resident memory (`VmRSS`, `VmHWM`) as
//! they are touched, so training from a mapped 26 GB file shows a resident set of many
//! gigabytes, while read rows live only in the trainer's read-ahead buffers and the
//! kernel's page cache, which the kernel reclaims as needed. For a file that fits in
//! memory, [`crate::data::npy::NpyMap`] gives a view with no copy at all.

use std::fs::File;
use std::io::BufReader;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ndarray::{s, ArrayViewMut2};

use crate::budget::check_buffer;
use crate::data::npy::{decode, read_header, Header, MemoryOrder};
use crate::data::source::{check_range_of, RowSource};
use crate::error::{Error, Result};
use crate::float::Float;

/// Bytes read at once, at most (whole rows, at least one).
const PIECE: usize = 1 << 20;

/// The rows of a two-dimensional `.npy` file `(n, d)`, `f32` or `f64` in C order and either
/// byte order, read into `T` as the trainer asks for them: a [`RowSource`] for data larger
/// than memory. Values of `T` in this machine's byte order are read straight into the
/// caller's rows; other files are read through a buffer of about 1 MiB, allocated at the
/// first such read, whatever the file's size.
///
/// Values are converted as [`crate::data::npy::read`] converts them (`f32` to `f64` exactly,
/// `f64` to `f32` to nearest, refusing values too large for `f32`). The file must not change
/// while it is read; a file that shrinks is reported, not read past.
///
/// ```
/// use autoencoder::data::{npy, NpyRows, RowSource};
/// use autoencoder::{Activation, Adam, Autoencoder, Trainer};
/// use ndarray::Array2;
/// use rand::SeedableRng;
/// # fn main() -> autoencoder::Result<()> {
/// # let dir = std::env::temp_dir().join(format!("npy-rows-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("train.npy");
/// let x = Array2::from_shape_fn((500, 8), |(i, j)| ((i * j) % 7) as f32 / 7.0);
/// npy::write(&path, x.view())?;
///
/// let rows = NpyRows::<f32>::open(&path)?;
/// assert_eq!((rows.n_rows(), rows.width()), (500, 8));
/// let mut ae = Autoencoder::<f32>::builder(8)
///     .latent(3, Activation::Tanh)
///     .build(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1))?;
/// // Read by blocks (the default for files), on a helper thread while the step computes.
/// let history = Trainer::new(Adam::new(1e-2)).epochs(2).fit(&mut ae, &rows, None)?;
/// assert_eq!(history.epochs.len(), 2);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NpyRows<T> {
    path: PathBuf,
    file: File,
    header: Header,
    rows: usize,
    width: usize,
    /// Bytes of one piece of a converting read: whole rows, about 1 MiB.
    piece: usize,
    /// Raw bytes of one piece, allocated at the first converting read and reused.
    buffer: Mutex<Vec<u8>>,
    element: PhantomData<fn() -> T>,
}

impl<T: Float> NpyRows<T> {
    /// Opens the `.npy` file at `path` and reads its header; no data are read.
    ///
    /// # Errors
    /// As [`crate::data::npy::header`]; and [`Error::Format`] if the array is not
    /// two-dimensional, is in Fortran order (rows would be scattered over the file: write
    /// it with `np.save(path, np.ascontiguousarray(x))`), or its data do not fill the file
    /// exactly; [`Error::TooLarge`] if one row exceeds the memory limit.
    pub fn open(path: impl AsRef<Path>) -> Result<NpyRows<T>> {
        let path = path.as_ref();
        let io = |action, e| Error::Io {
            action,
            path: path.to_path_buf(),
            source: e,
        };
        let fail = |reason: String| Error::Format {
            path: path.to_path_buf(),
            reason,
        };
        let file = File::open(path).map_err(|e| io("cannot open", e))?;
        let file_len = file.metadata().map_err(|e| io("cannot read", e))?.len();
        let header = read_header(&mut BufReader::new(&file), path)?;
        let &[rows, width] = header.shape() else {
            return Err(fail(format!(
                "the array has shape {:?}, but rows need a two-dimensional array (n, d): \
                 reshape it in NumPy, e.g. x.reshape(len(x), -1)",
                header.shape()
            )));
        };
        if header.order() == MemoryOrder::Fortran {
            return Err(fail(
                "the array is in Fortran (column-major) order, so its rows are scattered over \
                 the file: save it in C order, np.save(path, np.ascontiguousarray(x))"
                    .into(),
            ));
        }
        let expected = header
            .data_len()
            .and_then(|n| n.checked_add(header.data_offset()));
        if expected != Some(file_len) {
            return Err(fail(format!(
                "the header claims shape ({rows}, {width}) of {}, {} bytes with the header, but \
                 the file has {file_len} bytes: it is truncated or not what its header says",
                header.dtype().name(),
                expected.map_or("more than 2^64".into(), |e| e.to_string()),
            )));
        }
        let row_bytes = width * header.dtype().size(); // within the file's length
        let piece = PIECE
            .checked_div(row_bytes)
            .map_or(0, |rows| rows.max(1) * row_bytes);
        check_buffer("npy read buffer", &[piece], 1)?;
        Ok(NpyRows {
            path: path.to_path_buf(),
            file,
            header,
            rows,
            width,
            piece,
            buffer: Mutex::new(Vec::new()),
            element: PhantomData,
        })
    }

    /// The file's header: element type, byte order, shape.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl<T: Float> RowSource<T> for NpyRows<T> {
    fn n_rows(&self) -> usize {
        self.rows
    }

    fn width(&self) -> usize {
        self.width
    }

    /// Reads rows `start .. start + out.nrows()` with positioned reads: straight into `out`
    /// when its rows are contiguous and the file holds `T` in this machine's byte order (one
    /// read, no copy), otherwise in pieces of about 1 MiB, converted.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a range outside the file or a buffer of another width;
    /// [`Error::Io`] if a read fails; [`Error::Format`] if the file has become shorter, or
    /// an `f64` value is too large for `f32`.
    fn read_rows(&self, start: usize, mut out: ArrayViewMut2<'_, T>) -> Result<()> {
        let end = check_range_of(self, start, &out)?;
        let size = self.header.dtype().size();
        let row_bytes = self.width * size;
        if row_bytes == 0 {
            return Ok(());
        }
        let read = |bytes: &mut [u8], row: usize| {
            let last = row + bytes.len() / row_bytes - 1;
            // Rows inside the file, whose length was checked: no overflow.
            let offset = self.header.data_offset() + (row * row_bytes) as u64;
            read_exact_at(&self.file, bytes, offset).map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Error::Format {
                    path: self.path.clone(),
                    reason: format!(
                        "the file ended within rows {row} to {last} of {}: it was truncated while \
                         in use",
                        self.rows
                    ),
                },
                _ => Error::Io {
                    action: "cannot read",
                    path: self.path.clone(),
                    source: e,
                },
            })
        };
        if self.header.holds::<T>() {
            if let Some(values) = out.as_slice_mut() {
                // The file's bytes are `T` values in this machine's order: one read straight
                // into the caller's rows, no copy through the buffer.
                let len = std::mem::size_of_val(values);
                // SAFETY: `values` is a live, exclusive `[T]` of `len` bytes; `u8` has no
                // alignment; every byte pattern written is a valid `f32` or `f64`.
                let bytes = unsafe {
                    std::slice::from_raw_parts_mut(values.as_mut_ptr().cast::<u8>(), len)
                };
                return read(bytes, start);
            }
        }
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        if buffer.len() < self.piece {
            buffer.resize(self.piece, 0); // once: the size was checked in `open`
        }
        let piece_rows = buffer.len() / row_bytes;
        let mut row = start;
        while row < end {
            let rows = piece_rows.min(end - row);
            let bytes = &mut buffer[..rows * row_bytes];
            read(bytes, row)?;
            let first_value = row * self.width;
            let mut part = out.slice_mut(s![row - start..row - start + rows, ..]);
            match part.as_slice_mut() {
                Some(values) => decode(&self.header, bytes, values, first_value, &self.path)?,
                None => {
                    for (r, mut dst) in part.rows_mut().into_iter().enumerate() {
                        let src = &bytes[r * row_bytes..(r + 1) * row_bytes];
                        let at = first_value + r * self.width;
                        match dst.as_slice_mut() {
                            Some(values) => decode(&self.header, src, values, at, &self.path)?,
                            None => {
                                for (j, v) in dst.iter_mut().enumerate() {
                                    let one = &src[j * size..(j + 1) * size];
                                    decode(
                                        &self.header,
                                        one,
                                        std::slice::from_mut(v),
                                        at + j,
                                        &self.path,
                                    )?;
                                }
                            }
                        }
                    }
                }
            }
            row += rows;
        }
        Ok(())
    }
}

/// Reads `buf.len()` bytes at `offset` without moving a shared file position.
#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

/// Reads `buf.len()` bytes at `offset` (callers hold the buffer's lock, so seeks of
/// one source do not interleave).
#[cfg(not(unix))]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = file;
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

/// Several `.npy` files of the same width read as one data set: the rows of the first
/// file, then those of the second, and so on. Each file is an [`NpyRows`] (its own element
/// type and byte order, converted to `T`); the files stay open while the value lives.
///
/// Each shard holds one open file (and, if its values need converting, a read buffer of
/// about 1 MiB): with more shards than the process may open files (`ulimit -n`, often
/// 1024), [`NpyShards::open`] fails with [`Error::Io`] naming the first file it could not
/// open; raise the limit or write fewer, larger shards (a few hundred MiB each read as fast
/// as one file).
///
/// ```
/// use autoencoder::data::{npy, NpyShards, RowSource};
/// use ndarray::Array2;
/// # fn main() -> autoencoder::Result<()> {
/// # let dir = std::env::temp_dir().join(format!("npy-shards-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let paths = [dir.join("part-0.npy"), dir.join("part-1.npy")];
/// npy::write(&paths[0], Array2::<f32>::zeros((300, 4)).view())?;
/// npy::write(&paths[1], Array2::<f64>::ones((200, 4)).view())?;
/// let shards = NpyShards::<f32>::open(&paths)?;
/// assert_eq!((shards.n_rows(), shards.width()), (500, 4));
/// let mut rows = Array2::<f32>::zeros((4, 4));
/// shards.read_rows(298, rows.view_mut())?; // spans both files
/// assert_eq!(rows.column(0).to_vec(), vec![0.0, 0.0, 1.0, 1.0]);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NpyShards<T> {
    shards: Vec<NpyRows<T>>,
    /// `starts[i]`: the first row of shard `i` in the data set; `starts[len]` = total.
    starts: Vec<usize>,
}

impl<T: Float> NpyShards<T> {
    /// Opens every file of `paths`, in order (see [`NpyRows::open`]).
    ///
    /// # Errors
    /// As [`NpyRows::open`] for each file; [`Error::EmptyData`] for no files;
    /// [`Error::ShapeMismatch`] if a file's width differs from the first's (the message
    /// names it); [`Error::TooLarge`] if the rows add up past `usize`.
    pub fn open<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Result<NpyShards<T>> {
        let mut shards: Vec<NpyRows<T>> = Vec::new();
        let mut starts = vec![0];
        for path in paths {
            let shard = NpyRows::open(path)?;
            if let Some(first) = shards.first() {
                if shard.width != first.width {
                    return Err(Error::ShapeMismatch {
                        context: "npy shards",
                        expected: format!("(_, {}), as {}", first.width, first.path.display()),
                        found: format!(
                            "({}, {}) in {}",
                            shard.rows,
                            shard.width,
                            shard.path.display()
                        ),
                    });
                }
            }
            let total = starts[starts.len() - 1];
            let next = usize::checked_add(total, shard.rows).ok_or(Error::TooLarge {
                what: "npy shards' rows",
                shape: vec![total, shard.rows],
                element_bytes: 0,
                bytes: None,
                limit: crate::budget::memory_limit(),
            })?;
            starts.push(next);
            shards.push(shard);
        }
        if shards.is_empty() {
            return Err(Error::EmptyData {
                context: "npy shards (no files given)",
                rows: 0,
                cols: 0,
            });
        }
        Ok(NpyShards { shards, starts })
    }

    /// The files, in order.
    pub fn shards(&self) -> &[NpyRows<T>] {
        &self.shards
    }
}

impl<T: Float> RowSource<T> for NpyShards<T> {
    fn n_rows(&self) -> usize {
        self.starts[self.starts.len() - 1]
    }

    fn width(&self) -> usize {
        self.shards[0].width
    }

    /// Reads the range from each file it spans in turn.
    ///
    /// # Errors
    /// As [`NpyRows`]' reads.
    fn read_rows(&self, start: usize, mut out: ArrayViewMut2<'_, T>) -> Result<()> {
        let end = check_range_of(self, start, &out)?;
        let mut row = start;
        while row < end {
            // The shard holding `row`: the last whose start is <= row.
            let i = self.starts.partition_point(|&s| s <= row) - 1;
            let (first, shard) = (self.starts[i], &self.shards[i]);
            let rows = (first + shard.rows).min(end) - row;
            shard.read_rows(
                row - first,
                out.slice_mut(s![row - start..row - start + rows, ..]),
            )?;
            row += rows;
        }
        Ok(())
    }
}
