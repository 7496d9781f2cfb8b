//! Training throughput of the three reference workloads of `PERF.md`, beside the machine's
//! f32 GEMM peak measured in the same run with the same matrix product the crate uses
//! (`autoencoder::compute::gemm`).
//!
//! ```text
//! cargo run --release --example throughput -- [--threads N] [--epochs E] [--rows N]
//!     [--workload shallow|deep|wide]... [--json]
//! ```
//!
//! Each workload: f32, Glorot-uniform weights, zero biases, Adam (lr 1e-3, eps 1e-7), batch
//! 256, binary cross-entropy, reshuffled every epoch, one epoch = `--rows` samples (default
//! 60,000) of random data of MNIST's shape (speed does not depend on the content). The
//! first epoch is a warm-up; the figure is the median of the next `--epochs` (default 5).
//! GFLOP/s counts `3 x 2 x sum(n_in n_out)` per sample (forward and backward).
//!
//! The machine may be shared: the GEMM peak (1024^2, f32) is measured again right before
//! and right after each workload, and the fraction of peak uses their mean, so both
//! figures see the same load.

#[path = "support/cli.rs"]
mod cli;

use std::process::ExitCode;
use std::time::Instant;

use autoencoder::{Activation, Adam, Autoencoder, Error, Init, Loss, Trainer};
use clap::{Parser, ValueEnum};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Training throughput of the reference workloads of PERF.md beside the f32 GEMM peak
/// (autoencoder::gemm, 1024^2) measured in the same run.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "throughput",
    override_usage = "cargo run --release --example throughput -- [OPTIONS]",
    after_help = "Each workload: f32, Glorot-uniform weights, Adam (lr 1e-3, eps 1e-7), batch 256, \
                  binary cross-entropy,\none epoch = --rows samples of random data of MNIST's \
                  shape; the figure is the median of --epochs\nepochs after a warm-up epoch.",
    // A repeated flag takes its last value (`--workload` adds up); `--rows -5` is a
    // (refused) value, not a flag.
    args_override_self = true,
    allow_negative_numbers = true
)]
struct Args {
    /// Threads for the matrix products, 1 to 4 [default: one per core, at most 4;
    /// AUTOENCODER_THREADS]
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    threads: Option<usize>,
    /// Timed epochs per workload (after one warm-up epoch)
    #[arg(long, value_name = "E", default_value_t = 5, value_parser = at_least_one)]
    epochs: usize,
    /// Samples per epoch
    #[arg(long, value_name = "N", default_value_t = 60_000, value_parser = at_least_one)]
    rows: usize,
    /// Workload to run (repeatable): shallow 784-32-784, deep 784-128-64-32-64-128-784,
    /// wide 784-512-128-512-784
    #[arg(long = "workload", value_name = "W", value_enum,
          default_values = ["shallow", "deep", "wide"])]
    workloads: Vec<WorkloadName>,
    /// Print one JSON line with every figure instead of the table
    #[arg(long)]
    json: bool,
}

/// `--workload`.
#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
enum WorkloadName {
    Shallow,
    Deep,
    Wide,
}

/// A whole number >= 1 (`--threads`, `--epochs`, `--rows`).
fn at_least_one(s: &str) -> Result<usize, String> {
    s.parse()
        .ok()
        .filter(|&v: &usize| v >= 1)
        .ok_or(format!("`{s}` is not a whole number >= 1"))
}

/// Median of `reps` timings of `c = a b` for `(m, k) @ (k, n)`, in GFLOP/s.
fn gemm_gflops(m: usize, k: usize, n: usize, reps: usize) -> autoencoder::Result<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let a = Array2::<f32>::from_shape_fn((m, k), |_| rng.random::<f32>() - 0.5);
    let b = Array2::<f32>::from_shape_fn((k, n), |_| rng.random::<f32>() - 0.5);
    let mut c = Array2::<f32>::zeros((m, n));
    autoencoder::compute::gemm(1.0, &a.view(), &b.view(), 0.0, &mut c.view_mut())?; // warm-up
    let flops = 2.0 * (m * k * n) as f64;
    // Repeat small products so each timing lasts about 20 ms.
    let inner = ((20e-3 * 100e9 / flops).ceil() as usize).max(1);
    let mut rates: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..inner {
                autoencoder::compute::gemm(1.0, &a.view(), &b.view(), 0.0, &mut c.view_mut())?;
            }
            Ok(flops * inner as f64 / start.elapsed().as_secs_f64() / 1e9)
        })
        .collect::<autoencoder::Result<_>>()?;
    Ok(median(&mut rates))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Workload {
    kind: WorkloadName,
    name: &'static str,
    hidden: &'static [usize],
    latent: usize,
}

