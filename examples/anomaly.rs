//! Anomaly detection on a labelled CSV: an autoencoder trained on normal rows only scores
//! every held-out row by its reconstruction error, beside PCA of the same code size in the
//! same run.
//!
//! ```text
//! cargo run --release --example anomaly                 # Breast Cancer Wisconsin, benign = normal
//! cargo run --release --example anomaly -- --json       # one JSON line
//! cargo run --release --example anomaly -- --csv my.csv --label-column class --normal ok
//! ```
//!
//! The default data are `../shared/data/tabular/breast_cancer.csv` (569 rows, 30 features,
//! `diagnosis` benign or malignant). A seeded 70% of the normal rows train, standardized by a
//! scaler fitted on them; the other normal rows and every other row are scored. The
//! threshold flags `--contamination` of the training rows' scores.
//!
//! Defaults (30-32-4-32-30, tanh hidden, identity code and output, MSE, Adam 3e-3, 300
//! epochs of 32 rows, L2 weight decay 1e-2) were chosen over five split seeds. Much stronger
//! decay (`--l2 0.1`) shrinks the weights to 0: the model then outputs the training mean
//! and its score is the third row printed, the distance to that mean (training MSE 1).

#[path = "../src/bin/autoencoder/args.rs"]
mod args;
#[path = "support/cli.rs"]
mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use autoencoder::data::csv::{CsvReader, LabelColumn};
use autoencoder::data::{permutation, Scaler, Scaling};
use autoencoder::metrics;
use autoencoder::ndarray::{Array1, Axis};
use autoencoder::{seeded_rng, Activation, Adam, Autoencoder, Loss, Noise, Pca, Penalty, Trainer};
use clap::Parser;
use serde_json::json;

/// Anomaly detection with an autoencoder trained on normal rows, against PCA.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "anomaly",
    override_usage = "cargo run --release --example anomaly -- [OPTIONS]",
    args_override_self = true
)]
struct Config {
    /// The CSV file: one row per sample, numeric features and a label column
    #[arg(
        long,
        value_name = "PATH",
        default_value = "../shared/data/tabular/breast_cancer.csv"
    )]
    csv: PathBuf,
    /// The label column's name in the header
    #[arg(long, value_name = "NAME", default_value = "diagnosis")]
    label_column: String,
    /// The label of the normal rows; every other label is an anomaly
    #[arg(long, value_name = "VALUE", default_value = "benign")]
    normal: String,
    /// Fraction of the normal rows to train on
    #[arg(long, value_name = "F", default_value_t = 0.7)]
    train_fraction: f64,
    /// Code width (PCA keeps as many components)
    #[arg(long, value_name = "N", default_value_t = 4)]
    latent: usize,
    /// Hidden width (encoder; the decoder mirrors it)
    #[arg(long, value_name = "N", default_value_t = 32)]
    hidden: usize,
    /// Training epochs
    #[arg(long, value_name = "N", default_value_t = 300)]
    epochs: usize,
    /// Adam learning rate
    #[arg(long, value_name = "X", default_value_t = 3e-3)]
    lr: f64,
    /// Standard deviation of the Gaussian noise added to training inputs (denoising; 0 for none)
    #[arg(long, value_name = "X", default_value_t = 0.0)]
    noise_std: f64,
    /// L2 weight decay
    #[arg(long, value_name = "L", default_value_t = 1e-2)]
    l2: f64,
    /// Fraction of the training rows' scores above the threshold
    #[arg(long, value_name = "F", default_value_t = 0.05)]
    contamination: f64,
    /// Seed of the split, the weights and the batches
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// Print one JSON line instead of the table
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    args::main_with(run)
}

