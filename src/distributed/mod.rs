//! Data-parallel training: several processes (ranks) train one model, each on its own part
//! of every batch, and add their gradients in a fixed order so that every rank takes the
//! same step and holds the same weights.
//!
//! The trainer needs only [`Communicator`]: the rank, the number of ranks, and an
//! all-gather of a byte buffer. Two implementations come with the crate: [`Local`], ranks
//! as threads of one process (tests, and trying a run without MPI), and, behind the Cargo
//! feature `mpi`, `distributed::Mpi` over the system's MPI library. A run without a
//! communicator (the default) never touches this module.
//!
//! # What one step exchanges
//! A global batch of `M` rows is split into contiguous parts, rank `r` taking rows
//! `M r / R .. M (r + 1) / R` (integer division) of it. Each rank computes the gradient of
//! the mean loss over its `m_r` rows, multiplies it (and its loss terms) by `m_r / M`, and
//! all-gathers it with a status byte. Every rank then adds the `R` parts in rank order,
//! `((g_0 + g_1) + g_2) + ...`, so every rank computes the same bits and the sum is the
//! single-process gradient up to rounding; weight penalties are added once, after the
//! sum. This costs `R P` additions per rank for `P` parameters (a fixed-order ring
//! reduce-scatter plus all-gather would cost `2 P` and move `2 P (R - 1) / R` values per
//! rank instead of `P (R - 1)`; see the README's model of scaling).
//!
//! # Errors on one rank
//! A rank that fails (a row it cannot read, a checkpoint it cannot write) still takes part
//! in the exchange, with its status set; every rank then stops with the same
//! [`Error::RankFailed`] naming the lowest failing rank and its message (if every rank
//! failed, each returns its own error, the same on each when it is deterministic). No rank
//! waits for one that has left.

use std::ops::Range;
use std::sync::{Arc, Barrier, Mutex};

use crate::budget::check_buffer;
use crate::error::{check_range, Error, Result};
use crate::float::Float;
use crate::objective::activity::BatchSums;

#[cfg(feature = "mpi")]
mod mpi;
#[cfg(feature = "mpi")]
pub use self::mpi::Mpi;

/// A group of processes (ranks) that train one model together, as the trainer sees it
/// (see [`crate::Trainer::distributed`]).
///
/// Implement it to run over another transport: every rank of the group calls
/// [`Communicator::all_gather`] the same number of times, in the same order, with buffers
/// of the same length.
///
/// ```
/// use autoencoder::distributed::{Communicator, Local};
/// # fn main() -> autoencoder::Result<()> {
/// let group = Local::group(2)?;
/// let sums: Vec<u8> = std::thread::scope(|s| {
///     let handles: Vec<_> = group
///         .iter()
///         .map(|rank| {
///             s.spawn(move || {
///                 let mut all = [0u8; 2];
///                 rank.all_gather(&[10 + rank.rank() as u8], &mut all);
///                 all[0] + all[1]
///             })
///         })
///         .collect();
///     handles.into_iter().map(|h| h.join().unwrap()).collect()
/// });
/// assert_eq!(sums, [21, 21]);
/// # Ok(()) }
/// ```
pub trait Communicator: Send + Sync + std::fmt::Debug {
    /// This process's number in the group, `0 .. size()`.
    fn rank(&self) -> usize;

    /// Number of processes in the group, `>= 1`.
    fn size(&self) -> usize;

    /// All-gather: every rank passes `send` of the same length `n`; `recv` `(size() * n)`
    /// receives rank `r`'s buffer at `r n .. (r + 1) n`, on every rank. Blocks until every
    /// rank has called it.
    fn all_gather(&self, send: &[u8], recv: &mut [u8]);
}

/// Ranks as threads of one process: [`Local::group`] makes `size` communicators that share
/// one exchange buffer; give one to each thread. For tests and for trying a distributed
/// run without MPI (a run on `R` local ranks gives the same bits as one on `R` MPI ranks).
///
/// Every rank must keep calling until the run ends: a thread that panics leaves the
/// others waiting.
#[derive(Debug)]
pub struct Local {
    rank: usize,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    size: usize,
    barrier: Barrier,
    slots: Mutex<Vec<u8>>,
}