const WORKLOADS: [Workload; 3] = [
    Workload {
        kind: WorkloadName::Shallow,
        name: "shallow",
        hidden: &[],
        latent: 32,
    },
    Workload {
        kind: WorkloadName::Deep,
        name: "deep",
        hidden: &[128, 64],
        latent: 32,
    },
    Workload {
        kind: WorkloadName::Wide,
        name: "wide",
        hidden: &[512],
        latent: 128,
    },
];

struct Measured {
    name: &'static str,
    peak: f64,
    sizes: Vec<usize>,
    seconds: f64,
    samples_per_second: f64,
    gflops: f64,
    final_loss: f64,
}

fn run(w: &Workload, data: &Array2<f32>, epochs: usize) -> autoencoder::Result<Measured> {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut builder = Autoencoder::<f32>::builder(784);
    for &h in w.hidden {
        builder = builder.hidden(h, Activation::Relu);
    }
    let mut ae = builder
        .latent(w.latent, Activation::Relu)
        .output(Activation::Sigmoid)
        .init(Init::GlorotUniform)
        .build(&mut rng)?;
    let history = Trainer::new(Adam::new(1e-3).eps(1e-7))
        .loss(Loss::BinaryCrossEntropy)
        .epochs(epochs.saturating_add(1))
        .batch_size(256)
        .seed(7)
        .fit(&mut ae, data.view(), None)?;
    let mut seconds: Vec<f64> = history.epochs[1..].iter().map(|e| e.seconds).collect();
    let seconds = median(&mut seconds);
    let sizes = ae.sizes();
    let macs: usize = sizes.windows(2).map(|p| p[0] * p[1]).sum();
    let samples_per_second = data.nrows() as f64 / seconds;
    Ok(Measured {
        name: w.name,
        peak: f64::NAN,
        sizes,
        seconds,
        samples_per_second,
        gflops: samples_per_second * 6.0 * macs as f64 / 1e9,
        final_loss: history.last().map_or(f64::NAN, |e| e.train_loss),
    })
}

fn main() -> ExitCode {
    cli::main_with(measure)
}