fn run(c: &Config) -> autoencoder::Result<()> {
    let table = CsvReader::new()
        .label_column(LabelColumn::Name(c.label_column.clone()))
        .read::<f64>(&c.csv)?;
    let (x, labels) = table.into_parts();
    let labels = labels.unwrap_or_default(); // present: a label column was asked for
    let normal: Vec<usize> = (0..x.nrows()).filter(|&i| labels[i] == c.normal).collect();
    if normal.len() < 2 || normal.len() == x.nrows() {
        return Err(autoencoder::Error::InvalidConfig(format!(
            "--normal {:?}: {} of the {} rows have that label in column {:?}; need at least 2 \
             normal rows and at least one other",
            c.normal,
            normal.len(),
            x.nrows(),
            c.label_column
        )));
    }
    // A seeded share of the normal rows trains; everything else is scored.
    let order = permutation(normal.len(), c.seed)?;
    let n_train =
        ((normal.len() as f64 * c.train_fraction).round() as usize).clamp(1, normal.len() - 1);
    let mut train_rows: Vec<usize> = order[..n_train].iter().map(|&k| normal[k]).collect();
    train_rows.sort_unstable();
    let mut is_train = vec![false; x.nrows()];
    train_rows.iter().for_each(|&i| is_train[i] = true);
    let test_rows: Vec<usize> = (0..x.nrows()).filter(|&i| !is_train[i]).collect();
    let anomalous = Array1::from_iter(test_rows.iter().map(|&i| labels[i] != c.normal));

    let scaler = Scaler::fit(x.select(Axis(0), &train_rows).view(), Scaling::Standard)?;
    let train = scaler.transform(x.select(Axis(0), &train_rows).view())?;
    let test = scaler.transform(x.select(Axis(0), &test_rows).view())?;

    let mut ae = Autoencoder::<f64>::builder(x.ncols())
        .hidden(c.hidden, Activation::Tanh)
        .latent(c.latent, Activation::Identity)
        .output(Activation::Identity)
        .build(&mut seeded_rng(c.seed))?;
    let mut trainer = Trainer::new(Adam::new(c.lr))
        .loss(Loss::MeanSquaredError)
        .epochs(c.epochs)
        .batch_size(32)
        .seed(c.seed);
    if c.noise_std > 0.0 {
        trainer = trainer.noise(Noise::Gaussian {
            std: c.noise_std,
            clip: None,
        });
    }
    if c.l2 > 0.0 {
        trainer = trainer.penalty(Penalty::l2_weights(c.l2)?);
    }
    trainer.fit(&mut ae, train.view(), None)?;
    let train_scores = ae.reconstruction_errors(train.view(), Loss::MeanSquaredError)?;
    let scores = ae.reconstruction_errors(test.view(), Loss::MeanSquaredError)?;

    let pca = Pca::fit(train.view(), c.latent)?;
    let pca_scores = metrics::mse_per_sample(test.view(), pca.reconstruct(test.view())?.view())?;

    // The simplest baseline: each row's mean squared z-score, the distance from the training
    // mean (what a model that reconstructs every row as that mean would score).
    let centre_scores = test.mapv(|v| v * v).mean_axis(Axis(1)).unwrap_or_default();
    let centre_auc = metrics::roc_auc(centre_scores.view(), anomalous.view())?;
    let train_mse = train_scores.mean().unwrap_or(f64::NAN);

    let auc = metrics::roc_auc(scores.view(), anomalous.view())?;
    let ap = metrics::average_precision(scores.view(), anomalous.view())?;
    let pca_auc = metrics::roc_auc(pca_scores.view(), anomalous.view())?;
    let pca_ap = metrics::average_precision(pca_scores.view(), anomalous.view())?;
    let threshold = metrics::contamination_threshold(train_scores.view(), c.contamination)?;
    let at = metrics::confusion(scores.view(), anomalous.view(), threshold)?;
    let n_anomalies = anomalous.iter().filter(|&&a| a).count();

    if c.json {
        let figures = json!({
            "csv": c.csv, "label_column": c.label_column, "normal": c.normal,
            "train_rows": train_rows.len(), "test_rows": test_rows.len(), "test_anomalies": n_anomalies,
            "latent": c.latent, "hidden": c.hidden, "epochs": c.epochs, "lr": c.lr, "seed": c.seed,
            "roc_auc": auc, "average_precision": ap,
            "pca_roc_auc": pca_auc, "pca_average_precision": pca_ap,
            "centre_roc_auc": centre_auc, "train_mse": train_mse, "noise_std": c.noise_std, "l2": c.l2,
            "contamination": c.contamination, "threshold": threshold,
            "precision": at.precision(), "recall": at.recall(),
        });
        println!("{figures}");
    } else {
        println!(
            "{}: {} training rows ({:?} = normal), {} scored ({} anomalies)",
            c.csv.display(),
            train_rows.len(),
            c.normal,
            test_rows.len(),
            n_anomalies
        );
        println!("{:<34} {:>8} {:>10}", "score", "ROC-AUC", "avg prec");
        let (d, h, k) = (x.ncols(), c.hidden, c.latent);
        let ae_name = format!("autoencoder {d}-{h}-{k}-{h}-{d}");
        println!("{ae_name:<34} {auc:>8.4} {ap:>10.4}");
        println!(
            "{:<34} {pca_auc:>8.4} {pca_ap:>10.4}",
            format!("PCA-{} reconstruction error", c.latent)
        );
        println!("{:<34} {centre_auc:>8.4}", "distance to the training mean");
        println!("(training reconstruction MSE {train_mse:.4}; predicting the mean gives 1)");
        let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        println!(
            "threshold {threshold:.4} (flags {:.0}% of training rows): precision {}, recall {} \
             ({} flagged, {} of them anomalies)",
            c.contamination * 100.0,
            show(at.precision()),
            show(at.recall()),
            at.true_positives + at.false_positives,
            at.true_positives
        );
    }
    Ok(())
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
        let c: Config =
            cli::parse("--csv a.csv --label-column class --normal ok --json --latent 3")?;
        assert_eq!(
            (c.csv.to_str(), c.label_column.as_str(), c.normal.as_str()),
            (Some("a.csv"), "class", "ok")
        );
        assert!(c.json && c.latent == 3);
        let d: Config = cli::parse("")?;
        assert_eq!(
            (d.label_column.as_str(), d.normal.as_str(), d.latent),
            ("diagnosis", "benign", 4)
        );
        Ok(())
    }

    #[test]
    fn every_flag_the_readme_mentions_parses() {
        let mentions = cli::readme::mentions("anomaly");
        let flags: Vec<&str> = mentions
            .iter()
            .flat_map(|m| &m.args)
            .filter(|a| a.starts_with("--"))
            .map(String::as_str)
            .collect();
        for flag in ["--json", "--csv", "--label-column", "--normal"] {
            assert!(flags.contains(&flag), "{flag} not found in {mentions:?}");
        }
        let failures = cli::readme::check::<Config>("anomaly");
        assert!(
            failures.is_empty(),
            "README flags the parser refuses:\n{}",
            failures.join("\n")
        );
    }
}
