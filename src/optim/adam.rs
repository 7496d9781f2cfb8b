//! Adam and AdamW.

use serde::{Deserialize, Serialize};

use crate::compute::{for_each_block, simd_dispatch, slice_blocks, slice_blocks_mut, zip_blocks};
use crate::error::Result;
use crate::error::{check_non_negative, check_positive, check_range};
use crate::float::Float;
use crate::optim::{state_for, Optimizer, OptimizerState, ParamKind};

/// Weight decay inside the optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum WeightDecay {
    /// None (plain Adam; for an L2 penalty in the loss use [`crate::Penalty::l2_weights`]).
    None,
    /// Decoupled weight decay (AdamW, Loshchilov & Hutter 2019): before each update,
    /// `p <- p (1 - lr lambda)`, applied to weights only, never to biases.
    Decoupled(f64),
}

/// Adam (Kingma & Ba 2015), with bias correction, as PyTorch computes it. At step `t`
/// (from 1), for each parameter `p` with gradient `g`:
///
/// ```text
/// m <- beta1 m + (1 - beta1) g
/// v <- beta2 v + (1 - beta2) g^2
/// p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
/// ```
///
/// | parameter | default | range |
/// | --- | --- | --- |
/// | `lr` | given | `> 0` |
/// | `beta1`, `beta2` | 0.9, 0.999 | `[0, 1)` |
/// | `eps` | 1e-8 (Keras uses 1e-7) | `> 0` |
/// | `weight_decay` | [`WeightDecay::None`] | decoupled `lambda >= 0` |
///
/// ```
/// use autoencoder::{Adam, WeightDecay};
/// let adam = Adam::<f32>::new(1e-3).eps(1e-7);
/// let adamw = Adam::<f32>::new(1e-3).weight_decay(WeightDecay::Decoupled(1e-2));
/// ```
#[derive(Debug, Clone)]
pub struct Adam<T> {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: WeightDecay,
    t: u64,
    m: Vec<Vec<T>>,
    v: Vec<Vec<T>>,
}

impl<T: Float> Adam<T> {
    /// Adam at learning rate `lr` with the default betas and eps.
    pub fn new(lr: f64) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: WeightDecay::None,
            t: 0,
            m: Vec::new(),
            v: Vec::new(),
        }
    }

    /// AdamW: Adam with decoupled weight decay `lambda`.
    pub fn adamw(lr: f64, lambda: f64) -> Self {
        Adam::new(lr).weight_decay(WeightDecay::Decoupled(lambda))
    }

    /// Sets the moment decay rates.
    pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
        self.beta1 = beta1;
        self.beta2 = beta2;
        self
    }

    /// Sets the denominator's `eps`.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Sets the weight decay.
    pub fn weight_decay(mut self, weight_decay: WeightDecay) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.t
    }
}

impl<T: Float> Optimizer<T> for Adam<T> {
    fn lr(&self) -> f64 {
        self.lr
    }

    fn validate(&self) -> Result<()> {
        check_positive("lr", self.lr)?;
        // Each must also stay normal (finite, not 0, not subnormal) in T: eps = 1e-50 is 0 in
        // f32, and the first step would then divide 0 by 0.
        check_range(
            "lr",
            self.lr,
            T::cast(self.lr).is_normal(),
            "a value > 0 that stays finite and normal in the element type (f32: 1.2e-38 to 3.4e38)",
        )?;
        check_range(
            "beta1",
            self.beta1,
            (0.0..1.0).contains(&self.beta1),
            "a value in [0, 1)",
        )?;
        check_range(
            "beta2",
            self.beta2,
            (0.0..1.0).contains(&self.beta2),
            "a value in [0, 1)",
        )?;
        check_positive("eps", self.eps)?;
        check_range(
            "eps",
            self.eps,
            T::cast(self.eps).is_normal(),
            "a value > 0 that stays finite and normal in the element type (f32: 1.2e-38 to 3.4e38)",
        )?;
        if let WeightDecay::Decoupled(lambda) = self.weight_decay {
            check_non_negative("weight decay", lambda)?;
        }
        Ok(())
    }

    /// Counts the step; the count stops at `u64::MAX` (where `beta^t` is long 0) instead
    /// of wrapping.
    fn begin_step(&mut self) {
        self.t = self.t.saturating_add(1);
    }

