//! `Dense`: a fully connected layer `a = s(X W + b)` with its hand-derived backward pass.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis, Zip};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::budget::check_elements;
use crate::compute::product;
use crate::data::check_finite;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::init::Init;
use crate::layers::{LayerKind, ParamKind, ParamVisitor};

/// A fully connected layer: `z = X W + b`, `a = s(z)`.
///
/// Shapes, for a batch of `batch` rows: input `X` `(batch, n_in)`, weights `W`
/// `(n_in, n_out)`, bias `b` `(n_out)`, pre-activation `z` and output `a` `(batch, n_out)`.
/// The layer owns its parameters and their gradients; the per-batch buffers (`z`, `a`,
/// gradients) belong to the model's workspace and are passed in, so a training step
/// allocates nothing.
///
/// ```
/// use autoencoder::{Activation, Dense};
/// use ndarray::array;
/// # fn main() -> autoencoder::Result<()> {
/// let layer = Dense::new(array![[1.0, -1.0], [0.5, 2.0]], array![0.0, 0.5], Activation::Relu)?;
/// let out = layer.infer(array![[1.0, 1.0]].view())?;
/// assert_eq!(out, array![[1.5, 1.5]]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "DenseData<T>", bound(deserialize = "T: Float"))]
pub struct Dense<T> {
    weights: Array2<T>, // (n_in, n_out)
    bias: Array1<T>,    // (n_out)
    activation: Activation,
    #[serde(skip)]
    grad_weights: Array2<T>, // (n_in, n_out), dL/dW, accumulated
    #[serde(skip)]
    grad_bias: Array1<T>, // (n_out), dL/db, accumulated
}

/// A [`Dense`] as serde reads it, before the checks of [`Dense::new`], which every
/// deserialized layer goes through.
#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Float"))]
struct DenseData<T> {
    weights: Array2<T>,
    bias: Array1<T>,
    activation: Activation,
}

impl<T: Float> TryFrom<DenseData<T>> for Dense<T> {
    type Error = Error;

    fn try_from(data: DenseData<T>) -> Result<Self> {
        Dense::new(data.weights, data.bias, data.activation)
    }
}

impl<T: Float> Dense<T> {
    /// A layer from given weights `(n_in, n_out)` and bias `(n_out)`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the bias length is not `n_out` or a dimension is 0;
    /// [`Error::NonFiniteData`] if a parameter is NaN or infinite;
    /// [`Error::InvalidHyperparameter`] if the activation's parameter is out of range.
    pub fn new(weights: Array2<T>, bias: Array1<T>, activation: Activation) -> Result<Self> {
        let (n_in, n_out) = weights.dim();
        if bias.len() != n_out || n_in == 0 || n_out == 0 {
            return Err(Error::ShapeMismatch {
                context: "Dense::new",
                expected: format!("weights (n_in > 0, n_out > 0) and bias (n_out) = ({n_out})"),
                found: format!("weights {:?}, bias ({})", weights.dim(), bias.len()),
            });
        }
        activation.validate_for::<T>()?;
        check_finite(weights.view(), "Dense weights")?;
        check_finite(bias.view().insert_axis(Axis(0)), "Dense bias")?;
        Ok(Dense {
            grad_weights: Array2::zeros((n_in, n_out)),
            grad_bias: Array1::zeros(n_out),
            weights: weights.as_standard_layout().into_owned(),
            bias,
            activation,
        })
    }

    /// A layer with weights drawn by `init` and zero bias.
    ///
    /// # Errors
    /// [`Error::TooLarge`] if the weights would exceed [`crate::memory_limit`] (checked
    /// before anything is allocated); [`Error::ShapeMismatch`] for a dimension of 0;
    /// [`Error::InvalidHyperparameter`] for an activation parameter out of range.
    pub fn random<R: Rng + ?Sized>(
        n_in: usize,
        n_out: usize,
        activation: Activation,
        init: Init,
        rng: &mut R,
    ) -> Result<Self> {
        if n_in == 0 || n_out == 0 {
            return Err(Error::ShapeMismatch {
                context: "Dense::random",
                expected: "n_in > 0 and n_out > 0".into(),
                found: format!("({n_in}, {n_out})"),
            });
        }
        activation.validate_for::<T>()?;
        check_elements::<T>("layer weights", &[n_in, n_out])?;
        Ok(Dense {
            weights: init.weights(n_in, n_out, rng),
            bias: Array1::zeros(n_out),
            activation,
            grad_weights: Array2::zeros((n_in, n_out)),
            grad_bias: Array1::zeros(n_out),
        })
    }

    /// Number of inputs.
    pub fn n_in(&self) -> usize {
        self.weights.nrows()
    }

    /// Number of outputs (units).
    pub fn n_out(&self) -> usize {
        self.weights.ncols()
    }

    /// Number of parameters, `n_in * n_out + n_out`.
    pub fn n_params(&self) -> usize {
        self.weights.len() + self.bias.len()
    }

