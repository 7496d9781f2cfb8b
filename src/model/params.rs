//! The one list of parameters: [`Autoencoder::visit_params`] walks every trainable tensor
//! with its gradient in a fixed order. The optimizers, gradient clipping, the gradient norm,
//! weight penalties, the gradient checker and checkpoint files all go through it, so a tied
//! matrix is one parameter everywhere and no tensor is left out anywhere.

use crate::float::Float;
use crate::layers::ParamKind;
use crate::model::Autoencoder;

impl<T: Float> Autoencoder<T> {
    /// Whether tensor `kind` of layer `l` is left out of the list: a tied decoder's weights
    /// are the encoder's, listed (and updated) there.
    fn skipped(&self, l: usize, kind: ParamKind) -> bool {
        kind == ParamKind::Weight && self.tied_to(l).is_some()
    }

    /// Visits every parameter tensor with its gradient, as flat slices, in a fixed order
    /// (layer by layer, each layer's tensors in its own order; a tied decoder's weights are
    /// skipped, call [`Autoencoder::sync_tied`] after changing the encoder's):
    /// `f(index, param, grad, kind)`.
    pub(crate) fn visit_params(&mut self, mut f: impl FnMut(usize, &mut [T], &mut [T], ParamKind)) {
        let mut index = 0;
        for l in 0..self.layers.len() {
            let tied = self.tied_to(l).is_some();
            self.layers[l].visit_params(&mut |param, grad, kind| {
                if tied && kind == ParamKind::Weight {
                    return; // shared with the encoder, updated there
                }
                f(index, param, grad, kind);
                index += 1;
            });
        }
    }

    /// `(layer, kind)` of each parameter tensor, in [`Autoencoder::visit_params`] order.
    pub(crate) fn param_layout(&self) -> Vec<(usize, ParamKind)> {
        let mut layout = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            for &kind in layer.param_kinds() {
                if !self.skipped(l, kind) {
                    layout.push((l, kind));
                }
            }
        }
        layout
    }

    /// Number of trainable parameters (weights and biases; a tied matrix counts once).
    pub fn n_params(&self) -> usize {
        let mut n = 0;
        for (l, layer) in self.layers.iter().enumerate() {
            if !self.skipped(l, ParamKind::Weight) {
                n += layer.weights().len();
            }
            n += layer.bias().len();
        }
        n
    }

    /// Adds `delta` to element `element` of parameter tensor `index` (in
    /// [`Autoencoder::visit_params`] order), keeping tied copies in step.
    pub(crate) fn nudge(&mut self, index: usize, element: usize, delta: T) {
        self.visit_params(|i, param, _, _| {
            if i == index {
                param[element] += delta;
            }
        });
        self.sync_tied();
    }

    /// Copies all parameters from `other`, which must have the same architecture.
    pub(crate) fn copy_params_from(&mut self, other: &Autoencoder<T>) {
        for (mine, theirs) in self.layers.iter_mut().zip(&other.layers) {
            let (weights, bias) = (theirs.weights(), theirs.bias());
            mine.visit_params(&mut |param, _, kind| {
                let source = match kind {
                    ParamKind::Weight => weights.as_slice(),
                    ParamKind::Bias => bias.as_slice(),
                };
                if let Some(source) = source {
                    param.copy_from_slice(source);
                }
            });
        }
    }

    /// Whether every parameter is finite.
    pub(crate) fn params_are_finite(&self) -> bool {
        self.layers.iter().all(|l| {
            l.weights().iter().all(|w| w.is_finite()) && l.bias().iter().all(|b| b.is_finite())
        })
    }
}
