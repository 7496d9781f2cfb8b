//! `autoencoder inspect MODEL`: what a model or checkpoint file holds.

use std::path::PathBuf;

use autoencoder::{Autoencoder, Checkpoint, Error, Float, Result, FORMAT_VERSION};
use clap::Args;
use serde_json::json;

use crate::model_file::{self, Loaded};

/// Show a model's or checkpoint's architecture, parameters, element type and history
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:\n  \
    autoencoder inspect mnist.model\n  \
    autoencoder inspect run.ckpt --json")]
pub struct Inspect {
    /// A model or checkpoint file
    pub file: PathBuf,
    /// Print one JSON line instead of text
    #[arg(long)]
    pub json: bool,
}

/// Runs `autoencoder inspect`.
pub fn run(i: &Inspect) -> Result<()> {
    // A checkpoint first: its loader refuses plain model files, and a model's accepts no
    // checkpoint.
    if let Some(report) = checkpoint::<f32>(i)?.or(checkpoint::<f64>(i)?) {
        println!("{report}");
        return Ok(());
    }
    let file = model_file::load(&i.file)?;
    let scaler = file.scaler.as_ref().map(|s| format!("{:?}", s.scaling()));
    let report = match &file.model {
        Loaded::F32(m) => describe(i, m, "f32", scaler, None),
        Loaded::F64(m) => describe(i, m, "f64", scaler, None),
    };
    println!("{report}");
    Ok(())
}

fn checkpoint<T: Float>(i: &Inspect) -> Result<Option<String>> {
    match Checkpoint::<T>::load(&i.file) {
        Ok(c) => {
            let history: Vec<_> = c
                .history()
                .epochs
                .iter()
                .map(|r| (r.epoch, r.train_loss, r.valid_loss))
                .collect();
            let element = if std::mem::size_of::<T>() == 4 {
                "f32"
            } else {
                "f64"
            };
            Ok(Some(describe(
                i,
                c.model(),
                element,
                None,
                Some((c.epoch(), history)),
            )))
        }
        Err(Error::ElementType { .. } | Error::Format { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

type Epochs = (usize, Vec<(usize, f64, Option<f64>)>);

fn describe<T: Float>(
    i: &Inspect,
    m: &Autoencoder<T>,
    element: &str,
    scaler: Option<String>,
    run: Option<Epochs>,
) -> String {
    let params: usize = m
        .layers()
        .iter()
        .map(|l| l.weights().len() + l.bias().len())
        .sum();
    let arch = m.architecture();
    let sizes = m.sizes();
    if i.json {
        return json!({
            "file": i.file.display().to_string(),
            "kind": if run.is_some() { "checkpoint" } else { "model" },
            "format_version": FORMAT_VERSION,
            "element_type": element,
            "sizes": sizes,
            "parameters": params,
            "architecture": arch,
            "scaler": scaler,
            "epochs_done": run.as_ref().map(|r| r.0),
            "history": run.as_ref().map(|r| &r.1),
        })
        .to_string();
    }
    let mut out = format!(
        "{}: {} (format version {FORMAT_VERSION}), element type {element}\n\
         layers {}  ({params} parameters; latent {:?}, tying {:?})\n",
        i.file.display(),
        if run.is_some() { "checkpoint" } else { "model" },
        sizes
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("-"),
        m.latent(),
        m.tying(),
    );
    for (k, layer) in m.layers().iter().enumerate() {
        out += &format!(
            "  layer {k}: {:?} {} -> {}, {}\n",
            layer.spec().kind,
            arch.input_width(k),
            layer.spec().n_out,
            layer.spec().activation,
        );
    }
    out += &format!("scaler: {}", scaler.unwrap_or("none".into()));
    if let Some((epoch, history)) = run {
        out += &format!("\nepochs done: {epoch}");
        for (e, train, valid) in history {
            out += &format!(
                "\n  epoch {e}: train {train:.6}  valid {}",
                valid.map_or("-".into(), |v| format!("{v:.6}"))
            );
        }
    }
    out
}
