//! Tied weights: decoder layer `i` (from the code) uses the transpose of encoder layer
//! `n_encoder - 1 - i`'s weights. The two halves of the mechanism sit together: after every
//! change to the encoder's weights the decoder's copies are synced, and after every backward
//! pass the decoder's weight gradients are folded into the encoder's.

use crate::architecture::Tying;
use crate::float::Float;
use crate::model::Autoencoder;

impl<T: Float> Autoencoder<T> {
    /// For a tied decoder layer `l`, the encoder layer whose weights it uses (transposed).
    pub(crate) fn tied_to(&self, l: usize) -> Option<usize> {
        let arch = &self.arch;
        (arch.tying == Tying::Tied && l >= arch.n_encoder).then(|| self.layers.len() - 1 - l)
    }

    /// Rewrites each tied decoder layer's weights as the transpose of its encoder layer's.
    pub(crate) fn sync_tied(&mut self) {
        for l in self.arch.n_encoder..self.layers.len() {
            if let Some(e) = self.tied_to(l) {
                let (enc, dec) = self.layers.split_at_mut(l);
                if let (Some(enc), Some(dec)) = (enc[e].as_dense(), dec[0].as_dense_mut()) {
                    dec.weights_mut().assign(&enc.weights().t());
                }
            }
        }
    }

    /// Folds the gradient of each shared matrix: `dL/dW_enc += (dL/dW_dec)^T`, so the
    /// encoder layer holds the gradient of both uses.
    pub(crate) fn fold_tied_grads(&mut self) {
        for l in self.arch.n_encoder..self.layers.len() {
            if let Some(e) = self.tied_to(l) {
                let (enc, dec) = self.layers.split_at_mut(l);
                if let (Some(enc), Some(dec)) = (enc[e].as_dense_mut(), dec[0].as_dense()) {
                    let (_, _, grad_w, _) = enc.params_with_grads_mut();
                    *grad_w += &dec.grad_weights().t();
                }
            }
        }
    }
}