impl Local {
    /// `size` ranks, `0 .. size`, as one group.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] unless `size` is in `1 ..= 1024`.
    pub fn group(size: usize) -> Result<Vec<Local>> {
        check_range(
            "local group size",
            size as f64,
            (1..=1024).contains(&size),
            "1 to 1024 ranks",
        )?;
        let shared = Arc::new(Shared {
            size,
            barrier: Barrier::new(size),
            slots: Mutex::new(Vec::new()),
        });
        Ok((0..size)
            .map(|rank| Local {
                rank,
                shared: Arc::clone(&shared),
            })
            .collect())
    }
}

impl Communicator for Local {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.shared.size
    }

    fn all_gather(&self, send: &[u8], recv: &mut [u8]) {
        let (n, size) = (send.len(), self.shared.size);
        assert_eq!(
            recv.len(),
            n * size,
            "all_gather: recv must be size * send long"
        );
        let lock = || self.shared.slots.lock().unwrap_or_else(|e| e.into_inner());
        {
            let mut slots = lock();
            if slots.len() < n * size {
                slots.resize(n * size, 0); // grows once per message size
            }
            slots[self.rank * n..(self.rank + 1) * n].copy_from_slice(send);
        }
        self.shared.barrier.wait(); // every rank has written
        recv.copy_from_slice(&lock()[..n * size]);
        self.shared.barrier.wait(); // every rank has read: the slots may be reused
    }
}

/// Rows `m r / R .. m (r + 1) / R` of a batch of `m` rows: rank `r`'s part of it, for `R`
/// ranks. The parts are contiguous, cover the batch, and differ in size by at most one.
pub fn part(m: usize, rank: usize, size: usize) -> Range<usize> {
    (m * rank / size)..(m * (rank + 1) / size)
}

/// Bytes of the agreement message: a status byte, two length bytes, the message.
const NOTE: usize = 1024;

/// Agrees on `local`, this rank's outcome of some work every rank did (reading its data,
/// writing a file): returns `local` if every rank succeeded; else, on every rank,
/// [`Error::RankFailed`] naming the lowest failing rank and its error's message (the first
/// 1000 bytes), or each rank's own error if every rank failed. Every rank of the group must
/// call it. The trainer uses it before the first epoch and after each checkpoint; call it
/// around your own per-rank work so that no rank goes on (and waits) alone.
///
/// One all-gather of 1024 bytes per rank (it allocates, and is not meant for every step).
///
/// ```
/// use autoencoder::distributed::{agree, Local};
/// use autoencoder::Error;
/// # fn main() -> autoencoder::Result<()> {
/// let results: Vec<_> = std::thread::scope(|s| {
///     let ranks: Vec<_> = Local::group(2)?
///         .into_iter()
///         .map(|comm| {
///             s.spawn(move || {
///                 let mine = match autoencoder::distributed::Communicator::rank(&comm) {
///                     1 => Err(Error::InvalidConfig("no data on this host".into())),
///                     _ => Ok(()),
///                 };
///                 agree(&comm, mine)
///             })
///         })
///         .collect();
///     Ok::<_, Error>(ranks.into_iter().map(|h| h.join().unwrap()).collect())
/// })?;
/// for r in results {
///     assert!(matches!(r, Err(Error::RankFailed { rank: 1, .. })));
/// }
/// # Ok(()) }
/// ```
pub fn agree<V>(comm: &dyn Communicator, local: Result<V>) -> Result<V> {
    let mut note = vec![0u8; NOTE];
    if let Err(e) = &local {
        let text = e.to_string();
        let mut len = text.len().min(NOTE - 3);
        while !text.is_char_boundary(len) {
            len -= 1;
        }
        note[0] = 1;
        note[1..3].copy_from_slice(&(len as u16).to_le_bytes());
        note[3..3 + len].copy_from_slice(&text.as_bytes()[..len]);
    }
    let mut all = vec![0u8; NOTE * comm.size()];
    comm.all_gather(&note, &mut all);
    let notes = || all.chunks_exact(NOTE);
    if notes().all(|n| n[0] == 0) || notes().all(|n| n[0] != 0) {
        return local;
    }
    let (rank, n) = notes()
        .enumerate()
        .find(|(_, n)| n[0] != 0)
        .expect("some rank failed");
    let len = usize::from(u16::from_le_bytes([n[1], n[2]])).min(NOTE - 3);
    Err(Error::RankFailed {
        rank,
        message: String::from_utf8_lossy(&n[3..3 + len]).into_owned(),
    })
}

