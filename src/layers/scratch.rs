//! Scratch buffers of the image layers: one per fixed block of a batch, so the blocks run on
//! any thread without sharing, grown at the first batch and reused after (no allocation per
//! step). Not saved, not cloned (a clone starts empty).

use std::sync::{Mutex, PoisonError};

use crate::compute::ROW_BLOCKS;
use crate::float::Float;

/// One growable buffer per block of rows (see `compute::row_blocks`).
#[derive(Debug, Default)]
pub(crate) struct Scratch<T>([Mutex<Vec<T>>; ROW_BLOCKS]);

impl<T> Clone for Scratch<T> {
    fn clone(&self) -> Self {
        Scratch(Default::default())
    }
}

impl<T: Float> Scratch<T> {
    /// Runs `f` on block `block`'s buffer cut to `len` elements (grown with zeros the first
    /// time; the contents are whatever the last user left).
    pub(crate) fn with<R>(&self, block: usize, len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
        let mut buf = self.0[block].lock().unwrap_or_else(PoisonError::into_inner);
        if buf.len() < len {
            buf.resize(len, T::zero());
        }
        f(&mut buf[..len])
    }

    /// Sets the first `len` elements of every block's buffer to 0 (partial sums, before a
    /// pass).
    pub(crate) fn zero(&self, len: usize) {
        for block in 0..ROW_BLOCKS {
            self.with(block, len, |p| p.fill(T::zero()));
        }
    }

    /// Adds the first `sum.len()` elements of every block's buffer into `sum`, in block
    /// order (the blocks' partial sums, after a pass).
    pub(crate) fn add_into(&self, sum: &mut [T]) {
        for block in 0..ROW_BLOCKS {
            self.with(block, sum.len(), |p| {
                sum.iter_mut().zip(p.iter()).for_each(|(s, &p)| *s += p)
            });
        }
    }

    /// Empties every block's buffer (keeping its memory), before a pass that appends.
    pub(crate) fn clear(&self) {
        for cell in &self.0 {
            cell.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }

    /// Appends `len` elements to block `block`'s buffer and runs `f` on them (no
    /// allocation once the buffer has grown to a pass's size).
    pub(crate) fn append(&self, block: usize, len: usize, f: impl FnOnce(&mut [T])) {
        let mut buf = self.0[block].lock().unwrap_or_else(PoisonError::into_inner);
        let at = buf.len();
        buf.resize(at + len, T::zero());
        f(&mut buf[at..]);
    }

    /// Runs `f` on each block's buffer, in block order.
    pub(crate) fn each(&self, mut f: impl FnMut(&[T])) {
        for cell in &self.0 {
            f(&cell.lock().unwrap_or_else(PoisonError::into_inner));
        }
    }
}
