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

/// Saves `model` and its `scaler` to `path`, atomically.
///
/// # Errors
/// The model file's: [`Error::Io`] and friends.
pub fn save<T: Float>(path: &Path, model: &Autoencoder<T>, scaler: Option<&Scaler>) -> Result<()> {
    if scaler.is_some() {
        return Err(Error::InvalidConfig(
            "a scaler cannot be saved in a model file yet; train with --scale none".into(),
        ));
    }
    model.save(path)
}

/// Loads the model at `path`, whichever its element type.
///
/// # Errors
/// The loader's, for a file that is not a model.
pub fn load(path: &Path) -> Result<ModelFile> {
    let model = match Autoencoder::<f32>::load(path) {
        Ok(m) => Loaded::F32(m),
        Err(Error::ElementType { .. }) => Loaded::F64(Autoencoder::<f64>::load(path)?),
        Err(e) => return Err(e),
    };
    Ok(ModelFile {
        model,
        scaler: None,
    })
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
