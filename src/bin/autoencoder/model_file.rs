//! Model files for the tool: a model of either element type, with the scaler its inputs
//! went through.

use std::path::Path;

use autoencoder::data::Scaler;
use autoencoder::{Autoencoder, Error, Float, Result};
use ndarray::{Array2, ArrayView2};

/// A model as loaded, in the element type it was saved in.
pub enum Loaded {
    F32(Autoencoder<f32>),
    F64(Autoencoder<f64>),
}

/// A loaded model with the scaler saved beside it.
pub struct ModelFile {
    pub model: Loaded,
    pub scaler: Option<Scaler>,
}

/// Saves `model` and, if there is one, the `scaler` its inputs go through, to `path`,
/// atomically.
///
/// # Errors
/// The model file's: [`Error::Io`] and friends.
pub fn save<T: Float>(path: &Path, model: &Autoencoder<T>, scaler: Option<&Scaler>) -> Result<()> {
    match scaler {
        Some(s) => model.save_with_scaler(path, s),
        None => model.save(path),
    }
}

/// Loads the model at `path`, whichever its element type.
///
/// # Errors
/// The loader's, for a file that is not a model.
pub fn load(path: &Path) -> Result<ModelFile> {
    let (model, scaler) = match Autoencoder::<f32>::load_with_scaler(path) {
        Ok((m, s)) => (Loaded::F32(m), s),
        Err(Error::ElementType { .. }) => {
            let (m, s) = Autoencoder::<f64>::load_with_scaler(path)?;
            (Loaded::F64(m), s)
        }
        Err(e) => return Err(e),
    };
    Ok(ModelFile { model, scaler })
}

impl ModelFile {
    /// `x` in the model's input units: through the scaler if there is one.
    pub fn scale_in(&self, x: Array2<f64>) -> Result<Array2<f64>> {
        match &self.scaler {
            Some(s) => s.transform(x.view()),
            None => Ok(x),
        }
    }

    /// `y` (reconstructions) back in the data's units.
    pub fn scale_out(&self, y: Array2<f64>) -> Result<Array2<f64>> {
        match &self.scaler {
            Some(s) => s.inverse_transform(y.view()),
            None => Ok(y),
        }
    }
}

/// `x` in element type `T`.
pub fn cast<T: Float>(x: ArrayView2<f64>) -> Array2<T> {
    x.mapv(T::cast)
}

/// `y` in `f64`.
pub fn widen<T: Float>(y: ArrayView2<T>) -> Array2<f64> {
    y.mapv(|v| v.as_f64())
}
