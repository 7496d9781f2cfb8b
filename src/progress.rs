//! `Progress`: training progress for [`Trainer::on_batch`] / [`Trainer::on_epoch`], as a
//! bar per epoch on a terminal (feature `progress`, indicatif) or as plain lines otherwise
//! (CI logs, files, pipes).

use std::fmt;
use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::train::history::{BatchProgress, EpochRecord};
use crate::train::Trainer;

/// Where [`Progress`] writes and in which form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressOutput {
    /// A bar if standard error is a terminal and the `progress` feature is on, else lines.
    Auto,
    /// A bar per epoch on standard error (lines if the `progress` feature is off).
    Bar,
    /// Plain lines on standard error: three per epoch at 25, 50 and 75 % of its batches,
    /// and one when it ends.
    Lines,
}

/// Shows training progress: a bar per epoch with batches done, samples per second, the
/// running loss and the time left; or, when the output is not a terminal, plain lines:
///
/// ```text
/// epoch 2/10  batch 469/1875 (25%)  41234 samples/s  loss 0.103200  eta 3.4s
/// epoch 2/10  done in 4.5s  41234 samples/s  train 0.101250  valid 0.099871
/// ```
///
/// A `Progress` is a cheap handle (clones share the same output). Plug it into a
/// [`Trainer`] with [`Progress::install`], or call [`Progress::batch`] and
/// [`Progress::epoch`] from your own callbacks. Output errors are ignored: progress never
/// stops training.
///
/// ```
/// use autoencoder::{Activation, Adam, Autoencoder, Progress, Trainer};
/// use ndarray::Array2;
/// use rand::SeedableRng;
/// # fn main() -> autoencoder::Result<()> {
/// let x = Array2::from_shape_fn((64, 8), |(i, j)| ((i * j) % 5) as f64 / 5.0);
/// let mut ae = Autoencoder::<f64>::builder(8)
///     .latent(3, Activation::Tanh)
///     .build(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1))?;
/// let epochs = 3;
/// let trainer = Trainer::new(Adam::new(1e-2)).epochs(epochs);
/// let mut trainer = Progress::to_writer(epochs, std::io::sink()).install(trainer);
/// trainer.fit(&mut ae, x.view(), None)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Progress {
    state: Arc<Mutex<State>>,
}

struct State {
    epochs: usize,
    out: Box<dyn Write + Send>,
    /// Quarters of the current epoch already reported as lines.
    quarters: usize,
    #[cfg(feature = "progress")]
    bar: Option<Bar>,
}

#[cfg(feature = "progress")]
struct Bar {
    /// The current epoch's bar, created at its first batch.
    current: Option<indicatif::ProgressBar>,
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("Progress")
            .field("epochs", &state.epochs)
            .field("bar", &state.is_bar())
            .finish()
    }
}

impl Progress {
    /// Progress of a run of `epochs` epochs on standard error, as
    /// [`ProgressOutput::Auto`] decides: a bar on a terminal, plain lines otherwise.
    pub fn new(epochs: usize) -> Self {
        Progress::with_output(epochs, ProgressOutput::Auto)
    }

    /// Progress of a run of `epochs` epochs on standard error, in the given form.
    pub fn with_output(epochs: usize, output: ProgressOutput) -> Self {
        let bar = match output {
            ProgressOutput::Auto => std::io::stderr().is_terminal(),
            ProgressOutput::Bar => true,
            ProgressOutput::Lines => false,
        };
        let mut progress = Progress::to_writer(epochs, std::io::stderr());
        if bar {
            progress.use_bar();
        }
        progress
    }

    /// Plain lines into `out` (a file, a buffer, a pipe), whatever the terminal.
    pub fn to_writer(epochs: usize, out: impl Write + Send + 'static) -> Self {
        Progress {
            state: Arc::new(Mutex::new(State {
                epochs,
                out: Box::new(out),
                quarters: 0,
                #[cfg(feature = "progress")]
                bar: None,
            })),
        }
    }

