//! Data-parallel training over MPI: W-deep (or W-shallow) from a memory-mapped `.npy` file,
//! one process per rank, every rank reading only its part of each batch.
//!
//! ```text
//! cargo build --release --features mpi --example distributed
//! mpirun -n 2 target/release/examples/distributed --json
//! target/release/examples/distributed --threads 2 --json     # one process, no exchange
//!     [--epochs N] [--rows N] [--threads N] [--model deep|shallow] [--data mnist|synthetic]
//!     [--npy FILE] [--save FILE] [--fail-rank R]
//! ```
//!
//! 1. Rank 0 writes the rows to a `.npy` file unless it is there (`--npy`; default
//!    `data/distributed-<data>.npy`): MNIST's 60,000 training images (found where every
//!    example looks: `$MNIST_DIR`, `./data/mnist`, `../shared/data/mnist`, else downloaded)
//!    or synthetic rows (a seeded mixture of 8 clusters in `[0, 1]`, no download). The
//!    other ranks wait for it; the file must be on storage every rank sees.
//! 2. Every rank maps the file and trains the same model with the same settings
//!    (`../shared/PERF.md`: Adam lr 1e-3 eps 1e-7, batch 256, binary cross-entropy, seed 0)
//!    on the first `--rows` rows, for `--epochs` epochs, with `--threads` threads per rank;
//!    batches are split over the ranks and the gradients summed in rank order.
//! 3. Rank 0 prints the final training loss, a checksum of the weights (FNV-1a over their
//!    bits: equal checksums, equal weights), seconds per epoch and step, the bytes each
//!    rank sends per step, and the time of one such exchange alone (median of 20); with
//!    `--save`, it writes the model.
//!
//! `--fail-rank R` makes rank R's reads fail from the middle of the file on (a broken disk
//! on one host), to see every rank stop with the same error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use autoencoder::data::npy::{self, NpyMap};
use autoencoder::data::{Mnist, RowSource};
use autoencoder::distributed::{agree, Communicator, Mpi};
use autoencoder::{Activation, Adam, Autoencoder, Error, Loss, Result, Shuffle, Trainer};
use clap::{Parser, ValueEnum};
use ndarray::{s, Array2, ArrayView2, ArrayViewMut2, Ix2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Data-parallel training of W-deep over MPI (run under mpirun)
#[derive(Debug, Parser)]
#[command(name = "distributed")]
struct Args {
    /// Epochs
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = at_least_one)]
    epochs: usize,
    /// Rows trained on (the first N of the file)
    #[arg(long, value_name = "N", default_value_t = 60_000, value_parser = at_least_one)]
    rows: usize,
    /// Threads per rank for the matrix products
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = at_least_one)]
    threads: usize,
    /// Model: deep 784-128-64-32-64-128-784 or shallow 784-32-784
    #[arg(long, value_enum, default_value_t = ModelName::Deep)]
    model: ModelName,
    /// Rows: MNIST's training images, or synthetic clusters
    #[arg(long, value_enum, default_value_t = DataName::Mnist)]
    data: DataName,
    /// The .npy file of rows (written by rank 0 if missing)
    #[arg(long, value_name = "FILE")]
    npy: Option<PathBuf>,
    /// Write the trained model here (rank 0)
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// Make this rank's reads fail from the middle of the file on
    #[arg(long, value_name = "R")]
    fail_rank: Option<usize>,
    /// Print one JSON line instead of text
    #[arg(long)]
    json: bool,
    /// Also print the README's model of scaling to 8 and 64 machines, taking this run's
    /// time per step as the compute of one machine (run it as one process, --threads 1)
    #[arg(long)]
    scaling: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
enum ModelName {
    Deep,
    Shallow,
}

#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
enum DataName {
    Mnist,
    Synthetic,
}

