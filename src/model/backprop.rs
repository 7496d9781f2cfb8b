//! One batch through the model: the workspace of per-batch buffers, the forward pass, and
//! the backward pass of the training objective, each one short loop over the layers.
//!
//! For layer `l`, `z[l]`, `a[l]` and `d[l]` are `(rows, n_out_l)`: the pre-activation, the
//! output, and the gradient flowing back (`dL/da_l`, then `dL/dz_l` once the activation's
//! backward has run). Layer `l` reads `a[l - 1]`, except layer 0 (the input) and, in a VAE,
//! the first decoder layer, which reads the sampled code.

use ndarray::{s, Array2, ArrayView2};
use rand_chacha::ChaCha8Rng;

use crate::architecture::{Architecture, Latent};
use crate::float::Float;
use crate::layers::Layer;
use crate::model::latent::{reparameterize, reparameterize_backward, skip_eps};
use crate::model::runs::{backward_run, forward_run, MAX_RUN};
use crate::model::Autoencoder;
use crate::objective::activity::{BatchStats, BatchSums};
use crate::objective::loss::Loss;
use crate::objective::{LossTerms, Penalty};

/// Per-batch buffers, allocated once per batch size (llm.c's activations). For a Gaussian
/// latent, `eps`, `sample` and `d_sample` are `(rows, k)`: the noise, the decoder's input
/// `z = mu + sigma eps`, and `dL/dz`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Workspace<T> {
    rows: usize,
    pub(super) z: Vec<Array2<T>>,
    pub(super) a: Vec<Array2<T>>,
    pub(super) d: Vec<Array2<T>>,
    eps: Array2<T>,
    sample: Array2<T>,
    d_sample: Array2<T>,
    /// `(widest layer)`: per-unit sums over the batch (KL sparsity's mean activation).
    unit_sums: Vec<f64>,
    /// Per block of the batch, per layer: `[z, a, d]` of the few rows in flight, for a
    /// step taken a few images at a time (`runs.rs`).
    pub(super) images: Vec<Vec<[Array2<T>; 3]>>,
}

impl<T: Float> Workspace<T> {
    /// Makes room for `rows` rows; reallocates only when the capacity is too small or the
    /// layers changed. `k` is the width of a Gaussian latent's sample (0 for a deterministic
    /// code).
    pub(super) fn prepare(&mut self, rows: usize, layers: &[Layer<T>], k: usize) {
        let fits = self.rows >= rows
            && self.a.len() == layers.len()
            && self
                .a
                .iter()
                .zip(layers)
                .all(|(a, l)| a.ncols() == l.n_out())
            && self.eps.ncols() == k;
        if fits {
            return;
        }
        let alloc = || {
            layers
                .iter()
                .map(|l| Array2::zeros((rows, l.n_out())))
                .collect::<Vec<_>>()
        };
        let sample = || Array2::zeros((rows, k));
        *self = Workspace {
            rows,
            z: alloc(),
            a: alloc(),
            d: alloc(),
            eps: sample(),
            sample: sample(),
            d_sample: sample(),
            unit_sums: vec![0.0; layers.iter().map(|l| l.n_out()).max().unwrap_or(0)],
            images: Vec::new(),
        };
    }

    /// Makes each block's own buffers ([`Workspace::images`]) of `rows` rows for `layers`;
    /// allocates only when they are missing or the layers changed.
    pub(super) fn prepare_images(&mut self, layers: &[Layer<T>], rows: usize) {
        let fits = self.images.len() == crate::compute::ROW_BLOCKS
            && self.images.iter().all(|block| {
                block.len() == layers.len()
                    && block
                        .iter()
                        .zip(layers)
                        .all(|(b, l)| b[0].dim() == (rows, l.n_out()))
            });
        if !fits {
            self.images = (0..crate::compute::ROW_BLOCKS)
                .map(|_| {
                    layers
                        .iter()
                        .map(|l| std::array::from_fn(|_| Array2::zeros((rows, l.n_out()))))
                        .collect()
                })
                .collect();
        }
    }

    /// The output of the last forward pass, `(rows, n_in)`: pre-activation and activation.
    pub(crate) fn output(&self, rows: usize) -> (ArrayView2<'_, T>, ArrayView2<'_, T>) {
        let last = self.a.len() - 1;
        (
            self.z[last].slice(s![..rows, ..]),
            self.a[last].slice(s![..rows, ..]),
        )
    }
}