    #[cfg(feature = "progress")]
    fn use_bar(&mut self) {
        self.lock().bar = Some(Bar { current: None });
    }

    #[cfg(not(feature = "progress"))]
    fn use_bar(&mut self) {}

    /// Sets `trainer`'s [`Trainer::on_batch`] and [`Trainer::on_epoch`] callbacks to
    /// report to this `Progress` (replacing callbacks set before; to keep your own epoch
    /// callback, call [`Progress::epoch`] from it instead).
    pub fn install<O>(&self, trainer: Trainer<O>) -> Trainer<O> {
        let (on_batch, on_epoch) = (self.clone(), self.clone());
        trainer
            .on_batch(move |p| on_batch.batch(p))
            .on_epoch(move |r| {
                on_epoch.epoch(r);
                ControlFlow::Continue(())
            })
    }

    /// Reports a finished batch: moves the bar, or prints [`Progress::batch_line`] when the
    /// epoch passes 25, 50 or 75 % of its batches.
    pub fn batch(&self, p: &BatchProgress) {
        let mut state = self.lock();
        let epochs = state.epochs;
        #[cfg(feature = "progress")]
        if let Some(bar) = state.bar.as_mut() {
            let current = bar.current.get_or_insert_with(|| new_bar(p, epochs));
            current.set_position(p.batch as u64);
            current.set_message(format!(
                "{:.0} samples/s  loss {:.6}",
                rate(p.samples, p.seconds),
                p.loss
            ));
            return;
        }
        let quarter = p.batch * 4 / p.n_batches.max(1);
        if p.batch == 1 {
            state.quarters = 0;
        }
        if quarter > state.quarters && p.batch < p.n_batches {
            state.quarters = quarter;
            let line = Progress::batch_line(p, epochs);
            let _ = writeln!(state.out, "{line}");
        }
    }

    /// Reports a finished epoch: clears the bar and prints [`Progress::epoch_line`].
    pub fn epoch(&self, r: &EpochRecord) {
        let mut state = self.lock();
        #[cfg(feature = "progress")]
        if let Some(current) = state.bar.as_mut().and_then(|b| b.current.take()) {
            current.finish_and_clear();
        }
        let line = Progress::epoch_line(r, state.epochs);
        let _ = writeln!(state.out, "{line}");
        let _ = state.out.flush();
        state.quarters = 0;
    }

    /// The plain line for a batch:
    /// `epoch E/N  batch B/M (P%)  S samples/s  loss L  eta Ts`, with epochs counted from 1,
    /// `S = samples / seconds` so far in the epoch, `L` the running mean loss of the epoch
    /// and the time left in the epoch extrapolated from the mean time per batch.
    ///
    /// ```
    /// use autoencoder::{BatchProgress, Progress};
    /// let p = BatchProgress { epoch: 1, batch: 25, n_batches: 100, samples: 800, loss: 0.25, seconds: 0.5 };
    /// assert_eq!(
    ///     Progress::batch_line(&p, 10),
    ///     "epoch 2/10  batch 25/100 (25%)  1600 samples/s  loss 0.250000  eta 1.5s"
    /// );
    /// ```
    pub fn batch_line(p: &BatchProgress, epochs: usize) -> String {
        let left = p.seconds / p.batch.max(1) as f64 * p.n_batches.saturating_sub(p.batch) as f64;
        format!(
            "epoch {}/{}  batch {}/{} ({}%)  {:.0} samples/s  loss {:.6}  eta {}",
            p.epoch + 1,
            epochs,
            p.batch,
            p.n_batches,
            p.batch * 100 / p.n_batches.max(1),
            rate(p.samples, p.seconds),
            p.loss,
            seconds(left)
        )
    }

