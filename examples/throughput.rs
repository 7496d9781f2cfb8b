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

use std::time::Instant;

use autoencoder::{Activation, Adam, Autoencoder, Init, Loss, Trainer};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Args {
    threads: Option<usize>,
    epochs: usize,
    rows: usize,
    workloads: Vec<String>,
    json: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        threads: None,
        epochs: 5,
        rows: 60_000,
        workloads: Vec::new(),
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> Result<usize, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .filter(|&v: &usize| v >= 1)
                .ok_or(format!("{name} needs a whole number >= 1"))
        };
        match arg.as_str() {
            "--threads" => args.threads = Some(value("--threads")?),
            "--epochs" => args.epochs = value("--epochs")?,
            "--rows" => args.rows = value("--rows")?,
            "--workload" => args.workloads.push(
                it.next()
                    .filter(|w| ["shallow", "deep", "wide"].contains(&w.as_str()))
                    .ok_or("--workload needs shallow, deep or wide")?,
            ),
            "--json" => args.json = true,
            "--help" | "-h" => {
                return Err("usage: throughput [--threads N] [--epochs E] [--rows N] \
                            [--workload shallow|deep|wide]... [--json]"
                    .into())
            }
            other => return Err(format!("unknown argument {other}; try --help")),
        }
    }
    if args.workloads.is_empty() {
        args.workloads = vec!["shallow".into(), "deep".into(), "wide".into()];
    }
    Ok(args)
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
    name: &'static str,
    hidden: &'static [usize],
    latent: usize,
}

const WORKLOADS: [Workload; 3] = [
    Workload {
        name: "shallow",
        hidden: &[],
        latent: 32,
    },
    Workload {
        name: "deep",
        hidden: &[128, 64],
        latent: 32,
    },
    Workload {
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
        .epochs(epochs + 1)
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    if let Some(n) = args.threads {
        autoencoder::set_threads(n)?;
    }
    let threads = autoencoder::threads();

    gemm_gflops(1024, 1024, 1024, 5)?; // warm-up: worker threads, clock speed
    let peak_1024 = gemm_gflops(1024, 1024, 1024, 5)?;
    let peak_small = gemm_gflops(256, 784, 128, 5)?;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let data = Array2::<f32>::from_shape_fn((args.rows, 784), |_| rng.random::<f32>());

    let mut results = Vec::new();
    for w in WORKLOADS
        .iter()
        .filter(|w| args.workloads.iter().any(|n| n == w.name))
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
