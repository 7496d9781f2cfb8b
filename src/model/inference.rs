//! Inference on a trained model: codes, reconstructions, and for a VAE the code
//! distribution, samples from the prior and interpolations. All take `&self` and allocate
//! their outputs.

use ndarray::{s, Array2, ArrayView1, ArrayView2};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::architecture::Latent;
use crate::budget::check_elements;
use crate::data::{check_finite, check_width};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::Layer;
use crate::model::Autoencoder;

impl<T: Float> Autoencoder<T> {
    /// The code `z = f(x)` for each row of `x` `(batch, n_in)`: `(batch, n_latent)`. For a
    /// Gaussian latent, the mean `mu`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x` does not have `n_in` columns;
    /// [`Error::NonFiniteData`] if it holds NaN or infinity.
    pub fn encode(&self, x: ArrayView2<T>) -> Result<Array2<T>> {
        check_width(x, self.n_in(), "encode input")?;
        check_finite(x, "encode input")?;
        self.check_batch_size("encode buffers", x.nrows())?;
        let code = run(self.encoder(), x);
        Ok(match self.latent() {
            Latent::Deterministic => code,
            Latent::Gaussian => code.slice(s![.., ..self.n_latent()]).to_owned(),
        })
    }

    /// For a Gaussian latent, the mean `mu` and log-variance `log sigma^2` of `q(z | x)` for
    /// each row of `x`, each `(batch, k)`.
    ///
    /// # Errors
    /// As [`Autoencoder::encode`]; [`Error::InvalidConfig`] for a deterministic latent.
    pub fn encode_distribution(&self, x: ArrayView2<T>) -> Result<(Array2<T>, Array2<T>)> {
        if self.latent() != Latent::Gaussian {
            return Err(Error::InvalidConfig(
                "encode_distribution needs a Gaussian latent (a VAE)".into(),
            ));
        }
        check_width(x, self.n_in(), "encode input")?;
        check_finite(x, "encode input")?;
        self.check_batch_size("encode buffers", x.nrows())?;
        let code = run(self.encoder(), x);
        let k = self.n_latent();
        Ok((
            code.slice(s![.., ..k]).to_owned(),
            code.slice(s![.., k..]).to_owned(),
        ))
    }

    /// Decodes `n` draws `z ~ N(0, I)` from `rng`: `(n, n_in)`. Meaningful for a trained
    /// VAE, whose prior is `N(0, I)`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a deterministic latent (its codes have no prior).
    pub fn sample<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Result<Array2<T>> {
        if self.latent() != Latent::Gaussian {
            return Err(Error::InvalidConfig(
                "sample needs a Gaussian latent (a VAE)".into(),
            ));
        }
        self.check_batch_size("samples", n)?;
        let z = Array2::from_shape_simple_fn((n, self.n_latent()), || {
            T::cast(StandardNormal.sample(rng))
        });
        Ok(run(self.decoder(), z.view()))
    }

    /// Decodes `steps` codes evenly spaced on the line from `f(a)` to `f(b)` (both ends
    /// included), for two inputs `a`, `b` of width `n_in`: `(steps, n_in)`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for inputs of the wrong width; [`Error::NonFiniteData`];
    /// [`Error::InvalidHyperparameter`] for `steps < 2`.
    pub fn interpolate(
        &self,
        a: ArrayView1<T>,
        b: ArrayView1<T>,
        steps: usize,
    ) -> Result<Array2<T>> {
        if steps < 2 {
            return Err(Error::hyper("steps", steps, "at least 2"));
        }
        let ends = ndarray::stack(ndarray::Axis(0), &[a, b]).map_err(|_| Error::ShapeMismatch {
            context: "interpolate inputs",
            expected: format!("two rows of width {}", self.n_in()),
            found: format!("{} and {}", a.len(), b.len()),
        })?;
        self.check_batch_size("interpolation steps", steps)?;
        let codes = self.encode(ends.view())?;
        let z = Array2::from_shape_fn((steps, self.n_latent()), |(i, j)| {
            let t = T::cast(i as f64 / (steps - 1) as f64);
            codes[[0, j]] + t * (codes[[1, j]] - codes[[0, j]])
        });
        self.decode(z.view())
    }

    /// The reconstruction `x^ = g(z)` for each row of `codes` `(batch, n_latent)`:
    /// `(batch, n_in)`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `codes` does not have `n_latent` columns;
    /// [`Error::NonFiniteData`] if it holds NaN or infinity.
    pub fn decode(&self, codes: ArrayView2<T>) -> Result<Array2<T>> {
        check_width(codes, self.n_latent(), "decode input")?;
        check_finite(codes, "decode input")?;
        self.check_batch_size("decode buffers", codes.nrows())?;
        Ok(run(self.decoder(), codes))
    }

    /// `g(f(x))`, `(batch, n_in)`; equal to `decode(encode(x))` (for a VAE, decodes `mu`).
    ///
    /// # Errors
    /// As [`Autoencoder::encode`].
    pub fn reconstruct(&self, x: ArrayView2<T>) -> Result<Array2<T>> {
        check_width(x, self.n_in(), "reconstruct input")?;
        check_finite(x, "reconstruct input")?;
        let codes = self.encode(x)?;
        Ok(run(self.decoder(), codes.view()))
    }
}

impl<T: Float> Autoencoder<T> {
    /// Checks that `rows` rows at the widest layer fit the memory budget: what inference,
    /// sampling and the training workspace allocate per layer.
    ///
    /// # Errors
    /// [`Error::TooLarge`] otherwise.
    pub(crate) fn check_batch_size(&self, what: &'static str, rows: usize) -> Result<()> {
        let arch = self.architecture();
        let widest = arch
            .layers
            .iter()
            .map(|l| l.n_out)
            .fold(arch.n_in, usize::max);
        check_elements::<T>(what, &[rows, widest]).map(|_| ())
    }
}

/// Inference through a stack of layers (allocates one output per layer).
fn run<T: Float>(layers: &[Layer<T>], x: ArrayView2<T>) -> Array2<T> {
    let mut out = x.to_owned();
    for layer in layers {
        out = layer.infer_unchecked(out.view());
    }
    out
}
