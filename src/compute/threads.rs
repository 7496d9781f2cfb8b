//! How many threads the matrix products use, and the threads themselves.
//!
//! With the default `threading` feature, a large product ([`gemm`](super::gemm::gemm)) is
//! split over up to [`MAX_THREADS`] threads, by default one per core. Each thread writes
//! its own block of the output and the inner sums run in the same order whatever the thread
//! count, so results are identical bit for bit for any number of threads. The helper
//! threads are started at the first product that needs them (each reserves its packing
//! buffer, `pack.rs`, as it starts) and then wait for work (spinning for a moment after
//! each product, then asleep), so a product allocates nothing and starts no thread. The
//! parts of a job are claimed by whichever thread is free, the calling thread included, so
//! a helper that another program keeps off its core delays little. The same threads run the
//! element-wise work of large batches ([`for_each_block`]) in fixed blocks of rows. With
//! the `blas` feature the products run in OpenBLAS, whose thread count [`set_threads`] sets
//! through `openblas_set_num_threads`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ndarray::{ArrayView2, ArrayViewMut2, Axis};

use super::pack::reserve_packing_buffer;
use crate::error::{check_range, Result};

/// The most threads a matrix product uses.
pub const MAX_THREADS: usize = 4;

static REQUESTED: AtomicUsize = AtomicUsize::new(0);

/// Sets the number of threads matrix products use, `1..=`[`MAX_THREADS`], from the next
/// product on. Without the `threading` feature products always use one thread.
///
/// Setting `AUTOENCODER_THREADS` in the environment before the first product does the same
/// without code.
///
/// ```
/// autoencoder::set_threads(1)?;
/// # Ok::<(), autoencoder::Error>(())
/// ```
///
/// # Errors
/// [`crate::Error::InvalidHyperparameter`] unless `1 <= n <= 4`.
pub fn set_threads(n: usize) -> Result<()> {
    check_range(
        "threads",
        n as f64,
        (1..=MAX_THREADS).contains(&n),
        "a whole number in [1, 4]",
    )?;
    REQUESTED.store(n, Ordering::Relaxed);
    #[cfg(feature = "blas")]
    // SAFETY: OpenBLAS's documented setter; it takes any positive count.
    unsafe {
        openblas_set_num_threads(n as std::os::raw::c_int)
    };
    Ok(())
}

#[cfg(feature = "blas")]
extern "C" {
    fn openblas_set_num_threads(n: std::os::raw::c_int);
    fn openblas_get_num_threads() -> std::os::raw::c_int;
}

/// The number of threads matrix products use: the value given to [`set_threads`], else
/// `AUTOENCODER_THREADS`, else the number of cores, capped at [`MAX_THREADS`]; always 1
/// without the `threading` feature. With `blas`, OpenBLAS's own count.
///
/// ```
/// let n = autoencoder::threads();
/// assert!((1..=autoencoder::MAX_THREADS).contains(&n) || cfg!(feature = "blas"));
/// ```
pub fn threads() -> usize {
    #[cfg(feature = "blas")]
    {
        // SAFETY: OpenBLAS's documented getter, no arguments.
        return unsafe { openblas_get_num_threads() }.max(1) as usize;
    }
    #[allow(unreachable_code)]
    if !cfg!(feature = "threading") {
        return 1;
    }
    let n = match REQUESTED.load(Ordering::Relaxed) {
        0 => {
            let n = std::env::var("AUTOENCODER_THREADS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .clamp(1, MAX_THREADS);
            REQUESTED.store(n, Ordering::Relaxed); // read the environment once
            n
        }
        n => n,
    };
    n.clamp(1, MAX_THREADS)
}

/// Runs `job(0)`, ..., `job(parts - 1)` on the calling thread and up to `threads() - 1`
/// helper threads, and returns when all have finished. Parts are claimed one at a time by
/// whichever thread is free, so when a helper is slow to wake (the machine is busy), the
/// calling thread runs its parts too instead of waiting. Allocates nothing once the
/// helpers exist. If another thread is using the pool (two models trained at once), the
/// parts run one after another on the calling thread: same results, no waiting.
///
/// # Panics
/// If a part panicked (an internal invariant: the jobs are the crate's own).
pub(crate) fn run_parallel(parts: usize, job: &(dyn Fn(usize) + Sync)) {
    let exclusive = match POOL.busy.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    };
    let wanted = threads().min(parts).saturating_sub(1);
    let helpers = match exclusive {
        Some(_) if wanted > 0 && parts < CLAIM_PARTS => POOL.start_helpers(wanted),
        _ => 0,
    };
    if helpers == 0 {
        (0..parts).for_each(job);
        return;
    }
    // SAFETY: helpers call `job` only for parts they claimed in this generation, and the
    // wait below returns once every part has finished; only the lifetime is erased.
    let erased: *const (dyn Fn(usize) + Sync + 'static) = unsafe { std::mem::transmute(job) };
    let generation = {
        let mut state = POOL.lock();
        state.job = Some(JobRef(erased));
        state.parts = parts;
        state.generation += 1;
        POOL.finished.store(0, Ordering::Relaxed);
        POOL.claim
            .store(state.generation * CLAIM_PARTS as u64, Ordering::Release);
        POOL.generation.store(state.generation, Ordering::Release);
        state.generation
    };
    POOL.wake.notify_all();
    let mut mine = Ok(());
    while let Some(part) = POOL.claim_part(generation, parts) {
        let result = catch_unwind(AssertUnwindSafe(|| job(part)));
        POOL.finished.fetch_add(1, Ordering::AcqRel);
        mine = mine.and(result);
    }
    spin_until(|| POOL.finished.load(Ordering::Acquire) == parts);
    let mut state = POOL.lock();
    while POOL.finished.load(Ordering::Acquire) != parts {
        state = POOL
            .done
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner);
    }
    state.job = None;
    let helper_panicked = std::mem::take(&mut state.panicked);
    drop(state);
    if let Err(panic) = mine {
        std::panic::resume_unwind(panic);
    }
    assert!(!helper_panicked, "a matrix-product thread panicked");
}

