//! `encode`, `decode` and `reconstruct`: a saved model applied to a data file.

use std::path::PathBuf;

use autoencoder::{Autoencoder, Float, Result};
use clap::Args;
use ndarray::Array2;

use crate::files;
use crate::model_file::{self, cast, widen, Loaded};

/// What to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apply {
    Encode,
    Decode,
    Reconstruct,
}

/// A model, an input file and an output file
#[derive(Debug, Clone, Args)]
pub struct Files {
    /// The model, as `autoencoder train` saved it
    pub model: PathBuf,
    /// The input: .npy, .csv or IDX images (codes for `decode`)
    pub input: PathBuf,
    /// Where to write the result: .npy or .csv (written atomically)
    #[arg(short = 'o', long = "out", value_name = "PATH")]
    pub out: PathBuf,
    /// CSV input: a label column to leave out
    #[arg(long, value_name = "NAME")]
    pub label_column: Option<String>,
}

/// Runs `what` on the files.
pub fn run(what: Apply, f: &Files) -> Result<()> {
    let file = model_file::load(&f.model)?;
    let x = files::read(&f.input, f.label_column.as_deref())?.x;
    // Data go through the scaler on the way in; reconstructions come back out of it.
    let x = match what {
        Apply::Decode => x,
        _ => file.scale_in(x)?,
    };
    let y = match &file.model {
        Loaded::F32(m) => apply(what, m, x)?,
        Loaded::F64(m) => apply(what, m, x)?,
    };
    let y = match what {
        Apply::Encode => y,
        _ => file.scale_out(y)?,
    };
    let prefix = if what == Apply::Encode { "z" } else { "x" };
    let columns: Vec<String> = (0..y.ncols()).map(|j| format!("{prefix}{j}")).collect();
    files::write(&f.out, y.view(), &columns)?;
    eprintln!("wrote {} ({} x {})", f.out.display(), y.nrows(), y.ncols());
    Ok(())
}

fn apply<T: Float>(what: Apply, m: &Autoencoder<T>, x: Array2<f64>) -> Result<Array2<f64>> {
    let x = cast::<T>(x.view());
    let y = match what {
        Apply::Encode => m.encode(x.view())?,
        Apply::Decode => m.decode(x.view())?,
        Apply::Reconstruct => m.reconstruct(x.view())?,
    };
    Ok(widen(y.view()))
}
