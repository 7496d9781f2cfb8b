//! Read-ahead: a helper thread reads the next window of rows (a shuffling buffer of the
//! block shuffle, or the next batch's rows under the row shuffle) from a [`RowSource`]
//! while the training step computes on the current one.
//!
//! Two windows, allocated once per run, go back and forth between the threads through one
//! mutex and condition variable (no channel: nothing is allocated per step, on either
//! thread). The reader thread lives as long as the run; each epoch hands it the epoch's
//! unit order (moved, not copied) and a seed for the shuffles within windows, and it hands
//! the order back when the epoch's windows are read.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ndarray::{s, Array2, ArrayView2};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::budget::check_elements;
use crate::data::source::RowSource;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::train::shuffle::Layout;

/// Windows in flight: one the step reads from, one the helper thread fills.
const WINDOWS: usize = 2;

/// Checks the rows of a window as they are read: `(rows, first row of the source)`.
pub(crate) type RowCheck<'a, T> = dyn Fn(ArrayView2<T>, usize) -> Result<()> + Sync + 'a;

/// Rows read from the source, and the order in which the epoch visits them.
#[derive(Debug)]
pub(crate) struct Window<T> {
    /// `(window_rows, width)`: the rows, `len` of them in use.
    data: Array2<T>,
    /// The visiting order of rows `0..len` (a permutation, or `0..len` in order).
    perm: Vec<usize>,
    /// Rows in use.
    len: usize,
    /// Rows already handed to batches.
    pos: usize,
}

/// What the reader thread reads in one epoch.
struct Job {
    /// The epoch's unit order (rows or blocks), moved in and handed back.
    order: Vec<usize>,
    /// Seed of the shuffles within windows.
    seed: u64,
}

/// What the two threads share, behind the mutex.
struct Slots<T> {
    /// Windows the reader may fill.
    free: Vec<Window<T>>,
    /// Windows filled, in epoch order.
    full: VecDeque<Window<T>>,
    /// The epoch to read, until the reader takes it.
    job: Option<Job>,
    /// The order of the epoch read, handed back.
    done: Option<Vec<usize>>,
    /// A failed read: the reader stops the epoch.
    error: Option<Error>,
    /// Set by the training thread: stop the epoch (`abort`) or the thread (`quit`).
    abort: bool,
    quit: bool,
    /// Set by the reader once running (its start-up allocations are behind it).
    ready: bool,
}

/// The read-ahead of one run.
pub(crate) struct Feed<T> {
    layout: Layout,
    slots: Mutex<Slots<T>>,
    changed: Condvar,
    /// Time the training thread waited for rows in the current epoch.
    waited: Mutex<Duration>,
}

