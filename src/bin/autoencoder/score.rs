//! `score` and `evaluate`: how well a saved model reconstructs a data file, row by row or
//! on the whole, for anomaly detection.

use std::path::PathBuf;

use autoencoder::{Autoencoder, Error, Float, Pca, Result};
use clap::Args;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde_json::json;

use crate::files;
use crate::model_file::{self, cast, widen, Loaded, ModelFile};

/// Write each row's reconstruction error (its anomaly score), optionally with a 0/1 flag
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:\n  \
    autoencoder score sensors.model today.csv -o scores.csv --contamination 0.01\n  \
    autoencoder score digits.model digits.npy -o scores.npy --threshold 0.05\n\n\
    The score of a row is the mean squared difference between the row and its \
    reconstruction, in the model's input units (after its scaler).")]
pub struct Score {
    /// The model, as `autoencoder train` saved it
    pub model: PathBuf,
    /// The rows to score: .npy, .csv or IDX images
    pub data: PathBuf,
    /// Where to write the scores: .npy or .csv (one row per input row)
    #[arg(short = 'o', long = "out", value_name = "PATH")]
    pub out: PathBuf,
    /// CSV: a label column to leave out of the features
    #[arg(long, value_name = "NAME")]
    pub label_column: Option<String>,
    /// Flag rows whose score is above VALUE (adds a 0/1 column)
    #[arg(long, value_name = "VALUE", conflicts_with = "contamination", value_parser = finite)]
    pub threshold: Option<f64>,
    /// Flag the highest-scoring fraction F of the rows, F in [0, 1) (adds a 0/1 column)
    #[arg(long, value_name = "F", value_parser = fraction)]
    pub contamination: Option<f64>,
}

/// Runs `autoencoder score`.
pub fn run(s: &Score) -> Result<()> {
    let file = model_file::load(&s.model)?;
    let x = files::read(&s.data, s.label_column.as_deref())?.x;
    let scores = row_errors(&file, x)?;
    let threshold = match (s.threshold, s.contamination) {
        (Some(t), _) => Some(t),
        (None, Some(f)) => Some(quantile_threshold(&scores, f)),
        (None, None) => None,
    };
    let mut columns = vec!["score".to_string()];
    let mut out = scores.clone().insert_axis(Axis(1));
    if let Some(t) = threshold {
        let flags = scores.mapv(|v| f64::from(u8::from(v > t)));
        eprintln!(
            "threshold {t}: {} of {} rows flagged",
            flags.sum(),
            scores.len()
        );
        out = ndarray::concatenate![Axis(1), out, flags.insert_axis(Axis(1))];
        columns.push("anomaly".into());
    }
    files::write(&s.out, out.view(), &columns)?;
    eprintln!("wrote {} ({} rows)", s.out.display(), out.nrows());
    Ok(())
}

/// `--threshold`: a finite number.
fn finite(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("`{s}` is not a finite number")),
    }
}

/// `--contamination`: a fraction in [0, 1).
fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a fraction in [0, 1)")),
    }
}

/// The threshold above which the largest `round(f n)` of the `n` scores lie: the next
/// score below them (infinity when none is to be flagged, so that ties never add rows).
fn quantile_threshold(scores: &Array1<f64>, f: f64) -> f64 {
    let mut sorted = scores.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let k = ((f * n as f64).round() as usize).min(n);
    match k {
        0 => f64::INFINITY,
        k if k == n => f64::NEG_INFINITY,
        k => sorted[n - k - 1],
    }
}

/// Each row's mean squared reconstruction error, in the model's input units.
fn row_errors(file: &ModelFile, x: Array2<f64>) -> Result<Array1<f64>> {
    let x = file.scale_in(x)?;
    let y = match &file.model {
        Loaded::F32(m) => reconstruct(m, x.view())?,
        Loaded::F64(m) => reconstruct(m, x.view())?,
    };
    Ok((&y - &x)
        .mapv(|d| d * d)
        .mean_axis(Axis(1))
        .unwrap_or_else(|| Array1::zeros(x.nrows())))
}

