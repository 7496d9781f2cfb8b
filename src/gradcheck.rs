//! Finite-difference gradient checking, in `f64`.
//!
//! Each checker compares the hand-derived gradient `a` with the central difference
//! `n = (f(p + h) - f(p - h)) / 2h` for every parameter `p`, and reports the largest
//! relative error `|a - n| / max(|a| + |n|, TINY)`.
//!
//! [`TINY`] = 1e-4 turns the test into an absolute one for gradients smaller than that:
//! the central difference of an objective of size about 1 carries rounding noise near
//! `1e-16 / h`, about 1e-11 at `h = 1e-5`, which would dominate a relative error of a
//! 1e-7 gradient. A wrong gradient of any size above 1e-9 still shows an error above 1e-6.
//! With `h` near 1e-5 in `f64`, a correct gradient gives errors around 1e-8 or below;
//! kinks (ReLU at 0, L1 at 0) can give larger ones if a perturbation crosses them, so test
//! inputs should stay away from kinks.

use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::layers::{Dense, LayerKind, ParamKind};
use crate::model::Autoencoder;
use crate::objective::loss::Loss;
use crate::objective::{LossTerms, Penalty};

/// Floor of the relative error's denominator.
pub const TINY: f64 = 1e-4;

/// The outcome of a gradient check.
#[derive(Debug, Clone, PartialEq)]
pub struct GradCheck {
    /// The largest relative error found.
    pub max_rel_error: f64,
    /// Where it was, e.g. `"layer 1 weights [3, 0]"`.
    pub worst: String,
    /// The analytic and numerical gradient there.
    pub worst_pair: (f64, f64),
    /// How many values were checked.
    pub n_checked: usize,
}

impl GradCheck {
    fn new() -> Self {
        GradCheck {
            max_rel_error: 0.0,
            worst: String::new(),
            worst_pair: (0.0, 0.0),
            n_checked: 0,
        }
    }

    /// Records one comparison. A non-finite analytic or numeric value makes the error
    /// infinite (so every `max_rel_error < bound` assertion fails) and `worst` says which
    /// side it was; the first such value is kept.
    fn record(&mut self, analytic: f64, numeric: f64, place: impl FnOnce() -> String) {
        self.n_checked += 1;
        if self.max_rel_error == f64::INFINITY {
            return; // a non-finite value was already found: keep it as the worst
        }
        let rel = relative_error(analytic, numeric);
        // A NaN error (a NaN side, or both sides infinite) counts as worse than any other.
        if rel.is_nan() || rel > self.max_rel_error || self.n_checked == 1 {
            self.max_rel_error = if rel.is_finite() { rel } else { f64::INFINITY };
            self.worst_pair = (analytic, numeric);
            self.worst = match (analytic.is_finite(), numeric.is_finite()) {
                (true, true) => place(),
                (false, true) => format!("{}: the analytic gradient is {analytic}", place()),
                (true, false) => format!("{}: the numeric gradient is {numeric}", place()),
                (false, false) => format!(
                    "{}: both gradients are non-finite (analytic {analytic}, numeric {numeric})",
                    place()
                ),
            };
        }
    }
}

/// `|a - n| / max(|a| + |n|, TINY)`; NaN if either value is NaN or both are infinite
/// (the checkers report such a value as an infinite error).
pub fn relative_error(analytic: f64, numeric: f64) -> f64 {
    (analytic - numeric).abs() / (analytic.abs() + numeric.abs()).max(TINY)
}

/// Checks the gradient of the whole training objective (reconstruction `loss` plus every
/// penalty) of `model` on one batch, with respect to every weight and bias of every layer
/// (a tied matrix once, through both its uses; a VAE with its noise `eps` held fixed).
///
/// ```
/// use autoencoder::{gradcheck, Activation, Autoencoder, Loss, Penalty};
/// use ndarray::Array2;
/// use rand::SeedableRng;
/// # fn main() -> autoencoder::Result<()> {
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
/// let mut ae = Autoencoder::<f64>::builder(5)
///     .latent(3, Activation::Sigmoid)
///     .output(Activation::Sigmoid)
///     .build(&mut rng)?;
/// let x = Array2::from_shape_fn((4, 5), |(i, j)| ((i + 2 * j) % 7) as f64 / 7.0);
/// let report = gradcheck::check_model(
///     &mut ae, x.view(), x.view(), Loss::BinaryCrossEntropy,
///     &[Penalty::kl_sparsity(0.1, 3.0)?.into()], 1e-5)?;
/// assert!(report.max_rel_error < 1e-6, "{report:?}");
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`crate::Trainer::fit`] for data, loss and penalties that do not suit the model;
/// [`Error::InvalidHyperparameter`] unless `h > 0`.
pub fn check_model(
    model: &mut Autoencoder<f64>,
    input: ArrayView2<f64>,
    target: ArrayView2<f64>,
    loss: Loss,
    penalties: &[Penalty],
    h: f64,
) -> Result<GradCheck> {
    crate::error::check_positive("h", h)?;
    model.check_objective(loss, penalties)?;
    model.check_pair(input, target, loss, "gradient check data")?;
    // A generator reseeded identically for every evaluation holds a VAE's eps fixed.
    let fresh_rng = || ChaCha8Rng::seed_from_u64(0x5eed);
    let mut terms = LossTerms::default();
    model.loss_and_gradient(input, target, loss, penalties, &mut terms, &mut fresh_rng());
    let mut analytic: Vec<Vec<f64>> = Vec::new();
    model.visit_params(|_, _, grad, _| analytic.push(grad.to_vec()));
    let layout = model.param_layout();
    let mut report = GradCheck::new();
    for (index, grads) in analytic.iter().enumerate() {
        for (element, &a) in grads.iter().enumerate() {
            let n = central_difference(h, |delta| {
                model.nudge(index, element, delta);
                model.loss_and_gradient(
                    input,
                    target,
                    loss,
                    penalties,
                    &mut terms,
                    &mut fresh_rng(),
                );
                model.nudge(index, element, -delta);
                terms.total()
            });
            let (layer, kind) = layout[index];
            report.record(a, n, || format!("layer {layer} {kind:?} [{element}]"));
        }
    }
    Ok(report)
}

