//! Stochastic gradient descent with (Nesterov) momentum.

use crate::error::Result;
use crate::error::{check_positive, check_range};
use crate::float::Float;
use crate::optim::{state_for, Optimizer, OptimizerState, ParamKind};

/// SGD with optional momentum `mu` (PyTorch's convention):
/// `v <- mu v + g`, then `p <- p - lr v`, or with Nesterov `p <- p - lr (g + mu v)`.
/// Without momentum (`mu = 0`, the default) it is `p <- p - lr g`.
///
/// | parameter | default | range |
/// | --- | --- | --- |
/// | `lr` | given | `> 0` |
/// | `momentum` | 0 | `[0, 1)` |
/// | `nesterov` | `false` | needs `momentum > 0` |
///
/// ```
/// use autoencoder::Sgd;
/// let sgd = Sgd::<f32>::new(0.1).momentum(0.9).nesterov(true);
/// ```
#[derive(Debug, Clone)]
pub struct Sgd<T> {
    lr: f64,
    momentum: f64,
    nesterov: bool,
    velocity: Vec<Vec<T>>,
}

impl<T: Float> Sgd<T> {
    /// Plain SGD at learning rate `lr`.
    pub fn new(lr: f64) -> Self {
        Sgd {
            lr,
            momentum: 0.0,
            nesterov: false,
            velocity: Vec::new(),
        }
    }

    /// Sets the momentum `mu` in `[0, 1)`.
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// Uses Nesterov momentum.
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        self.nesterov = nesterov;
        self
    }
}

impl<T: Float> Optimizer<T> for Sgd<T> {
    fn lr(&self) -> f64 {
        self.lr
    }

    fn validate(&self) -> Result<()> {
        check_positive("lr", self.lr)?;
        // As Adam's: lr = 1e300 is infinite in f32, 1e-50 is 0 (training would stand still).
        check_range(
            "lr",
            self.lr,
            T::cast(self.lr).is_normal(),
            "a value > 0 that stays finite and normal in the element type (f32: 1.2e-38 to 3.4e38)",
        )?;
        check_range(
            "momentum",
            self.momentum,
            (0.0..1.0).contains(&self.momentum),
            "a value in [0, 1)",
        )?;
        if self.nesterov && self.momentum == 0.0 {
            return Err(crate::error::Error::hyper(
                "momentum",
                0.0,
                "a value in (0, 1) when nesterov is on",
            ));
        }
        Ok(())
    }

    fn begin_step(&mut self) {}

    fn update(&mut self, index: usize, param: &mut [T], grad: &[T], _kind: ParamKind, lr: f64) {
        let lr = T::cast(lr);
        if self.momentum == 0.0 {
            param.iter_mut().zip(grad).for_each(|(p, &g)| *p -= lr * g);
            return;
        }
        let mu = T::cast(self.momentum);
        let v = state_for(&mut self.velocity, index, param.len());
        for ((p, &g), v) in param.iter_mut().zip(grad).zip(v.iter_mut()) {
            *v = mu * *v + g;
            *p -= lr * if self.nesterov { g + mu * *v } else { *v };
        }
    }

    fn reset(&mut self) {
        self.velocity.clear();
    }

    /// Name `"sgd"`, steps 0, buffer `"velocity"`.
    fn state(&self) -> OptimizerState<T> {
        OptimizerState::new("sgd", 0).with_buffer("velocity", self.velocity.clone())
    }

    fn load_state(&mut self, mut state: OptimizerState<T>) -> Result<()> {
        state.expect_name("sgd")?;
        self.velocity = state.take_buffer("velocity")?;
        state.expect_no_more_buffers()
    }
}