impl<T: Float> Feed<T> {
    /// The read-ahead for `layout` on rows `width` wide: allocates its windows.
    ///
    /// # Errors
    /// [`Error::TooLarge`] if the windows exceed the memory limit.
    pub(crate) fn new(layout: Layout, width: usize) -> Result<Feed<T>> {
        let rows = layout.window_rows();
        check_elements::<T>("read-ahead buffers", &[WINDOWS, rows, width])?;
        check_elements::<usize>("read-ahead orders", &[WINDOWS, rows])?;
        let free = (0..WINDOWS)
            .map(|_| Window {
                data: Array2::zeros((rows, width)),
                perm: vec![0; rows],
                len: 0,
                pos: 0,
            })
            .collect();
        Ok(Feed {
            layout,
            slots: Mutex::new(Slots {
                free,
                full: VecDeque::with_capacity(WINDOWS),
                job: None,
                done: None,
                error: None,
                abort: false,
                quit: false,
                ready: false,
            }),
            changed: Condvar::new(),
            waited: Mutex::new(Duration::ZERO),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Slots<T>> {
        // A panic on the other thread is a bug; its state is still consistent.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, Slots<T>>) -> MutexGuard<'a, Slots<T>> {
        self.changed.wait(guard).unwrap_or_else(|e| e.into_inner())
    }

    /// The reader thread's body: reads each epoch's windows from `source` until told to
    /// quit, checking their rows with `check`.
    pub(crate) fn read<S: RowSource<T> + ?Sized>(&self, source: &S, check: &RowCheck<'_, T>) {
        let mut slots = self.lock();
        slots.ready = true;
        self.changed.notify_all();
        loop {
            while slots.job.is_none() && !slots.quit {
                slots = self.wait(slots);
            }
            let Some(job) = slots.job.take() else { return };
            drop(slots);
            let order = self.read_epoch(source, check, job);
            slots = self.lock();
            slots.done = Some(order);
            self.changed.notify_all();
        }
    }

    /// Reads the windows of one epoch in turn; returns the order it was given.
    fn read_epoch<S: RowSource<T> + ?Sized>(
        &self,
        source: &S,
        check: &RowCheck<'_, T>,
        job: Job,
    ) -> Vec<usize> {
        let layout = self.layout;
        let mut rng = ChaCha8Rng::seed_from_u64(job.seed);
        for w in 0..layout.n_windows() {
            let mut slots = self.lock();
            while slots.free.is_empty() && !slots.abort && !slots.quit {
                slots = self.wait(slots);
            }
            if slots.abort || slots.quit {
                break;
            }
            let Some(mut window) = slots.free.pop() else {
                break;
            };
            drop(slots);
            let units = &job.order[w * layout.window_units..];
            let units = &units[..layout.window_units.min(units.len())];
            let result = fill(&layout, source, check, units, &mut window, &mut rng);
            let mut slots = self.lock();
            match result {
                Ok(()) => slots.full.push_back(window),
                Err(e) => {
                    slots.free.push(window);
                    slots.error = Some(e);
                }
            }
            self.changed.notify_all();
            if slots.error.is_some() {
                break;
            }
        }
        job.order
    }

    /// Whether rows are shuffled within windows (block shuffle): the epoch then draws a
    /// seed for it.
    pub(crate) fn mixes(&self) -> bool {
        self.layout.mix
    }

    /// Waits until the reader thread runs.
    pub(crate) fn wait_ready(&self) {
        let mut slots = self.lock();
        while !slots.ready {
            slots = self.wait(slots);
        }
    }

    /// Starts an epoch over the units in `order` (moved to the reader), with `seed` for
    /// the shuffles within windows.
    pub(crate) fn start_epoch(&self, order: &mut Vec<usize>, seed: u64) {
        let mut slots = self.lock();
        slots.abort = false;
        slots.done = None;
        slots.job = Some(Job {
            order: std::mem::take(order),
            seed,
        });
        *self.waited.lock().unwrap_or_else(|e| e.into_inner()) = Duration::ZERO;
        self.changed.notify_all();
    }

    /// Copies the next `out.nrows()` rows of the epoch into `out`, through `copy(window,
    /// rows, out_part)`, taking new windows from the reader as the current one runs out.
    ///
    /// # Errors
    /// The reader's error, if a read failed.
    pub(crate) fn next_rows(
        &self,
        current: &mut Option<Window<T>>,
        m: usize,
        mut copy: impl FnMut(ArrayView2<T>, &[usize], usize),
    ) -> Result<()> {
        let mut filled = 0;
        while filled < m {
            let window = match current {
                Some(w) if w.pos < w.len => w,
                _ => {
                    let spent = current.take();
                    *current = Some(self.next_window(spent)?);
                    current.as_mut().expect("just set")
                }
            };
            let take = (m - filled).min(window.len - window.pos);
            let rows = &window.perm[window.pos..window.pos + take];
            copy(window.data.view(), rows, filled);
            window.pos += take;
            filled += take;
        }
        Ok(())
    }

    /// Hands `spent` back to the reader and waits for the next filled window.
    fn next_window(&self, spent: Option<Window<T>>) -> Result<Window<T>> {
        let mut slots = self.lock();
        if let Some(w) = spent {
            slots.free.push(w);
            self.changed.notify_all();
        }
        let start = Instant::now();
        loop {
            if let Some(w) = slots.full.pop_front() {
                drop(slots);
                *self.waited.lock().unwrap_or_else(|e| e.into_inner()) += start.elapsed();
                return Ok(w);
            }
            if let Some(e) = slots.error.take() {
                return Err(e);
            }
            slots = self.wait(slots);
        }
    }

    /// Ends the epoch: takes back the last window and the epoch's order (into `order`).
    /// After an error, stops the reader's epoch first.
    pub(crate) fn end_epoch(&self, current: &mut Option<Window<T>>, order: &mut Vec<usize>) {
        let mut slots = self.lock();
        if let Some(w) = current.take() {
            slots.free.push(w);
        }
        slots.abort = true;
        self.changed.notify_all();
        loop {
            if let Some(o) = slots.done.take() {
                *order = o;
                break;
            }
            if slots.quit {
                return;
            }
            slots = self.wait(slots);
        }
        while let Some(w) = slots.full.pop_front() {
            slots.free.push(w);
        }
        slots.error = None;
    }

    /// Seconds the training thread waited for rows since the epoch started.
    pub(crate) fn waited(&self) -> f64 {
        self.waited
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_secs_f64()
    }

    /// Tells the reader thread to end.
    pub(crate) fn quit(&self) {
        let mut slots = self.lock();
        slots.quit = true;
        self.changed.notify_all();
    }
}

/// Reads `units` into `window` and sets its visiting order: for rows (`layout.mix`
/// false), the rows by index, visited in order; for blocks, each block in turn, its rows
/// then shuffled with `rng`. Checks the rows read with `check`.
fn fill<T: Float, S: RowSource<T> + ?Sized>(
    layout: &Layout,
    source: &S,
    check: &RowCheck<'_, T>,
    units: &[usize],
    window: &mut Window<T>,
    rng: &mut ChaCha8Rng,
) -> Result<()> {
    let len = if layout.mix {
        let mut at = 0;
        for &u in units {
            let (start, rows) = layout.unit(u);
            let mut part = window.data.slice_mut(s![at..at + rows, ..]);
            source.read_rows(start, part.view_mut())?;
            check(part.view(), start)?;
            at += rows;
        }
        at
    } else {
        let rows = units.len();
        let mut part = window.data.slice_mut(s![..rows, ..]);
        source.gather(units, part.view_mut())?;
        for (r, &i) in units.iter().enumerate() {
            check(part.slice(s![r..r + 1, ..]), i)?;
        }
        rows
    };
    let perm = &mut window.perm[..len];
    for (i, p) in perm.iter_mut().enumerate() {
        *p = i;
    }
    if layout.mix {
        perm.shuffle(rng);
    }
    window.len = len;
    window.pos = 0;
    Ok(())
}