/// Checks [`Dense::forward`] / [`Dense::backward`] (through the activation) with respect to
/// the input, the weights and the bias, for the scalar `L = sum(upstream * a)`, where
/// `upstream` `(batch, n_out)` plays the part of `dL/da`. The same as [`check_layer`].
///
/// # Errors
/// As [`check_layer`].
pub fn check_dense(
    layer: &mut Dense<f64>,
    input: ArrayView2<f64>,
    upstream: ArrayView2<f64>,
    h: f64,
) -> Result<GradCheck> {
    check_layer(layer, input, upstream, h)
}

/// Checks any layer kind's forward and backward pass (through its activation) with respect
/// to the input and every parameter tensor it visits, for the scalar
/// `L = sum(upstream * a)`, where `upstream` `(batch, n_out)` plays the part of `dL/da`.
/// This is the check every layer kind passes (see [`crate::LayerKind`]).
///
/// # Errors
/// [`Error::ShapeMismatch`] if `input` is not `(batch, n_in)` or `upstream` not
/// `(batch, n_out)`; [`Error::InvalidHyperparameter`] unless `h > 0`.
pub fn check_layer<L: LayerKind<f64>>(
    layer: &mut L,
    input: ArrayView2<f64>,
    upstream: ArrayView2<f64>,
    h: f64,
) -> Result<GradCheck> {
    crate::error::check_positive("h", h)?;
    let (batch, n_out) = (input.nrows(), layer.n_out());
    if input.ncols() != layer.n_in() || upstream.dim() != (batch, n_out) {
        return Err(Error::ShapeMismatch {
            context: "gradient check of a layer",
            expected: format!("input (batch, {}), upstream (batch, {n_out})", layer.n_in()),
            found: format!("input {:?}, upstream {:?}", input.dim(), upstream.dim()),
        });
    }
    let value = |layer: &L, x: ArrayView2<f64>| -> f64 {
        let mut z = Array2::zeros((batch, n_out));
        let mut a = Array2::zeros((batch, n_out));
        layer.forward(x, z.view_mut(), a.view_mut());
        (&a * &upstream).sum()
    };
    // Analytic: dL/da = upstream, dL/dz = upstream * s'(z).
    let mut z = Array2::zeros((batch, n_out));
    let mut a = Array2::zeros((batch, n_out));
    layer.forward(input, z.view_mut(), a.view_mut());
    let mut d_z = upstream.to_owned();
    layer
        .activation()
        .backward(z.view(), a.view(), d_z.view_mut());
    let mut d_input = Array2::zeros(input.dim());
    layer.zero_grad();
    layer.backward(input, d_z.view(), Some(d_input.view_mut()));
    let mut analytic: Vec<(ParamKind, Vec<f64>)> = Vec::new();
    layer.visit_params(&mut |_, grad, kind| analytic.push((kind, grad.to_vec())));

    let mut report = GradCheck::new();
    let mut x = input.to_owned();
    for ((b, i), &an) in d_input.indexed_iter() {
        let n = central_difference(h, |delta| {
            x[[b, i]] += delta;
            let f = value(layer, x.view());
            x[[b, i]] -= delta;
            f
        });
        report.record(an, n, || format!("input [{b}, {i}]"));
    }
    for (tensor, (kind, grads)) in analytic.iter().enumerate() {
        for (element, &an) in grads.iter().enumerate() {
            let n = central_difference(h, |delta| {
                nudge(layer, tensor, element, delta);
                let f = value(layer, input);
                nudge(layer, tensor, element, -delta);
                f
            });
            report.record(an, n, || format!("{kind:?} tensor {tensor} [{element}]"));
        }
    }
    Ok(report)
}

/// Adds `delta` to element `element` of the layer's parameter tensor `tensor`.
fn nudge<L: LayerKind<f64>>(layer: &mut L, tensor: usize, element: usize, delta: f64) {
    let mut index = 0;
    layer.visit_params(&mut |param, _, _| {
        if index == tensor {
            param[element] += delta;
        }
        index += 1;
    });
}

