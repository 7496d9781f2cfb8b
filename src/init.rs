//! Weight initializers: Glorot (Xavier) and He (Kaiming), uniform and normal.

use ndarray::Array2;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::float::Float;

/// How a dense layer's `(n_in, n_out)` weight matrix is drawn. Biases always start at 0.
///
/// | variant | distribution |
/// | --- | --- |
/// | `GlorotUniform` | `U(-l, l)`, `l = sqrt(6 / (n_in + n_out))` |
/// | `GlorotNormal` | `N(0, 2 / (n_in + n_out))` |
/// | `HeUniform` | `U(-l, l)`, `l = sqrt(6 / n_in)` |
/// | `HeNormal` | `N(0, 2 / n_in)` |
///
/// Numbers are drawn in `f64` and cast to the element type, so `f32` and `f64` models built
/// from the same seed hold the same weights up to rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Init {
    /// Glorot/Xavier uniform (Glorot & Bengio 2010).
    GlorotUniform,
    /// Glorot/Xavier normal.
    GlorotNormal,
    /// He/Kaiming uniform (He et al. 2015), for the ReLU family.
    HeUniform,
    /// He/Kaiming normal.
    HeNormal,
}

impl Init {
    /// The default for a layer with this activation: He uniform for ReLU, leaky ReLU, ELU
    /// and GELU; Glorot uniform for the rest (identity, sigmoid, tanh, softplus).
    pub fn default_for(activation: Activation) -> Init {
        match activation {
            Activation::Relu | Activation::LeakyRelu(_) | Activation::Elu(_) | Activation::Gelu => {
                Init::HeUniform
            }
            _ => Init::GlorotUniform,
        }
    }

    /// Draws an `(n_in, n_out)` weight matrix, row by row.
    pub fn weights<T: Float, R: Rng + ?Sized>(
        &self,
        n_in: usize,
        n_out: usize,
        rng: &mut R,
    ) -> Array2<T> {
        self.draw((n_in, n_out), n_in, n_out, rng)
    }

    /// Draws a matrix of `shape`, row by row, with the given fans (for a convolution
    /// `(c_out, c_in kh kw)` with fans `c_in kh kw` and `c_out kh kw`, as PyTorch counts them).
    pub(crate) fn draw<T: Float, R: Rng + ?Sized>(
        &self,
        shape: (usize, usize),
        fan_in: usize,
        fan_out: usize,
        rng: &mut R,
    ) -> Array2<T> {
        let fan_avg_2 = (fan_in + fan_out) as f64;
        let fan_in = fan_in as f64;
        let (uniform, scale) = match self {
            Init::GlorotUniform => (true, (6.0 / fan_avg_2).sqrt()),
            Init::GlorotNormal => (false, (2.0 / fan_avg_2).sqrt()),
            Init::HeUniform => (true, (6.0 / fan_in).sqrt()),
            Init::HeNormal => (false, (2.0 / fan_in).sqrt()),
        };
        Array2::from_shape_simple_fn(shape, || {
            let u: f64 = if uniform {
                rng.random_range(-1.0..1.0)
            } else {
                StandardNormal.sample(rng)
            };
            T::cast(u * scale)
        })
    }
}
