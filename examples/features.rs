//! How useful are the codes for a classifier? Nearest-centroid and 1-nearest-neighbour
//! accuracy on held-out rows, for raw inputs, PCA and the codes of plain, sparse and
//! denoising autoencoders of the same width.
//!
//! ```text
//! cargo run --release --example features                      # digits.csv (8x8 digits, 1,797 rows)
//! cargo run --release --example features -- --data mnist      # a documented MNIST subset
//! cargo run --release --example features -- --normalize       # codes standardized first
//! ```
//!
//! `digits`: `../shared/data/tabular/digits.csv` (64 pixels in 0-16, scaled to [0, 1], label
//! column `digit`), a seeded 70/30 split. `mnist`: the first `--train-rows` training images
//! train the models and are the 1-NN references and centroids; the first `--test-rows` test
//! images are classified. Each representation is standardized (with the training rows'
//! statistics) only with `--normalize`.

#[path = "../src/bin/autoencoder/args.rs"]
mod args;
#[path = "support/cli.rs"]
mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use autoencoder::data::csv::{CsvReader, LabelColumn};
use autoencoder::data::{mnist, Mnist, Scaler, Scaling, Split};
use autoencoder::ndarray::{s, Array1, Array2, ArrayView2, Axis};
use autoencoder::{seeded_rng, Activation, Adam, Autoencoder, Loss, Noise, Pca, Penalty, Trainer};
use clap::{Parser, ValueEnum};
use serde_json::json;