impl<T: Float> Autoencoder<T> {
    /// Forward pass of `input` `(rows, n_in)` into the model's own workspace, growing it if
    /// needed (the training path; see [`forward`]).
    pub(crate) fn forward_batch(&mut self, input: ArrayView2<T>, rng: Option<&mut ChaCha8Rng>) {
        forward(&self.layers, &self.arch, &mut self.ws, input, rng);
    }

    /// One batch of the training objective: forward `input` `(rows, n_in)`, compare with
    /// `target` `(rows, n_in)`, and leave in every layer the gradient of
    /// `reconstruction + sum of penalties` with respect to its parameters (zeroed first;
    /// a tied matrix's gradient sums both uses and sits in its encoder layer).
    /// `terms` receives the value of each part; its buffers are reused. `rng` draws the
    /// VAE's `eps` (a checker passes a generator reseeded the same way each call).
    ///
    /// Inputs are assumed checked (the trainer and the gradient checker check once per call).
    pub(crate) fn loss_and_gradient(
        &mut self,
        input: ArrayView2<T>,
        target: ArrayView2<T>,
        loss: Loss,
        penalties: &[Penalty],
        terms: &mut LossTerms,
        rng: &mut ChaCha8Rng,
    ) {
        self.data_gradient(input, target, loss, penalties, terms, rng, None);
        self.add_weight_penalties(penalties, &mut terms.penalties);
        self.fold_tied_grads();
    }

    /// The part of [`Autoencoder::loss_and_gradient`] that depends on the batch's rows:
    /// the reconstruction loss and the activity penalties with their gradients (weight
    /// penalties and the tied-weight fold not yet added). A distributed step sums this
    /// part across ranks, then adds the weight penalties once; `global` then gives the
    /// global batch's sums that KL sparsity needs.
    #[allow(clippy::too_many_arguments)] // the objective's parts, each used once
    pub(crate) fn data_gradient(
        &mut self,
        input: ArrayView2<T>,
        target: ArrayView2<T>,
        loss: Loss,
        penalties: &[Penalty],
        terms: &mut LossTerms,
        rng: &mut ChaCha8Rng,
        global: Option<&mut dyn BatchSums>,
    ) {
        terms.reset(penalties.len());
        if self.steps_whole(penalties) {
            self.whole_step(input, target, loss, terms);
        } else {
            self.gradient_by_layers(input, target, loss, penalties, terms, rng, global);
        }
    }

    /// [`Autoencoder::data_gradient`] layer after layer (runs of image layers a few images
    /// at a time), for any model, with `terms` reset.
    #[allow(clippy::too_many_arguments)] // as data_gradient
    pub(super) fn gradient_by_layers(
        &mut self,
        input: ArrayView2<T>,
        target: ArrayView2<T>,
        loss: Loss,
        penalties: &[Penalty],
        terms: &mut LossTerms,
        rng: &mut ChaCha8Rng,
        mut global: Option<&mut dyn BatchSums>,
    ) {
        let rows = input.nrows();
        self.forward_batch(input, Some(rng));
        self.layers.iter_mut().for_each(Layer::zero_grad);
        let last = self.layers.len() - 1;
        let ws = &mut self.ws;
        terms.reconstruction = loss.value_and_grad_unchecked(
            ws.z[last].slice(s![..rows, ..]),
            ws.a[last].slice(s![..rows, ..]),
            target,
            self.layers[last].activation(),
            ws.d[last].slice_mut(s![..rows, ..]), // dL/dz_last
        );
        // Invariant: `d[l] = dL/dz_l`, and the layers above `l` are done.
        let mut l = last;
        loop {
            let start = self.run_start(l, penalties);
            if start < l {
                // Image layers `start ..= l`, a few images at a time through all of them.
                backward_run(&mut self.layers, start..l + 1, &mut self.ws, input);
                if start == 0 {
                    return;
                }
                l = start; // d[l - 1] = dL/da_{l-1}
            } else if l == 0 {
                self.layers[0].backward(input, self.ws.d[0].slice(s![..rows, ..]), None);
                return;
            } else {
                self.backward_layer(l, rows); // d[l - 1] = dL/da_{l-1}
            }
            let values = &mut terms.penalties;
            let global = global.as_mut().map(|g| &mut **g as &mut dyn BatchSums);
            self.add_activity_penalties(l - 1, rows, penalties, values, global);
            let ws = &mut self.ws;
            let (z, a) = (&ws.z[l - 1], &ws.a[l - 1]);
            self.layers[l - 1].activation().backward(
                z.slice(s![..rows, ..]),
                a.slice(s![..rows, ..]),
                ws.d[l - 1].slice_mut(s![..rows, ..]), // now dL/dz_{l-1}
            );
            l -= 1;
        }
    }