fn reconstruct<T: Float>(m: &Autoencoder<T>, x: ArrayView2<f64>) -> Result<Array2<f64>> {
    let y = m.reconstruct(cast::<T>(x).view())?;
    Ok(widen(y.view()))
}

/// Mean losses of a model on a data file, beside PCA at the same code size
#[derive(Debug, Clone, Args)]
pub struct Evaluate {
    /// The model, as `autoencoder train` saved it
    pub model: PathBuf,
    /// The data: .npy, .csv or IDX images
    pub data: PathBuf,
    /// CSV: the label column (with --normal, the ROC-AUC of the scores is reported)
    #[arg(long, value_name = "NAME")]
    pub label_column: Option<String>,
    /// The label of normal rows; every other label is an anomaly
    #[arg(long, value_name = "VALUE", requires = "label_column")]
    pub normal: Option<String>,
    /// Print one JSON line
    #[arg(long)]
    pub json: bool,
}

/// Runs `autoencoder evaluate`.
pub fn run_evaluate(e: &Evaluate) -> Result<()> {
    let file = model_file::load(&e.model)?;
    let table = files::read(&e.data, e.label_column.as_deref())?;
    let scaled = file.scale_in(table.x.clone())?;
    let scores = row_errors(&file, table.x)?;
    let mse = scores.mean().unwrap_or(f64::NAN);
    let k = match &file.model {
        Loaded::F32(m) => m.n_latent(),
        Loaded::F64(m) => m.n_latent(),
    };
    let pca = Pca::fit(scaled.view(), k.min(scaled.ncols()))?;
    let pca_scores = (&pca.reconstruct(scaled.view())? - &scaled)
        .mapv(|d| d * d)
        .mean_axis(Axis(1))
        .unwrap_or_else(|| Array1::zeros(scaled.nrows()));
    let pca_mse = pca_scores.mean().unwrap_or(f64::NAN);
    let auc = match (&table.labels, &e.normal) {
        (Some(labels), Some(normal)) => {
            let anomalous: Vec<bool> = labels.iter().map(|l| l != normal).collect();
            Some((
                roc_auc(&scores, &anomalous)?,
                roc_auc(&pca_scores, &anomalous)?,
            ))
        }
        _ => None,
    };
    if e.json {
        println!(
            "{}",
            json!({
                "rows": scores.len(),
                "mse": mse,
                "pca_components": k,
                "pca_mse": pca_mse,
                "roc_auc": auc.map(|a| a.0),
                "pca_roc_auc": auc.map(|a| a.1),
            })
        );
    } else {
        println!(
            "{} rows: reconstruction MSE {mse:.6} (PCA-{k} fitted on these rows: {pca_mse:.6})",
            scores.len()
        );
        if let Some((a, p)) = auc {
            println!("ROC-AUC of the scores: {a:.4} (PCA-{k}: {p:.4})");
        }
    }
    Ok(())
}

/// ROC-AUC: the probability that a random anomaly scores above a random normal row (ties
/// count half).
fn roc_auc(scores: &Array1<f64>, anomalous: &[bool]) -> Result<f64> {
    let pos: Vec<f64> = scores
        .iter()
        .zip(anomalous)
        .filter(|p| *p.1)
        .map(|p| *p.0)
        .collect();
    let neg: Vec<f64> = scores
        .iter()
        .zip(anomalous)
        .filter(|p| !*p.1)
        .map(|p| *p.0)
        .collect();
    if pos.is_empty() || neg.is_empty() {
        return Err(Error::InvalidConfig(
            "ROC-AUC needs both normal and anomalous rows; check --normal".into(),
        ));
    }
    let mut wins = 0.0;
    for &p in &pos {
        for &n in &neg {
            wins += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    Ok(wins / (pos.len() * neg.len()) as f64)
}