/// The per-step exchange of a distributed run: the buffers, allocated once per run, and
/// the current batch's part.
///
/// Layout of one rank's message: 8 status bytes (the first is 1 if the rank failed), the
/// weighted loss terms as `f64` (reconstruction, then each penalty), then the weighted
/// gradients as `T`, in [`crate::Autoencoder`]'s parameter order.
#[derive(Debug)]
pub(crate) struct Exchange {
    comm: Arc<dyn Communicator>,
    /// `(width)`: this rank's message.
    send: Vec<u8>,
    /// `(size, width)`: every rank's message, in rank order.
    recv: Vec<u8>,
    /// Rows of the current global batch, and this rank's part of them.
    rows: usize,
    part: Range<usize>,
    /// Write and read position in the gradient section, in bytes.
    at: usize,
    /// `(units)` and `(size, units)` `f64`s as bytes: per-unit sums over the global batch
    /// (KL sparsity's mean activation), as wide as the widest layer such a penalty reads.
    stats_send: Vec<u8>,
    stats_recv: Vec<u8>,
}

/// Bytes before the terms.
const STATUS: usize = 8;

impl Exchange {
    /// The buffers for `n_params` parameters of `T`, `n_terms` loss terms, and per-unit
    /// sums of up to `units` units.
    ///
    /// # Errors
    /// [`Error::TooLarge`] if `size` messages do not fit the memory limit.
    pub(crate) fn new<T: Float>(
        comm: Arc<dyn Communicator>,
        n_params: usize,
        n_terms: usize,
        units: usize,
    ) -> Result<Self> {
        let width = n_params
            .checked_mul(std::mem::size_of::<T>())
            .and_then(|b| b.checked_add(STATUS + 8 * n_terms))
            .unwrap_or(usize::MAX);
        // This rank's message and every rank's: (size + 1) messages.
        let size = comm.size();
        check_buffer(
            "distributed exchange buffers",
            &[size.saturating_add(1), width],
            1,
        )?;
        check_buffer(
            "distributed batch sums",
            &[size.saturating_add(1), units],
            8,
        )?;
        Ok(Exchange {
            stats_send: vec![0; 8 * units],
            stats_recv: vec![0; 8 * units * size],
            send: vec![0; width],
            recv: vec![0; width * size],
            comm,
            rows: 0,
            part: 0..0,
            at: 0,
        })
    }

    /// The communicator.
    pub(crate) fn comm(&self) -> &dyn Communicator {
        &*self.comm
    }

    /// Starts a global batch of `rows` rows; returns this rank's part of it.
    pub(crate) fn batch(&mut self, rows: usize) -> Range<usize> {
        self.rows = rows;
        self.part = part(rows, self.comm.rank(), self.comm.size());
        self.part.clone()
    }

    /// The current batch's rows, and this rank's part of them.
    pub(crate) fn part(&self) -> (usize, Range<usize>) {
        (self.rows, self.part.clone())
    }

    /// `m_r / M`: the weight of this rank's mean gradient in the global mean.
    pub(crate) fn share(&self) -> f64 {
        self.part.len() as f64 / self.rows.max(1) as f64
    }

    /// Writes the status and this rank's weighted loss terms; the gradients follow
    /// through [`Exchange::put`].
    pub(crate) fn begin(&mut self, failed: bool, reconstruction: f64, penalties: &[f64]) {
        let share = self.share();
        self.send[..STATUS].fill(0);
        self.send[0] = u8::from(failed);
        let terms = std::iter::once(reconstruction).chain(penalties.iter().copied());
        for (chunk, t) in self.send[STATUS..].chunks_exact_mut(8).zip(terms) {
            chunk.copy_from_slice(&(t * share).to_le_bytes());
        }
        self.at = STATUS + 8 * (1 + penalties.len());
    }