    /// The activation `s`.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Weights `W`, `(n_in, n_out)`: column `j` holds unit `j`'s incoming weights.
    pub fn weights(&self) -> ArrayView2<'_, T> {
        self.weights.view()
    }

    /// Bias `b`, `(n_out)`.
    pub fn bias(&self) -> ArrayView1<'_, T> {
        self.bias.view()
    }

    /// Mutable weights, for hand edits and tests.
    pub fn weights_mut(&mut self) -> ArrayViewMut2<'_, T> {
        self.weights.view_mut()
    }

    /// Mutable bias.
    pub fn bias_mut(&mut self) -> ndarray::ArrayViewMut1<'_, T> {
        self.bias.view_mut()
    }

    /// `dL/dW` accumulated since the last [`Dense::zero_grad`], `(n_in, n_out)`.
    pub fn grad_weights(&self) -> ArrayView2<'_, T> {
        self.grad_weights.view()
    }

    /// `dL/db` accumulated since the last [`Dense::zero_grad`], `(n_out)`.
    pub fn grad_bias(&self) -> ArrayView1<'_, T> {
        self.grad_bias.view()
    }

    /// Sets both gradients to 0.
    pub fn zero_grad(&mut self) {
        self.grad_weights.fill(T::zero());
        self.grad_bias.fill(T::zero());
    }

    /// Forward pass into caller-owned buffers: `z = X W + b`, `a = s(z)`.
    ///
    /// `input`: `(batch, n_in)`; `z`, `a`: `(batch, n_out)`. Shapes are the caller's
    /// responsibility (the model checks them once per call).
    ///
    /// # Panics
    /// If the shapes disagree (an internal invariant; public entry points check first).
    pub fn forward(&self, input: ArrayView2<T>, mut z: ArrayViewMut2<T>, a: ArrayViewMut2<T>) {
        product(T::one(), &input, &self.weights.view(), T::zero(), &mut z);
        self.activation.forward_with_bias(self.bias.view(), z, a); // z += b, a = s(z)
    }

    /// Backward pass. Given `d_z = dL/dz` `(batch, n_out)` and the `input` `(batch, n_in)`
    /// the forward pass saw, accumulates `dL/dW += X^T d_z` and `dL/db += sum over rows of
    /// d_z`, and, if `d_input` is given, overwrites it with `dL/dX = d_z W^T`
    /// `(batch, n_in)`.
    ///
    /// `d_z` is the gradient *after* the activation: turn `dL/da` into `dL/dz` first with
    /// [`Activation::backward`].
    ///
    /// # Panics
    /// If the shapes disagree (an internal invariant; public entry points check first).
    pub fn backward(
        &mut self,
        input: ArrayView2<T>,
        d_z: ArrayView2<T>,
        d_input: Option<ArrayViewMut2<T>>,
    ) {
        product(
            T::one(),
            &input.t(),
            &d_z,
            T::one(),
            &mut self.grad_weights.view_mut(),
        );
        #[cfg(test)]
        {
            let factor = crate::gradcheck::SABOTAGE.with(|s| s.get());
            if factor != 1.0 {
                self.grad_weights.mapv_inplace(|g| g * T::cast(factor));
            }
        }
        for row in d_z.rows() {
            Zip::from(&mut self.grad_bias)
                .and(row)
                .for_each(|g, &d| *g += d);
        }
        if let Some(mut d_input) = d_input {
            product(T::one(), &d_z, &self.weights.t(), T::zero(), &mut d_input);
        }
    }

    /// Forward pass for inference: returns `a = s(X W + b)`, `(batch, n_out)` (allocates).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `input` does not have `n_in` columns.
    pub fn infer(&self, input: ArrayView2<T>) -> Result<Array2<T>> {
        if input.ncols() != self.n_in() {
            return Err(Error::ShapeMismatch {
                context: "Dense::infer input",
                expected: format!("(_, {})", self.n_in()),
                found: format!("{:?}", input.dim()),
            });
        }
        let mut z = Array2::zeros((input.nrows(), self.n_out()));
        let mut a = Array2::zeros((input.nrows(), self.n_out()));
        self.forward(input, z.view_mut(), a.view_mut());
        Ok(a)
    }

    /// Parameters (read) beside their gradients (write), for penalties:
    /// `(W, b, dL/dW, dL/db)`.
    pub(crate) fn params_with_grads_mut(
        &mut self,
    ) -> (
        ArrayView2<'_, T>,
        ArrayView1<'_, T>,
        &mut Array2<T>,
        &mut Array1<T>,
    ) {
        (
            self.weights.view(),
            self.bias.view(),
            &mut self.grad_weights,
            &mut self.grad_bias,
        )
    }

    /// Restores the gradient buffers after deserialization (they are not saved).
    pub(crate) fn ensure_grads(&mut self) {
        if self.grad_weights.dim() != self.weights.dim() {
            self.grad_weights = Array2::zeros(self.weights.dim());
        }
        if self.grad_bias.len() != self.bias.len() {
            self.grad_bias = Array1::zeros(self.bias.len());
        }
    }
}

impl<T: Float> LayerKind<T> for Dense<T> {
    fn n_in(&self) -> usize {
        Dense::n_in(self)
    }

    fn n_out(&self) -> usize {
        Dense::n_out(self)
    }

    fn activation(&self) -> Activation {
        self.activation
    }

    fn weights(&self) -> ArrayView2<'_, T> {
        self.weights.view()
    }

    fn bias(&self) -> ArrayView1<'_, T> {
        self.bias.view()
    }

    fn forward(&self, input: ArrayView2<T>, z: ArrayViewMut2<T>, a: ArrayViewMut2<T>) {
        Dense::forward(self, input, z, a)
    }

    fn backward(
        &mut self,
        input: ArrayView2<T>,
        d_z: ArrayView2<T>,
        d_input: Option<ArrayViewMut2<T>>,
    ) {
        Dense::backward(self, input, d_z, d_input)
    }

    fn zero_grad(&mut self) {
        Dense::zero_grad(self)
    }

    fn visit_params(&mut self, f: &mut ParamVisitor<'_, T>) {
        super::visit_weight_and_bias(
            (&mut self.weights, &mut self.grad_weights),
            (&mut self.bias, &mut self.grad_bias),
            f,
        );
    }

    fn param_kinds(&self) -> &'static [ParamKind] {
        &[ParamKind::Weight, ParamKind::Bias]
    }
}