/// The random data set: `(rows, 784)`, checked against the crate's memory limit first.
///
/// # Errors
/// [`Error::TooLarge`] if it would take more than [`autoencoder::memory_limit`] bytes.
fn random_data(rows: usize) -> autoencoder::Result<Array2<f32>> {
    let shape = vec![rows, 784];
    let bytes = (rows as u128) * 784 * std::mem::size_of::<f32>() as u128;
    let limit = autoencoder::memory_limit();
    if bytes > u128::from(limit) {
        return Err(Error::TooLarge {
            what: "random data (--rows)",
            shape,
            element_bytes: std::mem::size_of::<f32>(),
            bytes: Some(bytes),
            limit,
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    Ok(Array2::<f32>::from_shape_fn((rows, 784), |_| {
        rng.random::<f32>()
    }))
}

fn measure(args: &Args) -> autoencoder::Result<()> {
    if let Some(n) = args.threads {
        autoencoder::set_threads(n)?;
    }
    let data = random_data(args.rows)?;
    let threads = autoencoder::threads();

    gemm_gflops(1024, 1024, 1024, 5)?; // warm-up: worker threads, clock speed
    let peak_1024 = gemm_gflops(1024, 1024, 1024, 5)?;
    let peak_small = gemm_gflops(256, 784, 128, 5)?;

    let mut results = Vec::new();
    for w in WORKLOADS
        .iter()
        .filter(|w| args.workloads.contains(&w.kind))
    {
        let before = gemm_gflops(1024, 1024, 1024, 3)?;
        let mut m = run(w, &data, args.epochs)?;
        let after = gemm_gflops(1024, 1024, 1024, 3)?;
        m.peak = (before + after) / 2.0;
        if !args.json {
            println!(
                "W-{:<8} {:>7.3} s/epoch {:>9.0} samples/s {:>6.1} GFLOP/s {:>5.1}% of peak {:.0} \
                 (peak before/after {before:.0}/{after:.0}; loss {:.4})",
                m.name,
                m.seconds,
                m.samples_per_second,
                m.gflops,
                100.0 * m.gflops / m.peak,
                m.peak,
                m.final_loss
            );
        }
        results.push(m);
    }
    if args.json {
        let items: Vec<String> = results
            .iter()
            .map(|m| {
                format!(
                    "{{\"workload\":\"W-{}\",\"sizes\":{:?},\"seconds_per_epoch\":{:.5},\
                     \"samples_per_second\":{:.1},\"gflops\":{:.2},\"peak_gflops\":{:.2},\
                     \"fraction_of_peak\":{:.4},\"final_loss\":{:.9}}}",
                    m.name,
                    m.sizes,
                    m.seconds,
                    m.samples_per_second,
                    m.gflops,
                    m.peak,
                    m.gflops / m.peak,
                    m.final_loss
                )
            })
            .collect();
        println!(
            "{{\"threads\":{threads},\"epochs\":{},\"rows\":{},\"gemm_gflops_1024\":{:.2},\
             \"gemm_gflops_256x784x128\":{:.2},\"workloads\":[{}]}}",
            args.epochs,
            args.rows,
            peak_1024,
            peak_small,
            items.join(",")
        );
    } else {
        println!(
            "GEMM peak (f32, autoencoder::compute::gemm, {threads} thread(s)): 1024^2 {peak_1024:.1} GFLOP/s, \
             256x784 @ 784x128 {peak_small:.1} GFLOP/s"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    fn refused(line: &str) -> ErrorKind {
        cli::refused::<Args>(line)
    }

    #[test]
    fn the_flag_definitions_are_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn flags_parse() -> Result<(), String> {
        let a: Args = cli::parsed("")?;
        assert_eq!(
            (a.threads, a.epochs, a.rows, a.json),
            (None, 5, 60_000, false)
        );
        use WorkloadName::*;
        assert_eq!(a.workloads, [Shallow, Deep, Wide]);
        let a: Args = cli::parsed(
            "--threads 1 --epochs=3 --rows 1000 --workload wide --workload shallow --json",
        )?;
        assert_eq!(
            (a.threads, a.epochs, a.rows, a.json),
            (Some(1), 3, 1000, true)
        );
        assert_eq!(a.workloads, [Wide, Shallow]);
        for bad in [
            "--threads 0",
            "--epochs 0",
            "--rows 0",
            "--rows -5",
            "--workload huge",
        ] {
            assert!(
                matches!(
                    refused(bad),
                    ErrorKind::ValueValidation | ErrorKind::InvalidValue
                ),
                "{bad}"
            );
        }
        assert_eq!(refused("--bogus"), ErrorKind::UnknownArgument);
        assert_eq!(refused("--help"), ErrorKind::DisplayHelp);
        Ok(())
    }

    #[test]
    fn too_many_rows_are_an_error_not_an_abort() {
        for rows in [usize::MAX, 1 << 40] {
            assert!(
                matches!(random_data(rows), Err(Error::TooLarge { .. })),
                "{rows}"
            );
        }
    }

    #[test]
    fn every_flag_the_readme_mentions_parses() {
        let mentions = cli::readme::mentions("throughput");
        let flags: Vec<&str> = mentions
            .iter()
            .flat_map(|m| &m.args)
            .filter(|a| a.starts_with("--"))
            .map(String::as_str)
            .collect();
        for flag in ["--threads", "--workload", "--epochs", "--json"] {
            assert!(flags.contains(&flag), "{flag} not found in {mentions:?}");
        }
        let failures = cli::readme::check::<Args>("throughput");
        assert!(
            failures.is_empty(),
            "README flags the parser refuses:\n{}",
            failures.join("\n")
        );
    }
}