    /// Writes `grad * share` as this rank's part of the next gradient tensor.
    pub(crate) fn put<T: Float>(&mut self, grad: &[T]) {
        let share = T::cast(self.share());
        let bytes = std::mem::size_of::<T>();
        let end = self.at + std::mem::size_of_val(grad);
        for (chunk, &g) in self.send[self.at..end].chunks_exact_mut(bytes).zip(grad) {
            write(chunk, g * share);
        }
        self.at = end;
    }

    /// All-gathers the messages. Returns whether any rank failed.
    pub(crate) fn gather(&mut self, n_terms: usize) -> bool {
        self.comm.all_gather(&self.send, &mut self.recv);
        self.at = STATUS + 8 * n_terms;
        self.recv.chunks_exact(self.send.len()).any(|m| m[0] != 0)
    }

    /// The rank-order sums of the loss terms, into `reconstruction` and `penalties`.
    pub(crate) fn terms(&self, reconstruction: &mut f64, penalties: &mut [f64]) {
        let terms = std::iter::once(reconstruction).chain(penalties.iter_mut());
        for (i, t) in terms.enumerate() {
            let at = STATUS + 8 * i;
            *t = self
                .recv
                .chunks_exact(self.send.len())
                .fold(0.0, |s, m| s + f64::from_le_bytes(bytes8(&m[at..at + 8])));
        }
    }

    /// Writes into `grad` the rank-order sum of every rank's part of the next gradient
    /// tensor: `g_0 + g_1 + ... + g_{R-1}`, added left to right.
    pub(crate) fn take<T: Float>(&mut self, grad: &mut [T]) {
        let bytes = std::mem::size_of::<T>();
        let width = self.send.len();
        let (at, end) = (self.at, self.at + std::mem::size_of_val(grad));
        let mut messages = self.recv.chunks_exact(width);
        if let Some(first) = messages.next() {
            for (g, chunk) in grad.iter_mut().zip(first[at..end].chunks_exact(bytes)) {
                *g = read(chunk);
            }
        }
        for m in messages {
            for (g, chunk) in grad.iter_mut().zip(m[at..end].chunks_exact(bytes)) {
                *g += read::<T>(chunk);
            }
        }
        self.at = end;
    }
}

impl BatchSums for Exchange {
    /// All-gathers this rank's per-unit sums and replaces them by their rank-order sums.
    fn global(&mut self, sums: &mut [f64]) -> usize {
        let n = 8 * sums.len();
        let send = &mut self.stats_send[..n];
        for (chunk, s) in send.chunks_exact_mut(8).zip(sums.iter()) {
            chunk.copy_from_slice(&s.to_le_bytes());
        }
        let recv = &mut self.stats_recv[..n * self.comm.size()];
        self.comm.all_gather(send, recv);
        for (j, s) in sums.iter_mut().enumerate() {
            let at = 8 * j;
            *s = recv
                .chunks_exact(n)
                .fold(0.0, |t, m| t + f64::from_le_bytes(bytes8(&m[at..at + 8])));
        }
        self.rows
    }
}

fn bytes8(b: &[u8]) -> [u8; 8] {
    b.try_into().expect("8 bytes")
}

/// `x` as its little-endian bytes (4 for `f32`, 8 for `f64`); exact.
#[inline(always)]
fn write<T: Float>(out: &mut [u8], x: T) {
    if std::mem::size_of::<T>() == 4 {
        out.copy_from_slice(&(x.as_f64() as f32).to_le_bytes());
    } else {
        out.copy_from_slice(&x.as_f64().to_le_bytes());
    }
}