    /// The first layer of the run of per-row layers that ends at `l` and that the backward
    /// pass may take block by block ([`backward_run`]): down from `l` while the layer below
    /// is per row, is no Gaussian latent's sampling step away, and has no activity penalty
    /// (its gradient is then only the run's); at most [`MAX_RUN`] layers. `l` itself when
    /// there is no run of two.
    fn run_start(&self, l: usize, penalties: &[Penalty]) -> usize {
        let penalized = |i: usize| {
            penalties.iter().any(|p| match p {
                Penalty::Activity(p) => p.layer_index(&self.arch) == i,
                Penalty::GaussianKl(_) => i == self.arch.code_layer(),
                Penalty::Weight(_) => false,
            })
        };
        let mut start = l;
        while start > 0
            && l + 1 - start < MAX_RUN
            && continues_run(&self.layers, &self.arch, start)
            && !penalized(start - 1)
        {
            start -= 1;
        }
        start
    }

    /// The exchanges of global batch sums that [`Autoencoder::data_gradient`] makes, in the
    /// same order, with zero sums: for a distributed rank with no rows in a batch, or one
    /// that failed, so that every rank makes the same exchanges.
    pub(crate) fn idle_batch_sums(&mut self, penalties: &[Penalty], global: &mut dyn BatchSums) {
        for i in (0..self.layers.len() - 1).rev() {
            for penalty in penalties {
                if let Penalty::Activity(p) = penalty {
                    if p.layer_index(&self.arch) == i && p.uses_batch_sums() {
                        let n = self.layers[i].n_out();
                        let sums = &mut self.ws.unit_sums;
                        if sums.len() < n {
                            sums.resize(n, 0.0); // before the first forward pass only
                        }
                        sums[..n].fill(0.0);
                        global.global(&mut sums[..n]);
                    }
                }
            }
        }
    }

    /// Draws and discards from `rng` what a forward pass on `rows` rows draws (a VAE's
    /// `eps`; nothing for a deterministic code): a distributed rank's rows before and after
    /// its part of the batch.
    pub(crate) fn skip_draws(&self, rows: usize, rng: &mut ChaCha8Rng) {
        if self.arch.latent == Latent::Gaussian {
            skip_eps(rows, self.arch.n_latent(), rng);
        }
    }

    /// Zeroes every parameter gradient (a distributed rank with no rows in a batch).
    pub(crate) fn zero_grads(&mut self) {
        self.layers.iter_mut().for_each(Layer::zero_grad);
    }

    /// Backward through layer `l >= 1`, given `d[l] = dL/dz_l`: accumulates its parameter
    /// gradients and writes `d[l - 1] = dL/da_{l-1}` (through the sampling step for the
    /// first decoder layer of a VAE).
    fn backward_layer(&mut self, l: usize, rows: usize) {
        let ws = &mut self.ws;
        let (d_below, d_here) = ws.d.split_at_mut(l);
        let d_z = d_here[0].slice(s![..rows, ..]);
        let d_prev = d_below[l - 1].slice_mut(s![..rows, ..]);
        let a_prev = ws.a[l - 1].slice(s![..rows, ..]);
        if self.arch.latent == Latent::Gaussian && l == self.arch.n_encoder {
            let mut d_sample = ws.d_sample.slice_mut(s![..rows, ..]);
            let sample = ws.sample.slice(s![..rows, ..]);
            self.layers[l].backward(sample, d_z, Some(d_sample.view_mut()));
            let eps = ws.eps.slice(s![..rows, ..]);
            reparameterize_backward(d_sample.view(), a_prev, eps, d_prev);
        } else {
            self.layers[l].backward(a_prev, d_z, Some(d_prev));
        }
    }