/// A whole number >= 1.
fn at_least_one(s: &str) -> std::result::Result<usize, String> {
    s.parse()
        .ok()
        .filter(|&v: &usize| v >= 1)
        .ok_or(format!("`{s}` is not a whole number >= 1"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mpi = match Mpi::init() {
        Ok(mpi) => Arc::new(mpi),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(&args, &mpi) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Every rank stops with the same error; each reports it in one write, then
            // waits for the others, since mpirun ends every rank once one has exited.
            let line = format!("error on rank {}: {e}\n", mpi.rank());
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            mpi.all_gather(&[0], &mut vec![0; mpi.size()]);
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args, mpi: &Arc<Mpi>) -> Result<()> {
    autoencoder::set_threads(args.threads)?;
    let comm: Arc<dyn Communicator> = mpi.clone();
    let path = args.npy.clone().unwrap_or_else(|| {
        let name = match args.data {
            DataName::Mnist => "mnist",
            DataName::Synthetic => "synthetic",
        };
        PathBuf::from(format!("data/distributed-{name}.npy"))
    });
    // Every step that may fail on one rank alone is agreed on (`distributed::agree`), so
    // that every rank stops together with the same error. Rank 0 writes the file; the
    // others wait for the outcome.
    let written = match comm.rank() {
        0 if !path.exists() => write_rows(args.data, &path),
        _ => Ok(()),
    };
    agree(&*comm, written)?;

    // SAFETY: nothing modifies or truncates the file while the map lives (rank 0 wrote
    // it atomically before any rank mapped it).
    let map = agree(&*comm, unsafe { NpyMap::open(&path) })?; // e.g. not on this host
    let all: ArrayView2<f32> = agree(&*comm, map.view::<f32, Ix2>())?;
    let rows = args.rows.min(all.nrows());
    let x = all.slice(s![..rows, ..]);

    let mut ae = model(args.model)?;
    let mut trainer = Trainer::new(Adam::new(1e-3).eps(1e-7))
        .loss(Loss::BinaryCrossEntropy)
        .epochs(args.epochs)
        .batch_size(256)
        .shuffle(Shuffle::Rows)
        .distributed(Arc::clone(&comm));
    let start = Instant::now();
    let history = match args.fail_rank {
        Some(r) if r == comm.rank() => {
            let failing = Failing {
                x,
                fail_from: rows / 2,
            };
            trainer.fit(&mut ae, &failing, None)?
        }
        _ => trainer.fit(&mut ae, x, None)?,
    };
    let seconds = start.elapsed().as_secs_f64();
    let steps = args.epochs * rows.div_ceil(256);

    // One exchange of a step's size alone, for the per-step overhead.
    let message = ae.n_params() * 4 + 8 * 2 + 8;
    let exchange_ms = time_exchange(&*comm, message);

    let saved = match (&args.save, comm.rank()) {
        (Some(save), 0) => ae.save(save),
        _ => Ok(()),
    };
    agree(&*comm, saved)?;
    if comm.rank() == 0 {
        let last = history.epochs.last().expect("at least one epoch");
        let name = match args.model {
            ModelName::Deep => "W-deep",
            ModelName::Shallow => "W-shallow",
        };
        let checksum = fnv1a(&ae);
        if args.json {
            println!(
                "{{\"model\":\"{name}\",\"ranks\":{},\"threads\":{},\"rows\":{rows},\
                 \"epochs\":{},\"train_loss\":{},\"checksum\":\"{checksum:016x}\",\
                 \"seconds_per_epoch\":{:.4},\"ms_per_step\":{:.3},\"bytes_per_step\":{message},\
                 \"exchange_ms\":{:.3}}}",
                comm.size(),
                args.threads,
                args.epochs,
                last.train_loss,
                seconds / args.epochs as f64,
                1e3 * seconds / steps as f64,
                exchange_ms,
            );
        } else {
            println!(
                "{name} on {} rank(s) x {} thread(s), {rows} rows, {} epochs: training loss \
                 {:.6}, weights checksum {checksum:016x}\n{:.3} s per epoch, {:.2} ms per step; \
                 each rank sends {message} bytes per step, one exchange alone takes {exchange_ms:.3} ms",
                comm.size(),
                args.threads,
                args.epochs,
                last.train_loss,
                seconds / args.epochs as f64,
                1e3 * seconds / steps as f64,
            );
        }
        if args.scaling {
            let first = first_layer_params(&ae);
            print_scaling(
                name,
                seconds / steps as f64,
                message,
                first as f64 / ae.n_params() as f64,
            );
        }
    }
    Ok(())
}

/// Parameters of the first layer, whose gradient the backward pass computes last.
fn first_layer_params(ae: &Autoencoder<f32>) -> usize {
    let l = &ae.layers()[0];
    l.weights().len() + l.bias().len()
}

/// The README's model: `R` machines, each with 256 rows per step taking `c` seconds,
/// links of `b` bytes/s with `A` seconds per message, sums at `MEM` bytes/s. Exchange
/// times of this crate's all-gather, a fixed-order ring, and the ring overlapped with the
/// backward pass (2/3 of `c`; the first layer's share `f0` of the gradient cannot hide).
fn print_scaling(name: &str, c: f64, message: usize, f0: f64) {
    const A: f64 = 10e-6;
    const MEM: f64 = 10e9;
    let s = message as f64;
    println!("| workload | machines | network | all-gather + sum (this crate) | E | fixed-order ring | E | ring overlapped with backward | E |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in [8.0f64, 64.0] {
        for gbit in [10.0, 100.0] {
            let b = gbit * 1e9 / 8.0;
            let gather = (r - 1.0) * (s / b + A) + r * s / MEM;
            let ring = 2.0 * (r - 1.0) / r * s / b + 2.0 * (r - 1.0) * A + 2.0 * s / MEM;
            let exposed = (f0 * ring).max(ring - 2.0 * c / 3.0);
            let e = |t: f64| 100.0 * c / (c + t);
            println!(
                "| {name} | {r} | {gbit} Gbit/s | {:.2} ms | {:.0}% | {:.2} ms | {:.0}% | {:.2} ms | {:.0}% |",
                gather * 1e3,
                e(gather),
                ring * 1e3,
                e(ring),
                exposed * 1e3,
                e(exposed)
            );
        }
    }
}

/// The model of `../shared/PERF.md`: ReLU hidden layers, sigmoid output, Glorot weights.
fn model(name: ModelName) -> Result<Autoencoder<f32>> {
    let builder = Autoencoder::<f32>::builder(784);
    let builder = match name {
        ModelName::Deep => builder
            .hidden(128, Activation::Relu)
            .hidden(64, Activation::Relu)
            .latent(32, Activation::Relu), // the decoder mirrors the encoder
        ModelName::Shallow => builder.latent(32, Activation::Relu),
    };
    builder
        .output(Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(0))
}

/// Writes the rows of `data` to `path` (`f32`, `(n, 784)`).
fn write_rows(data: DataName, path: &std::path::Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            action: "cannot create the folder",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let x = match data {
        DataName::Mnist => Mnist::<f32>::load(autoencoder::data::mnist::locate()?)?.train_images,
        DataName::Synthetic => synthetic(20_000),
    };
    npy::write(path, x.view())
}

/// `n` rows near 8 clusters: each cluster a centre in `[0.2, 0.8]` plus a random
/// 8-dimensional subspace, plus noise, clipped to `[0, 1]`.
fn synthetic(n: usize) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let centres = Array2::from_shape_fn((8, 784), |_| rng.random_range(0.2..0.8));
    let bases = Array2::from_shape_fn((64, 784), |_| rng.random_range(-0.1..0.1));
    let mut x = Array2::<f32>::zeros((n, 784));
    for mut row in x.rows_mut() {
        let c = rng.random_range(0..8);
        let coef: Vec<f32> = (0..8).map(|_| rng.random_range(-1.0..1.0)).collect();
        for (j, v) in row.iter_mut().enumerate() {
            let mut value = centres[[c, j]] + rng.random_range(-0.05..0.05);
            for (k, a) in coef.iter().enumerate() {
                value += a * bases[[c * 8 + k, j]];
            }
            *v = value.clamp(0.0, 1.0);
        }
    }
    x
}

/// Median of 20 all-gathers of `bytes` per rank, in milliseconds.
fn time_exchange(comm: &dyn Communicator, bytes: usize) -> f64 {
    let send = vec![1u8; bytes];
    let mut recv = vec![0u8; bytes * comm.size()];
    let mut times: Vec<f64> = (0..20)
        .map(|_| {
            let t = Instant::now();
            comm.all_gather(&send, &mut recv);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[10]
}

/// FNV-1a over the bits of every weight and bias, layer by layer.
fn fnv1a(ae: &Autoencoder<f32>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for layer in ae.layers() {
        for v in layer.weights().iter().chain(layer.bias()) {
            for b in v.to_bits().to_le_bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
        }
    }
    h
}

/// The rows of `x`, read through the trait (not in memory to the trainer); reads that
/// reach row `fail_from` fail.
struct Failing<'a> {
    x: ArrayView2<'a, f32>,
    fail_from: usize,
}

impl RowSource<f32> for Failing<'_> {
    fn n_rows(&self) -> usize {
        self.x.nrows()
    }

    fn width(&self) -> usize {
        self.x.ncols()
    }

    fn read_rows(&self, start: usize, mut out: ArrayViewMut2<'_, f32>) -> Result<()> {
        let end = start + out.nrows();
        if end > self.fail_from {
            return Err(Error::Io {
                action: "cannot read",
                path: PathBuf::from("the rows file (--fail-rank)"),
                source: std::io::Error::other("simulated disk failure"),
            });
        }
        out.assign(&self.x.slice(s![start..end, ..]));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_with_defaults() {
        let a = Args::try_parse_from(["distributed"]).unwrap();
        assert_eq!((a.epochs, a.rows, a.threads), (2, 60_000, 1));
        assert_eq!((a.model, a.data), (ModelName::Deep, DataName::Mnist));
        let a = Args::try_parse_from([
            "distributed",
            "--epochs",
            "3",
            "--model",
            "shallow",
            "--data",
            "synthetic",
            "--fail-rank",
            "1",
            "--json",
        ])
        .unwrap();
        assert_eq!((a.epochs, a.fail_rank, a.json), (3, Some(1), true));
        assert!(Args::try_parse_from(["distributed", "--threads", "0"]).is_err());
    }

    #[test]
    fn models_have_the_workloads_sizes() {
        // 784-128-64-32-64-128-784 and 784-32-784, weights and biases.
        let deep = 2 * (784 * 128 + 128 * 64 + 64 * 32) + 128 + 64 + 32 + 64 + 128 + 784;
        assert_eq!(model(ModelName::Deep).unwrap().n_params(), deep);
        assert_eq!(
            model(ModelName::Shallow).unwrap().n_params(),
            2 * 784 * 32 + 32 + 784
        );
    }
}