    /// The plain line for a finished epoch:
    /// `epoch E/N  done in Ts  S samples/s  train L  valid V` (`valid` only if recorded).
    ///
    /// ```
    /// use autoencoder::{EpochRecord, Progress};
    /// let r = EpochRecord {
    ///     epoch: 0, train_loss: 0.5, train_reconstruction: 0.5, train_penalties: vec![],
    ///     valid_loss: Some(0.25), lr: 1e-3, seconds: 2.0, samples_per_second: 30000.0,
    ///     read_wait_seconds: 0.0,
    /// };
    /// assert_eq!(
    ///     Progress::epoch_line(&r, 3),
    ///     "epoch 1/3  done in 2.0s  30000 samples/s  train 0.500000  valid 0.250000"
    /// );
    /// ```
    pub fn epoch_line(r: &EpochRecord, epochs: usize) -> String {
        let mut line = format!(
            "epoch {}/{}  done in {}  {:.0} samples/s  train {:.6}",
            r.epoch + 1,
            epochs,
            seconds(r.seconds),
            r.samples_per_second,
            r.train_loss
        );
        if let Some(v) = r.valid_loss {
            line += &format!("  valid {v:.6}");
        }
        line
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while printing leaves the state usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    #[cfg(feature = "progress")]
    fn is_bar(&self) -> bool {
        self.bar.is_some()
    }

    #[cfg(not(feature = "progress"))]
    fn is_bar(&self) -> bool {
        false
    }
}

/// Samples per second, 0 before any time has passed.
fn rate(samples: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        samples as f64 / seconds
    } else {
        0.0
    }
}

/// `1.5s`, `2m05s`, `1h02m`.
fn seconds(s: f64) -> String {
    let s = s.max(0.0);
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

#[cfg(feature = "progress")]
fn new_bar(p: &BatchProgress, epochs: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(p.n_batches as u64);
    let style = indicatif::ProgressStyle::with_template(
        "epoch {prefix} [{wide_bar}] {pos}/{len} batches  {msg}  eta {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("{}/{}", p.epoch + 1, epochs));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(seconds(1.46), "1.5s");
        assert_eq!(seconds(125.0), "2m05s");
        assert_eq!(seconds(3720.0), "1h02m");
        assert_eq!(seconds(-1.0), "0.0s");
    }

    /// A writer whose bytes the test reads afterwards.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn feed(progress: &Progress, n_batches: usize) {
        for batch in 1..=n_batches {
            progress.batch(&BatchProgress {
                epoch: 0,
                batch,
                n_batches,
                samples: batch * 10,
                loss: 1.0 / batch as f64,
                seconds: batch as f64 * 0.01,
            });
        }
        progress.epoch(&EpochRecord {
            epoch: 0,
            train_loss: 0.5,
            train_reconstruction: 0.5,
            train_penalties: vec![],
            valid_loss: None,
            lr: 1e-3,
            seconds: 1.0,
            samples_per_second: 100.0,
            read_wait_seconds: 0.0,
        });
    }

    #[test]
    fn lines_mark_quarters_of_an_epoch() {
        let out = Captured::default();
        feed(&Progress::to_writer(1, out.clone()), 100);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let heads: Vec<&str> = text
            .lines()
            .map(|l| &l[..l.find(')').unwrap_or(l.len())])
            .collect();
        assert_eq!(
            heads,
            [
                "epoch 1/1  batch 25/100 (25%",
                "epoch 1/1  batch 50/100 (50%",
                "epoch 1/1  batch 75/100 (75%",
                "epoch 1/1  done in 1.0s  100 samples/s  train 0.500000",
            ]
        );
    }

    #[cfg(feature = "progress")]
    #[test]
    fn a_bar_replaces_the_batch_lines() {
        // The bar itself draws on stderr (hidden when it is not a terminal); only the
        // epoch line goes to the writer.
        let out = Captured::default();
        let mut progress = Progress::to_writer(1, out.clone());
        progress.use_bar();
        assert_eq!(format!("{progress:?}"), "Progress { epochs: 1, bar: true }");
        feed(&progress, 100);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with("epoch 1/1  done in"), "{text}");
    }

    #[test]
    fn progress_is_send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Progress>();
    }
}