    /// Adds the value of every activity penalty on hidden layer `i` (and the Gaussian KL, on
    /// the code layer) to `values`, and its gradient to `d[i] = dL/da_i`.
    fn add_activity_penalties(
        &mut self,
        i: usize,
        rows: usize,
        penalties: &[Penalty],
        values: &mut [f64],
        mut global: Option<&mut dyn BatchSums>,
    ) {
        let ws = &mut self.ws;
        let (z, a) = (ws.z[i].slice(s![..rows, ..]), ws.a[i].slice(s![..rows, ..]));
        let mut d = ws.d[i].slice_mut(s![..rows, ..]);
        for (value, penalty) in values.iter_mut().zip(penalties) {
            match penalty {
                Penalty::Activity(p) if p.layer_index(&self.arch) == i => {
                    let stats = BatchStats {
                        sums: &mut ws.unit_sums,
                        global: global.as_mut().map(|g| &mut **g as &mut dyn BatchSums),
                    };
                    *value += p.value_and_grad(&mut self.layers[i], z, a, d.view_mut(), stats);
                }
                Penalty::GaussianKl(kl) if i == self.arch.code_layer() => {
                    *value += kl.value_and_grad(a, d.view_mut());
                }
                _ => {}
            }
        }
    }

    /// Adds the value of every weight penalty to `values` and its gradient to the parameter
    /// gradients, through the one list of parameters.
    pub(crate) fn add_weight_penalties(&mut self, penalties: &[Penalty], values: &mut [f64]) {
        for (value, penalty) in values.iter_mut().zip(penalties) {
            if let Penalty::Weight(p) = penalty {
                let mut sum = 0.0;
                self.visit_params(|_, param, grad, kind| p.accumulate(param, grad, kind, &mut sum));
                *value += p.lambda() * sum;
            }
        }
    }
}

/// Forward pass of `input` `(rows, n_in)` through `layers` (described by `arch`) into `ws`,
/// growing it if needed. For a Gaussian latent, `rng` draws `eps` (training); without it
/// `eps = 0`, `z = mu`. Read-only calls pass a workspace of their own, so that several
/// threads can run them on one model.
pub(crate) fn forward<T: Float>(
    layers: &[Layer<T>],
    arch: &Architecture,
    ws: &mut Workspace<T>,
    input: ArrayView2<T>,
    mut rng: Option<&mut ChaCha8Rng>,
) {
    let rows = input.nrows();
    let gaussian = arch.latent == Latent::Gaussian;
    let n_encoder = arch.n_encoder;
    let k = if gaussian { arch.n_latent() } else { 0 };
    ws.prepare(rows, layers, k);
    let mut l = 0;
    while l < layers.len() {
        // A run of per-row layers, a few images at a time through all of them; else one
        // layer over the batch.
        let mut end = l + 1;
        while end < layers.len() && end - l < MAX_RUN && continues_run(layers, arch, end) {
            end += 1;
        }
        if end - l > 1 {
            forward_run(layers, l..end, ws, input);
        } else {
            let (a_below, a_here) = ws.a.split_at_mut(l);
            let x = match l {
                0 => input,
                l if gaussian && l == n_encoder => ws.sample.slice(s![..rows, ..]),
                l => a_below[l - 1].slice(s![..rows, ..]),
            };
            let a = a_here[0].slice_mut(s![..rows, ..]);
            layers[l].forward(x, ws.z[l].slice_mut(s![..rows, ..]), a);
        }
        if gaussian && end == n_encoder {
            reparameterize(
                ws.a[end - 1].slice(s![..rows, ..]),
                ws.eps.slice_mut(s![..rows, ..]),
                ws.sample.slice_mut(s![..rows, ..]),
                rng.as_deref_mut(),
            );
        }
        l = end;
    }
}

/// Whether layer `l` continues a run of per-row layers from layer `l - 1` (both per row, and
/// no Gaussian latent's sampling step between them).
fn continues_run<T: Float>(layers: &[Layer<T>], arch: &Architecture, l: usize) -> bool {
    let sampling = arch.latent == Latent::Gaussian && l == arch.n_encoder;
    layers[l - 1].per_row() && layers[l].per_row() && !sampling
}
