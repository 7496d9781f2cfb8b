//! [`Shuffle`]: the order in which an epoch visits the rows, and how that order splits
//! into the windows the read-ahead thread fills (`feed.rs`).

use serde::{Deserialize, Serialize};

use crate::error::{check_range, Result};

/// The order in which each epoch visits the training rows; a [`crate::Trainer`] setting
/// ([`crate::Trainer::shuffle`]), saved in checkpoints.
///
/// | variant | reads | randomness | default for |
/// | --- | --- | --- | --- |
/// | `Rows` | one row at a time, anywhere | every epoch a fresh permutation of all rows | data in memory |
/// | `Blocks` | `block_rows` consecutive rows at a time | block order, then rows within `buffer_blocks` blocks | data read from files ([`Shuffle::BLOCKS`]) |
///
/// **Block shuffle.** The rows are cut into blocks of `block_rows` consecutive rows (the
/// last may be shorter). Every epoch the order of the blocks is shuffled (the previous
/// epoch's order, from the run's seeded generator, as `Rows` shuffles rows); the blocks are
/// then read in that order, `buffer_blocks` at a time, into a buffer whose rows are
/// shuffled (from a generator seeded once per epoch by the run's), and the epoch's
/// batches are cut from the buffers in turn (a batch may span two buffers). Reads are then
/// long and sequential, which is what disks do fast.
///
/// **Trade-offs.** A batch mixes rows from at most `buffer_blocks` places of the data set
/// (two buffers when it spans them): rows stored in a meaningful order (sorted by class,
/// by time) mix less than under `Rows`. Larger buffers mix better and take more memory:
/// the trainer keeps two buffers of `block_rows * buffer_blocks` rows (one computing, one
/// being read). Larger blocks make reads longer (faster on disks, each read costing a
/// seek), and smaller blocks mix better for the same buffer. The defaults,
/// [`Shuffle::BLOCKS`]: blocks of 1024 rows, buffers of 32 blocks, that is 32,768 rows per
/// buffer (100 MiB each for 784 `f32` values per row), reads of 3 MiB at that width.
/// Use `Rows` for data in memory unless you want the same order as a file-backed run.
///
/// ```
/// use autoencoder::{Adam, Shuffle, Trainer};
/// let trainer = Trainer::new(Adam::<f32>::new(1e-3)).shuffle(Shuffle::Blocks {
///     block_rows: 4096,
///     buffer_blocks: 16,
/// });
/// # let _ = trainer;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub enum Shuffle {
    /// Every epoch reshuffles the order of all rows (the generator's Fisher-Yates shuffle
    /// of the previous epoch's order): the best mixing, one random read per row.
    #[default]
    Rows,
    /// Block shuffle (see above).
    Blocks {
        /// Consecutive rows read at once, `>= 1`.
        block_rows: usize,
        /// Blocks per shuffling buffer, `>= 1`.
        buffer_blocks: usize,
    },
}

impl Shuffle {
    /// The block shuffle's defaults, used for sources that are not in memory when the
    /// trainer is given no [`Shuffle`]: 1024 rows per block, 32 blocks per buffer.
    pub const BLOCKS: Shuffle = Shuffle::Blocks {
        block_rows: 1024,
        buffer_blocks: 32,
    };

    /// Checks the settings.
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperparameter`] if `block_rows` or `buffer_blocks` is 0.
    pub fn validate(&self) -> Result<()> {
        if let Shuffle::Blocks {
            block_rows,
            buffer_blocks,
        } = *self
        {
            check_range(
                "block_rows",
                block_rows as f64,
                block_rows >= 1,
                "at least 1",
            )?;
            check_range(
                "buffer_blocks",
                buffer_blocks as f64,
                buffer_blocks >= 1,
                "at least 1",
            )?;
        }
        Ok(())
    }
}

/// How one epoch of `n` rows splits into the windows the read-ahead thread fills: the
/// shuffled units are rows (`Rows`, windows of `batch` rows read by index) or blocks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    /// Rows of the data set.
    pub(crate) n: usize,
    /// Rows per shuffled unit: 1 for `Rows`, `block_rows` for `Blocks`.
    pub(crate) unit_rows: usize,
    /// Units per window.
    pub(crate) window_units: usize,
    /// Whether rows are shuffled within a window (`Blocks`).
    pub(crate) mix: bool,
}

impl Layout {
    /// The layout of `shuffle` on `n >= 1` rows in batches of `batch >= 1` rows.
    pub(crate) fn new(shuffle: Shuffle, n: usize, batch: usize) -> Layout {
        match shuffle {
            Shuffle::Rows => Layout {
                n,
                unit_rows: 1,
                window_units: batch.min(n),
                mix: false,
            },
            Shuffle::Blocks {
                block_rows,
                buffer_blocks,
            } => {
                let block_rows = block_rows.min(n);
                Layout {
                    n,
                    unit_rows: block_rows,
                    window_units: buffer_blocks.min(n.div_ceil(block_rows)),
                    mix: true,
                }
            }
        }
    }

    /// Number of shuffled units: rows, or blocks (the last may be shorter).
    pub(crate) fn n_units(&self) -> usize {
        self.n.div_ceil(self.unit_rows)
    }

    /// Number of windows in an epoch.
    pub(crate) fn n_windows(&self) -> usize {
        self.n_units().div_ceil(self.window_units)
    }

    /// Rows a window holds at most.
    pub(crate) fn window_rows(&self) -> usize {
        self.unit_rows.saturating_mul(self.window_units).min(self.n)
    }

    /// The rows of unit `u`: `(first row, count)`.
    pub(crate) fn unit(&self, u: usize) -> (usize, usize) {
        let start = u * self.unit_rows;
        (start, self.unit_rows.min(self.n - start))
    }
}
