//! `score` and `evaluate`: how well a saved model reconstructs a data file, row by row or
//! on the whole, for anomaly detection.

use std::path::PathBuf;

use autoencoder::{metrics, Activation, Error, Loss, Pca, Result};
use clap::Args;
use ndarray::{Array1, Array2, Axis};
use serde_json::json;

use crate::files;
use crate::model_file::{self, cast, Loaded, ModelFile};

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
    /// Print one JSON line (rows, threshold, rows flagged, mean score)
    #[arg(long)]
    pub json: bool,
}

/// Runs `autoencoder score`.
pub fn run(s: &Score) -> Result<()> {
    let file = model_file::load(&s.model)?;
    let x = files::read(&s.data, s.label_column.as_deref())?.x;
    let scores = row_errors(&file, x)?;
    let threshold = match (s.threshold, s.contamination) {
        (Some(t), _) => Some(t),
        (None, Some(f)) => Some(metrics::contamination_threshold(scores.view(), f)?),
        (None, None) => None,
    };
    let mut columns = vec!["score".to_string()];
    let mut out = scores.clone().insert_axis(Axis(1));
    let mut flagged = None;
    if let Some(t) = threshold {
        let flags = scores.mapv(|v| f64::from(u8::from(v > t)));
        flagged = Some(flags.sum());
        out = ndarray::concatenate![Axis(1), out, flags.insert_axis(Axis(1))];
        columns.push("anomaly".into());
    }
    files::write(&s.out, out.view(), &columns)?;
    if s.json {
        println!(
            "{}",
            json!({
                "rows": scores.len(),
                "mean_score": scores.mean(),
                "threshold": threshold,
                "flagged": flagged,
                "out": s.out.display().to_string(),
            })
        );
    } else {
        if let (Some(t), Some(f)) = (threshold, flagged) {
            eprintln!("threshold {t}: {f} of {} rows flagged", scores.len());
        }
        eprintln!("wrote {} ({} rows)", s.out.display(), out.nrows());
    }
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

/// Each row's mean squared reconstruction error, in the model's input units.
fn row_errors(file: &ModelFile, x: Array2<f64>) -> Result<Array1<f64>> {
    let x = file.scale_in(x)?;
    match &file.model {
        Loaded::F32(m) => {
            m.reconstruction_errors(cast::<f32>(x.view()).view(), Loss::MeanSquaredError)
        }
        Loaded::F64(m) => m.reconstruction_errors(x.view(), Loss::MeanSquaredError),
    }
}

/// Mean losses of a model on a data file, beside PCA at the same code size
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:\n  \
    autoencoder evaluate cells.model cells.csv --label-column diagnosis --normal benign\n  \
    autoencoder evaluate mnist.model t10k-images-idx3-ubyte.gz --json\n  \
    autoencoder evaluate mnist.model t10k-images-idx3-ubyte.gz --labels t10k-labels-idx1-ubyte.gz --normal 1\n\n\
    The PCA baseline is fitted on the rows evaluated, with as many components as the \
    model's code (all columns when the code is as wide as the data).")]
pub struct Evaluate {
    /// The model, as `autoencoder train` saved it
    pub model: PathBuf,
    /// The data: .npy, .csv or IDX images
    pub data: PathBuf,
    /// CSV: the label column (with --normal, the ROC-AUC of the scores is reported)
    #[arg(long, value_name = "NAME", conflicts_with = "labels")]
    pub label_column: Option<String>,
    /// The labels in a file of their own, one per row: IDX labels or a 1-D .npy
    #[arg(long, value_name = "PATH")]
    pub labels: Option<PathBuf>,
    /// The label of normal rows; every other label is an anomaly (needs --label-column or --labels)
    #[arg(long, value_name = "VALUE")]
    pub normal: Option<String>,
    /// Print one JSON line
    #[arg(long)]
    pub json: bool,
}

/// Runs `autoencoder evaluate`.
pub fn run_evaluate(e: &Evaluate) -> Result<()> {
    let file = model_file::load(&e.model)?;
    let mut table = files::read(&e.data, e.label_column.as_deref())?;
    if let Some(path) = &e.labels {
        let labels = files::read_labels(path)?;
        if labels.len() != table.x.nrows() {
            return Err(Error::ShapeMismatch {
                context: "evaluate --labels",
                expected: format!(
                    "{} labels, one per row of {}",
                    table.x.nrows(),
                    e.data.display()
                ),
                found: format!("{} in {}", labels.len(), path.display()),
            });
        }
        table.labels = Some(labels);
    }
    if e.normal.is_some() && table.labels.is_none() {
        return Err(Error::InvalidConfig(
            "--normal needs labels: --label-column (CSV) or --labels PATH".into(),
        ));
    }
    let scaled = file.scale_in(table.x.clone())?;
    let scores = row_errors(&file, table.x)?;
    let mse = scores.mean().unwrap_or(f64::NAN);
    // Binary cross-entropy too, where it is defined: a sigmoid output and data in [0, 1].
    let unit = scaled.iter().all(|v| (0.0..=1.0).contains(v));
    let bce = match &file.model {
        Loaded::F32(m) if unit && m.output_activation() == Activation::Sigmoid => {
            Some(m.evaluate(
                cast::<f32>(scaled.view()).view(),
                cast::<f32>(scaled.view()).view(),
                Loss::BinaryCrossEntropy,
            )?)
        }
        Loaded::F64(m) if unit && m.output_activation() == Activation::Sigmoid => {
            Some(m.evaluate(scaled.view(), scaled.view(), Loss::BinaryCrossEntropy)?)
        }
        _ => None,
    };
    let k = match &file.model {
        Loaded::F32(m) => m.n_latent(),
        Loaded::F64(m) => m.n_latent(),
    };
    let pca = Pca::fit(scaled.view(), k.min(scaled.ncols()))?;
    let pca_scores =
        metrics::mse_per_sample(scaled.view(), pca.reconstruct(scaled.view())?.view())?;
    let pca_mse = pca_scores.mean().unwrap_or(f64::NAN);
    let auc = match (&table.labels, &e.normal) {
        (Some(labels), Some(normal)) => {
            let anomalous: Array1<bool> = labels.iter().map(|l| l != normal).collect();
            Some((
                metrics::roc_auc(scores.view(), anomalous.view())?,
                metrics::roc_auc(pca_scores.view(), anomalous.view())?,
                metrics::average_precision(scores.view(), anomalous.view())?,
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
                "bce": bce,
                "pca_components": k,
                "pca_mse": pca_mse,
                "roc_auc": auc.map(|a| a.0),
                "pca_roc_auc": auc.map(|a| a.1),
                "average_precision": auc.map(|a| a.2),
            })
        );
    } else {
        println!(
            "{} rows: reconstruction MSE {mse:.6} (PCA-{k} fitted on these rows: {pca_mse:.6}){}",
            scores.len(),
            bce.map_or(String::new(), |b| format!(", binary cross-entropy {b:.6}"))
        );
        if let Some((a, p, ap)) = auc {
            println!("ROC-AUC of the scores: {a:.4} (PCA-{k}: {p:.4}), average precision {ap:.4}");
        }
    }
    Ok(())
}