/// Nearest-centroid and 1-NN accuracy of raw inputs, PCA and autoencoder codes.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "features",
    override_usage = "cargo run --release --example features -- [OPTIONS]",
    args_override_self = true
)]
struct Config {
    /// Data set
    #[arg(long, value_name = "D", default_value = "digits")]
    data: DataSet,
    /// The digits CSV
    #[arg(
        long,
        value_name = "PATH",
        default_value = "../shared/data/tabular/digits.csv"
    )]
    digits_csv: PathBuf,
    /// MNIST training rows used (models, references, centroids)
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    train_rows: usize,
    /// MNIST test rows classified
    #[arg(long, value_name = "N", default_value_t = 2_000)]
    test_rows: usize,
    /// Code width (PCA keeps as many components)
    #[arg(long, value_name = "N", default_value_t = 32)]
    latent: usize,
    /// Hidden width of the autoencoders
    #[arg(long, value_name = "N", default_value_t = 128)]
    hidden: usize,
    /// Code activation of the autoencoders
    #[arg(long, value_name = "S", default_value = "identity")]
    code: CodeActivation,
    /// Training epochs
    #[arg(long, value_name = "N", default_value_t = 30)]
    epochs: usize,
    /// Standardize every representation with its training rows' mean and variance
    #[arg(long)]
    normalize: bool,
    /// Seed of the split, the weights and the batches
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// Print one JSON line instead of the table
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DataSet {
    Digits,
    Mnist,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CodeActivation {
    Identity,
    Relu,
    Sigmoid,
    Tanh,
}

impl CodeActivation {
    fn activation(self) -> Activation {
        match self {
            CodeActivation::Identity => Activation::Identity,
            CodeActivation::Relu => Activation::Relu,
            CodeActivation::Sigmoid => Activation::Sigmoid,
            CodeActivation::Tanh => Activation::Tanh,
        }
    }
}

fn main() -> ExitCode {
    args::main_with(run)
}

/// Training and test rows in [0, 1], with their labels.
type Sets = (Array2<f32>, Vec<u8>, Array2<f32>, Vec<u8>);

fn load(c: &Config) -> autoencoder::Result<Sets> {
    match c.data {
        DataSet::Digits => {
            let table = CsvReader::new()
                .label_column(LabelColumn::Name("digit".into()))
                .read::<f32>(&c.digits_csv)?;
            let (x, labels) = table.into_parts();
            let x = x.mapv(|v| v / 16.0);
            let y: Vec<u8> = labels
                .unwrap_or_default()
                .iter()
                .map(|l| l.parse().unwrap_or(u8::MAX))
                .collect();
            let split = Split::new(x.nrows(), 0.3, c.seed)?;
            let pick = |rows: &[usize]| rows.iter().map(|&i| y[i]).collect::<Vec<u8>>();
            Ok((
                x.select(Axis(0), split.train()),
                pick(split.train()),
                x.select(Axis(0), split.valid()),
                pick(split.valid()),
            ))
        }
        DataSet::Mnist => {
            let m = Mnist::<f32>::load(mnist::locate()?)?;
            let (n, t) = (c.train_rows.min(60_000), c.test_rows.min(10_000));
            Ok((
                m.train_images.slice(s![..n, ..]).to_owned(),
                m.train_labels.slice(s![..n]).to_vec(),
                m.test_images.slice(s![..t, ..]).to_owned(),
                m.test_labels.slice(s![..t]).to_vec(),
            ))
        }
    }
}

fn run(c: &Config) -> autoencoder::Result<()> {
    let (train, y_train, test, y_test) = load(c)?;
    let d = train.ncols();
    let mut rows: Vec<(String, f64, f64)> = Vec::new();
    let mut report = |name: String, tr: Array2<f32>, te: Array2<f32>| -> autoencoder::Result<()> {
        let (tr, te) = if c.normalize {
            let scaler = Scaler::fit(tr.view(), Scaling::Standard)?;
            (scaler.transform(tr.view())?, scaler.transform(te.view())?)
        } else {
            (tr, te)
        };
        let centroid = nearest_centroid(tr.view(), &y_train, te.view(), &y_test);
        let nn = one_nn(tr.view(), &y_train, te.view(), &y_test);
        rows.push((name, centroid, nn));
        Ok(())
    };
    report(format!("raw pixels ({d})"), train.clone(), test.clone())?;
    let pca = Pca::fit(train.view(), c.latent)?;
    report(
        format!("PCA-{}", c.latent),
        pca.transform(train.view())?,
        pca.transform(test.view())?,
    )?;
    for variant in ["plain", "sparse", "denoising"] {
        let mut ae = Autoencoder::<f32>::builder(d)
            .hidden(c.hidden, Activation::Relu)
            .latent(c.latent, c.code.activation())
            .output(Activation::Sigmoid)
            .build(&mut seeded_rng(c.seed))?;
        let mut trainer = Trainer::new(Adam::new(1e-3))
            .loss(Loss::BinaryCrossEntropy)
            .epochs(c.epochs)
            .batch_size(64)
            .seed(c.seed);
        match variant {
            "sparse" => trainer = trainer.penalty(Penalty::l1_activity(1e-4)?),
            "denoising" => trainer = trainer.noise(Noise::Masking { fraction: 0.3 }),
            _ => {}
        }
        trainer.fit(&mut ae, train.view(), None)?;
        report(
            format!("{variant} autoencoder, {}-d code", c.latent),
            ae.encode(train.view())?,
            ae.encode(test.view())?,
        )?;
    }
    if c.json {
        let results: Vec<_> = rows
            .iter()
            .map(|(n, a, b)| json!({"representation": n, "nearest_centroid": a, "one_nn": b}))
            .collect();
        println!(
            "{}",
            json!({"data": format!("{:?}", c.data).to_lowercase(), "train_rows": train.nrows(),
                   "test_rows": test.nrows(), "latent": c.latent, "hidden": c.hidden,
                   "code": format!("{:?}", c.code).to_lowercase(), "epochs": c.epochs,
                   "normalize": c.normalize, "seed": c.seed, "results": results})
        );
    } else {
        println!(
            "{:?}: {} training rows, {} test rows{}",
            c.data,
            train.nrows(),
            test.nrows(),
            if c.normalize {
                ", each representation standardized"
            } else {
                ""
            }
        );
        println!(
            "{:<36} {:>16} {:>8}",
            "representation", "nearest centroid", "1-NN"
        );
        for (name, a, b) in &rows {
            println!("{name:<36} {a:>16.4} {b:>8.4}");
        }
    }
    Ok(())
}

/// The fraction of test rows whose nearest class mean (over the training rows) is their class.
fn nearest_centroid(
    train: ArrayView2<f32>,
    y_train: &[u8],
    test: ArrayView2<f32>,
    y_test: &[u8],
) -> f64 {
    let classes = y_train
        .iter()
        .copied()
        .max()
        .map_or(0, |m| usize::from(m) + 1);
    let mut sums = Array2::<f64>::zeros((classes, train.ncols()));
    let mut counts = vec![0usize; classes];
    for (row, &y) in train.rows().into_iter().zip(y_train) {
        let mut s = sums.row_mut(usize::from(y));
        s.zip_mut_with(&row, |a, &b| *a += f64::from(b));
        counts[usize::from(y)] += 1;
    }
    for (mut s, &n) in sums.rows_mut().into_iter().zip(&counts) {
        s /= n.max(1) as f64;
    }
    let correct = test
        .rows()
        .into_iter()
        .zip(y_test)
        .filter(|(row, &y)| {
            let best = (0..classes).filter(|&k| counts[k] > 0).min_by(|&a, &b| {
                let dist = |k: usize| -> f64 {
                    row.iter()
                        .zip(sums.row(k))
                        .map(|(&x, &m)| (f64::from(x) - m).powi(2))
                        .sum()
                };
                dist(a).total_cmp(&dist(b))
            });
            best == Some(usize::from(y))
        })
        .count();
    correct as f64 / y_test.len() as f64
}

/// The fraction of test rows whose nearest training row (Euclidean) has their class.
fn one_nn(train: ArrayView2<f32>, y_train: &[u8], test: ArrayView2<f32>, y_test: &[u8]) -> f64 {
    // ||a - b||^2 = ||a||^2 - 2 a.b + ||b||^2, the products as one matrix product.
    let norms: Array1<f32> = train.rows().into_iter().map(|r| r.dot(&r)).collect();
    let mut correct = 0;
    for (chunk, labels) in test.axis_chunks_iter(Axis(0), 256).zip(y_test.chunks(256)) {
        let dots = chunk.dot(&train.t()); // (chunk, n_train)
        for (row, &y) in dots.rows().into_iter().zip(labels) {
            let nearest = row
                .iter()
                .zip(&norms)
                .map(|(&p, &n)| n - 2.0 * p)
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(i, _)| i);
            correct += usize::from(nearest.is_some_and(|i| y_train[i] == y));
        }
    }
    correct as f64 / y_test.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_flag_definitions_are_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn flags_parse() -> Result<(), clap::Error> {
        let c: Config = cli::parse("--data mnist --normalize --latent 16 --code relu --json")?;
        assert!(matches!(c.data, DataSet::Mnist) && c.normalize && c.json && c.latent == 16);
        let failures = cli::readme::check::<Config>("features");
        assert!(
            failures.is_empty(),
            "README flags the parser refuses:\n{}",
            failures.join("\n")
        );
        Ok(())
    }

    #[test]
    fn classifiers_by_hand() {
        let train = autoencoder::ndarray::array![[0.0f32, 0.0], [0.0, 1.0], [5.0, 5.0], [6.0, 5.0]];
        let y = [0u8, 0, 1, 1];
        let test = autoencoder::ndarray::array![[0.2f32, 0.4], [5.4, 4.0], [2.0, 2.0]];
        // Centroids (0, 0.5) and (5.5, 5): (2, 2) is nearer the first.
        assert_eq!(
            nearest_centroid(train.view(), &y, test.view(), &[0, 1, 1]),
            2.0 / 3.0
        );
        assert_eq!(one_nn(train.view(), &y, test.view(), &[0, 1, 0]), 1.0);
    }
}