/// `Pool::claim` holds `generation * CLAIM_PARTS + next part`: at most this many parts.
const CLAIM_PARTS: usize = 1 << 16;

/// Element-wise work over a batch is cut into this many blocks of consecutive rows, whatever
/// the thread count, so sums over the blocks come out the same bits for any count.
pub(crate) const ROW_BLOCKS: usize = 8;

/// Below this many elements, element-wise work stays on the calling thread (waking a thread
/// costs about as much as a few thousand elements of work).
const PARALLEL_ELEMENTS: usize = 1 << 15;

/// Runs `job` on each of the [`ROW_BLOCKS`] `parts` (from [`row_blocks`] and
/// [`row_blocks_mut`]), spread over the threads when there are at least `PARALLEL_ELEMENTS`
/// `elements` in all; returns the sum of what the jobs return, added in block order.
/// Allocates nothing.
pub(crate) fn for_each_block<P: Send>(
    elements: usize,
    parts: [P; ROW_BLOCKS],
    job: impl Fn(P) -> f64 + Sync,
) -> f64 {
    let cells = parts.map(|part| Mutex::new((Some(part), 0.0)));
    let run = |block: usize| {
        let mut cell = cells[block].lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(part) = cell.0.take() {
            cell.1 = job(part);
        }
    };
    if elements < PARALLEL_ELEMENTS {
        (0..ROW_BLOCKS).for_each(run);
    } else {
        run_parallel(ROW_BLOCKS, &run);
    }
    cells
        .iter()
        .map(|cell| cell.lock().unwrap_or_else(PoisonError::into_inner).1)
        .sum()
}

/// `view`'s rows cut into [`ROW_BLOCKS`] consecutive blocks: block `b` holds rows
/// `n b / 8 .. n (b + 1) / 8` of `n`.
pub(crate) fn row_blocks<T>(view: ArrayView2<'_, T>) -> [ArrayView2<'_, T>; ROW_BLOCKS] {
    let rows = view.nrows();
    cut(view, rows, |v, at| v.split_at(Axis(0), at))
}

/// [`row_blocks`] of a mutable view.
pub(crate) fn row_blocks_mut<T>(view: ArrayViewMut2<'_, T>) -> [ArrayViewMut2<'_, T>; ROW_BLOCKS] {
    let rows = view.nrows();
    cut(view, rows, |v, at| v.split_at(Axis(0), at))
}

/// [`row_blocks`] of a slice (say, the row indices of a batch).
pub(crate) fn slice_blocks<T>(slice: &[T]) -> [&[T]; ROW_BLOCKS] {
    cut(slice, slice.len(), |s, at| s.split_at(at))
}

/// [`slice_blocks`] of a mutable slice.
pub(crate) fn slice_blocks_mut<T>(slice: &mut [T]) -> [&mut [T]; ROW_BLOCKS] {
    let len = slice.len();
    cut(slice, len, |s, at| s.split_at_mut(at))
}

fn cut<V>(mut view: V, rows: usize, split: impl Fn(V, usize) -> (V, V)) -> [V; ROW_BLOCKS] {
    let mut blocks: [Option<V>; ROW_BLOCKS] = Default::default();
    for b in (1..ROW_BLOCKS).rev() {
        let (head, tail) = split(view, rows * b / ROW_BLOCKS);
        blocks[b] = Some(tail);
        view = head;
    }
    blocks[0] = Some(view);
    blocks.map(|b| b.expect("every block is set above"))
}