/// Checks a loss's gradient with respect to the output layer's pre-activation `z`
/// `(batch, n)`, through the output `activation` (fused for binary cross-entropy).
///
/// # Errors
/// [`Error::ShapeMismatch`] if `target` differs in shape from `z`; as [`Loss::validate`];
/// [`Error::InvalidHyperparameter`] unless `h > 0`.
pub fn check_loss(
    loss: Loss,
    activation: Activation,
    z: ArrayView2<f64>,
    target: ArrayView2<f64>,
    h: f64,
) -> Result<GradCheck> {
    crate::error::check_positive("h", h)?;
    loss.validate(activation)?;
    if z.dim() != target.dim() {
        return Err(Error::ShapeMismatch {
            context: "check_loss target",
            expected: format!("{:?}", z.dim()),
            found: format!("{:?}", target.dim()),
        });
    }
    let value = |z: ArrayView2<f64>| loss.value(z, activation.apply(z).view(), target);
    let a = activation.apply(z);
    let mut d_z = Array2::zeros(z.dim());
    loss.value_and_grad_unchecked(z, a.view(), target, activation, d_z.view_mut());
    let mut report = GradCheck::new();
    let mut zz = z.to_owned();
    for ((b, j), &an) in d_z.indexed_iter() {
        let n = central_difference(h, |delta| {
            zz[[b, j]] += delta;
            let f = value(zz.view());
            zz[[b, j]] -= delta;
            f
        });
        report.record(an, n, || format!("z [{b}, {j}]"));
    }
    Ok(report)
}

/// `(f(+h) - f(-h)) / 2h`, where `f(delta)` evaluates with the parameter shifted by `delta`.
fn central_difference(h: f64, mut f: impl FnMut(f64) -> f64) -> f64 {
    (f(h) - f(-h)) / (2.0 * h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::Init;
    use ndarray::Array2;

    fn fixture() -> (Autoencoder<f64>, Array2<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let model = Autoencoder::<f64>::builder(5)
            .hidden(4, Activation::Tanh)
            .latent(3, Activation::Sigmoid)
            .output(Activation::Sigmoid)
            .build(&mut rng)
            .expect("a valid model");
        let x = Array2::from_shape_fn((4, 5), |(i, j)| {
            ((i * 5 + j) as f64 * 0.37).sin() * 0.4 + 0.5
        });
        (model, x)
    }

    #[test]
    fn non_finite_values_fail_and_say_which() {
        for (a, n, says) in [
            (f64::NAN, 1.0, "analytic"),
            (1.0, f64::INFINITY, "numeric"),
            (f64::NAN, f64::NAN, "both"),
        ] {
            let mut report = GradCheck::new();
            report.record(0.5, 0.5, || "first".into());
            report.record(a, n, || "second".into());
            report.record(0.1, 0.9, || "third".into()); // a finite, larger error after it
            assert_eq!(report.max_rel_error, f64::INFINITY, "{report:?}");
            assert!(report.max_rel_error >= 1e-6);
            assert!(
                report.worst.starts_with("second") && report.worst.contains(says),
                "{report:?}"
            );
            assert_eq!(report.n_checked, 3);
        }
    }

    #[test]
    fn the_checkers_catch_a_wrong_gradient() -> Result<()> {
        let (mut model, x) = fixture();
        let clean = check_model(
            &mut model,
            x.view(),
            x.view(),
            Loss::BinaryCrossEntropy,
            &[],
            1e-5,
        )?;
        assert!(clean.max_rel_error < 1e-6, "{clean:?}");
        // The same model with every weight gradient 1% too large, in Dense::backward.
        SABOTAGE.with(|s| s.set(1.01));
        let wrong = check_model(
            &mut model,
            x.view(),
            x.view(),
            Loss::BinaryCrossEntropy,
            &[],
            1e-5,
        );
        let mut layer = Dense::random(
            5,
            3,
            Activation::Tanh,
            Init::GlorotUniform,
            &mut ChaCha8Rng::seed_from_u64(2),
        )?;
        let upstream = Array2::from_elem((4, 3), 0.7);
        let wrong_dense = check_dense(&mut layer, x.view(), upstream.view(), 1e-5);
        SABOTAGE.with(|s| s.set(1.0));
        let (wrong, wrong_dense) = (wrong?, wrong_dense?);
        assert!(wrong.max_rel_error > 1e-3, "{wrong:?}");
        assert!(wrong_dense.max_rel_error > 1e-3, "{wrong_dense:?}");
        assert!(wrong_dense.worst.contains("Weight"), "{wrong_dense:?}");
        Ok(())
    }
}

#[cfg(test)]
thread_local! {
    /// Test-only: a factor `Dense::backward` applies to its weight gradient, so the tests can
    /// show that the checkers catch a wrong backward pass (1.0 = correct).
    pub(crate) static SABOTAGE: std::cell::Cell<f64> = const { std::cell::Cell::new(1.0) };
}