    fn update(&mut self, index: usize, param: &mut [T], grad: &[T], kind: ParamKind, lr: f64) {
        let (beta1_t, beta2_t) = (power(self.beta1, self.t), power(self.beta2, self.t));
        let bias1 = 1.0 - beta1_t;
        let bias2_sqrt = (1.0 - beta2_t).sqrt();
        let (b1, b2) = (T::cast(self.beta1), T::cast(self.beta2));
        let (one_b1, one_b2) = (T::cast(1.0 - self.beta1), T::cast(1.0 - self.beta2));
        let step = T::cast(lr / bias1);
        let inv_bias2_sqrt = T::cast(1.0 / bias2_sqrt);
        let eps = T::cast(self.eps);
        let decay = match (self.weight_decay, kind) {
            (WeightDecay::Decoupled(lambda), ParamKind::Weight) => Some(T::cast(1.0 - lr * lambda)),
            _ => None,
        };
        state_for(&mut self.v, index, param.len());
        let m = state_for(&mut self.m, index, param.len());
        let v = &mut self.v[index];
        if let Some(decay) = decay {
            param.iter_mut().for_each(|p| *p *= decay);
        }
        let consts = AdamConsts {
            b1,
            b2,
            one_b1,
            one_b2,
            step,
            inv_bias2_sqrt,
            eps,
        };
        // In blocks, spread over the threads for large parameters (element-wise: the same
        // bits for any thread count).
        let elements = param.len();
        let params = zip_blocks(slice_blocks_mut(param), slice_blocks(grad));
        let moments = zip_blocks(slice_blocks_mut(m), slice_blocks_mut(v));
        for_each_block(elements, zip_blocks(params, moments), |((p, g), (m, v))| {
            adam_update_wide(p, g, m, v, consts);
            0.0
        });
    }

    fn reset(&mut self) {
        self.t = 0;
        self.m.clear();
        self.v.clear();
    }

    /// Name `"adam"`, steps `t`, buffers `"m"` and `"v"`.
    fn state(&self) -> OptimizerState<T> {
        OptimizerState::new("adam", self.t)
            .with_buffer("m", self.m.clone())
            .with_buffer("v", self.v.clone())
    }

    fn load_state(&mut self, mut state: OptimizerState<T>) -> Result<()> {
        state.expect_name("adam")?;
        let m = state.take_buffer("m")?;
        let v = state.take_buffer("v")?;
        state.expect_no_more_buffers()?;
        let consistent = m.len() == v.len() && m.iter().zip(&v).all(|(m, v)| m.len() == v.len());
        if !consistent {
            return Err(crate::error::Error::InvalidConfig(
                "the saved Adam state has moments `m` and `v` of different sizes".into(),
            ));
        }
        (self.t, self.m, self.v) = (state.steps(), m, v);
        Ok(())
    }
}

/// `beta^t` for the step count `t` (taken as at least 1): `powi` while `t` fits an `i32`
/// (the bits every earlier result was computed with), `powf` past it, where `powi`'s
/// exponent would wrap to a negative one.
fn power(beta: f64, t: u64) -> f64 {
    match i32::try_from(t.max(1)) {
        Ok(t) => beta.powi(t),
        Err(_) => beta.powf(t as f64),
    }
}

/// The per-step constants of the Adam update (see [`Adam`]).
#[derive(Clone, Copy)]
struct AdamConsts<T> {
    b1: T,
    b2: T,
    one_b1: T,
    one_b2: T,
    step: T,
    inv_bias2_sqrt: T,
    eps: T,
}

simd_dispatch! {
    /// [`adam_update`], for AVX-512F or AVX2 when available.
    fn adam_update_wide / adam_update<T>(param: &mut [T], grad: &[T], m: &mut [T], v: &mut [T], c: AdamConsts<T>)
    where T: Float
}

/// `m`, `v` and `p` updated in one pass over plain slices (no branch: it vectorizes,
/// `sqrt` and division included).
#[inline(always)]
fn adam_update<T: Float>(param: &mut [T], grad: &[T], m: &mut [T], v: &mut [T], c: AdamConsts<T>) {
    let n = param.len().min(grad.len()).min(m.len()).min(v.len());
    for (((p, &g), m), v) in param[..n]
        .iter_mut()
        .zip(&grad[..n])
        .zip(&mut m[..n])
        .zip(&mut v[..n])
    {
        *m = c.b1 * *m + c.one_b1 * g;
        *v = c.b2 * *v + c.one_b2 * g * g;
        *p -= c.step * *m / (v.sqrt() * c.inv_bias2_sqrt + c.eps);
    }
}