/// Blocks of two arrays side by side.
pub(crate) fn zip_blocks<A, B>(a: [A; ROW_BLOCKS], b: [B; ROW_BLOCKS]) -> [(A, B); ROW_BLOCKS] {
    let mut b = b.map(Some);
    let mut i = 0;
    a.map(|a| {
        i += 1;
        (a, b[i - 1].take().expect("as many blocks in b as in a"))
    })
}

/// How long a thread spins waiting for a product's other parts, or a helper for the next
/// product, before it sleeps: long enough to span the element-wise work between two
/// products of a training step.
const SPIN: Duration = Duration::from_micros(200);

/// Spins until `done()` or [`SPIN`] has passed (reading the clock and yielding the core
/// to any other runnable thread every 64 tries).
fn spin_until(done: impl Fn() -> bool) {
    let start = Instant::now();
    for tries in 1u32.. {
        if done() {
            return;
        }
        if tries % 64 == 0 {
            if start.elapsed() > SPIN {
                return;
            }
            std::thread::yield_now();
        }
        std::hint::spin_loop();
    }
}

/// The helper threads: one job at a time, handed over under `state`.
struct Pool {
    /// Held for the whole of a parallel job: one user of the helpers at a time.
    busy: Mutex<()>,
    state: Mutex<State>,
    /// Signalled when a job is posted.
    wake: Condvar,
    /// Signalled when a helper finishes the job's last part.
    done: Condvar,
    /// `state.generation`, readable without the lock (helpers spin on it).
    generation: AtomicU64,
    /// `generation * CLAIM_PARTS + the next unclaimed part`: a part is claimed by raising
    /// it, only while the generation is the claimer's.
    claim: AtomicU64,
    /// Parts of the current job finished.
    finished: AtomicUsize,
}

struct State {
    job: Option<JobRef>,
    parts: usize,
    generation: u64,
    helpers: usize,
    panicked: bool,
}

#[derive(Clone, Copy)]
struct JobRef(*const (dyn Fn(usize) + Sync + 'static));

// SAFETY: the pointee is `Sync`; `run_parallel` keeps it alive while helpers use it.
unsafe impl Send for JobRef {}

static POOL: Pool = Pool {
    busy: Mutex::new(()),
    state: Mutex::new(State {
        job: None,
        parts: 0,
        generation: 0,
        helpers: 0,
        panicked: false,
    }),
    wake: Condvar::new(),
    done: Condvar::new(),
    generation: AtomicU64::new(0),
    claim: AtomicU64::new(0),
    finished: AtomicUsize::new(0),
};

impl Pool {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claims the next part of job `generation` (of `parts`), if any is left.
    fn claim_part(&self, generation: u64, parts: usize) -> Option<usize> {
        let base = generation * CLAIM_PARTS as u64;
        self.claim
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                (c >= base && c < base + parts as u64).then_some(c + 1)
            })
            .ok()
            .map(|c| (c - base) as usize)
    }

    /// Starts helpers until there are `wanted` (or the system refuses a thread); returns
    /// how many there are, at most `wanted`.
    fn start_helpers(&'static self, wanted: usize) -> usize {
        let mut state = self.lock();
        while state.helpers < wanted {
            let seen = state.generation;
            let started = std::thread::Builder::new()
                .name(format!("autoencoder-gemm-{}", state.helpers + 1))
                .spawn(move || self.helper(seen));
            if started.is_err() {
                break;
            }
            state.helpers += 1;
        }
        state.helpers.min(wanted)
    }

    /// A helper's life: wait for a job newer than `seen`, run parts of it while any are
    /// unclaimed, report, repeat.
    fn helper(&self, mut seen: u64) {
        reserve_packing_buffer();
        loop {
            spin_until(|| self.generation.load(Ordering::Acquire) != seen);
            let mut state = self.lock();
            while state.generation == seen {
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            seen = state.generation;
            let (job, parts) = (state.job, state.parts);
            drop(state);
            let Some(JobRef(job)) = job else {
                continue;
            };
            while let Some(part) = self.claim_part(seen, parts) {
                // SAFETY: the part was claimed in this generation, so the poster is still
                // waiting for it and the job is alive.
                let ok = catch_unwind(AssertUnwindSafe(|| unsafe { (*job)(part) })).is_ok();
                if !ok {
                    self.lock().panicked = true;
                }
                if self.finished.fetch_add(1, Ordering::AcqRel) + 1 == parts {
                    let _state = self.lock();
                    self.done.notify_all();
                }
            }
        }
    }
}