/// The value [`write`] wrote; exact.
#[inline(always)]
fn read<T: Float>(b: &[u8]) -> T {
    if std::mem::size_of::<T>() == 4 {
        T::cast(f64::from(f32::from_le_bytes(
            b.try_into().expect("4 bytes"),
        )))
    } else {
        T::cast(f64::from_le_bytes(bytes8(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_batch_in_order() {
        for m in 0..40 {
            for size in 1..7 {
                let parts: Vec<_> = (0..size).map(|r| part(m, r, size)).collect();
                assert_eq!(parts[0].start, 0);
                assert_eq!(parts[size - 1].end, m);
                for w in parts.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                }
                let lens: Vec<_> = parts.iter().map(|p| p.len()).collect();
                let (lo, hi) = (lens.iter().min().unwrap(), lens.iter().max().unwrap());
                assert!(hi - lo <= 1, "{m} rows over {size}: {lens:?}");
            }
        }
    }

    #[test]
    fn values_round_trip_through_bytes() {
        for x in [0.1f32, -3.5e-30, f32::INFINITY, f32::MAX] {
            let mut b = [0u8; 4];
            write(&mut b, x);
            assert_eq!(read::<f32>(&b).to_bits(), x.to_bits());
        }
        for x in [0.1f64, -3.5e-300, f64::NEG_INFINITY, f64::MIN_POSITIVE] {
            let mut b = [0u8; 8];
            write(&mut b, x);
            assert_eq!(read::<f64>(&b).to_bits(), x.to_bits());
        }
        let mut b = [0u8; 4];
        write(&mut b, f32::NAN);
        assert!(read::<f32>(&b).is_nan());
    }

    /// Runs `f(rank)` on each rank of a local group of `size`, on threads.
    fn on_ranks<V: Send>(size: usize, f: impl Fn(&Local) -> V + Sync) -> Vec<V> {
        let group = Local::group(size).unwrap();
        std::thread::scope(|s| {
            let handles: Vec<_> = group.iter().map(|c| s.spawn(|| f(c))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn exchange_sums_in_rank_order_with_shares() {
        // 3 ranks, a batch of 7 rows: parts of 2, 2, 3 rows, shares 2/7, 2/7, 3/7.
        let out = on_ranks(3, |c| {
            let comm: Arc<dyn Communicator> = Arc::new(Local {
                rank: c.rank,
                shared: Arc::clone(&c.shared),
            });
            let mut ex = Exchange::new::<f64>(comm, 2, 2, 0).unwrap();
            let part = ex.batch(7);
            let r = c.rank as f64;
            ex.begin(false, 1.0 + r, &[10.0 * r]);
            ex.put(&[r + 1.0, -r]);
            let failed = ex.gather(2);
            let (mut recon, mut pen) = (0.0f64, [0.0f64]);
            ex.terms(&mut recon, &mut pen);
            let mut g = [0.0f64; 2];
            ex.take(&mut g);
            (part, failed, recon, pen[0], g)
        });
        let shares: [f64; 3] = [2.0 / 7.0, 2.0 / 7.0, 3.0 / 7.0];
        let expect_recon = 1.0 * shares[0] + 2.0 * shares[1] + 3.0 * shares[2];
        let expect_g0 = (1.0 * shares[0] + 2.0 * shares[1]) + 3.0 * shares[2];
        let expect_g1 = (-0.0 * shares[0] - shares[1]) + -2.0 * shares[2];
        for (r, (part, failed, recon, pen, g)) in out.into_iter().enumerate() {
            assert_eq!(part, [0..2, 2..4, 4..7][r]);
            assert!(!failed);
            assert_eq!(recon.to_bits(), (0.0 + expect_recon).to_bits());
            assert_eq!(pen, (10.0 * shares[1]) + 20.0 * shares[2]);
            assert_eq!(g[0].to_bits(), expect_g0.to_bits());
            assert_eq!(g[1].to_bits(), expect_g1.to_bits());
        }
    }

    #[test]
    fn one_failing_rank_fails_every_rank_with_its_message() {
        let out = on_ranks(3, |c| {
            let local = match c.rank {
                1 => Err(Error::InvalidConfig("disk on fire".into())),
                _ => Ok(c.rank),
            };
            agree(c, local)
        });
        for result in out {
            match result {
                Err(Error::RankFailed { rank: 1, message }) => {
                    assert!(message.contains("disk on fire"), "{message}")
                }
                other => panic!("expected RankFailed from rank 1, got {other:?}"),
            }
        }
        // Every rank failing: each keeps its own (typed) error.
        let out = on_ranks(2, |c| {
            agree::<()>(c, Err(Error::InvalidConfig("same".into())))
        });
        assert!(out
            .iter()
            .all(|r| matches!(r, Err(Error::InvalidConfig(_)))));
        let out = on_ranks(2, |c| agree(c, Ok(c.rank)));
        assert_eq!(out.into_iter().collect::<Result<Vec<_>>>().unwrap(), [0, 1]);
    }
}
