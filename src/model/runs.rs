//! Runs of image layers (per-row kinds: convolutions, pooling, upsampling), taken a few
//! images at a time through all their layers while the images are in the core's cache,
//! instead of each layer over the whole batch in turn; and, for a model made only of such
//! layers, the whole training step so: forward, the loss's gradient and backward for each
//! few images, so that what the forward pass wrote is still in the cache when the backward
//! pass reads it.
//!
//! The bits are those of the layer-by-layer passes: each layer does to each image what its
//! own pass does, the batch is cut into the same fixed blocks (`compute::ROW_BLOCKS`), each
//! block adds its images to its partial gradients in order, and the blocks' partial sums
//! and the bias gradients of the whole batch are added after, as the layers' own passes
//! add them (`Layer::backward_end`).

use std::ops::Range;

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use crate::architecture::Latent;
use crate::compute::{for_each_block, ROW_BLOCKS};
use crate::float::Float;
use crate::layers::Layer;
use crate::model::backprop::Workspace;
use crate::model::Autoencoder;
use crate::objective::loss::Loss;
use crate::objective::{LossTerms, Penalty};

/// The longest run of per-row layers taken block by block: longer runs are cut (a fixed
/// bound, so the runs' buffers fit in an array on the stack).
pub(super) const MAX_RUN: usize = 32;

/// How many images at a time go through a run: one, so that its activations in every layer
/// of the run stay in the core's cache between layers.
const RUN_ROWS: usize = 1;

/// A buffer's rows, for the threads of a run: each thread touches only the rows of the
/// blocks it claims, in every buffer of the run.
#[derive(Clone, Copy)]
struct SharedRows<T> {
    ptr: *mut T,
    cols: usize,
}

// SAFETY: the threads of a run touch disjoint rows (their blocks'), and a row of a buffer is
// written by one layer before the next layer on the same thread reads it.
unsafe impl<T: Sync> Sync for SharedRows<T> {}
unsafe impl<T: Send> Send for SharedRows<T> {}

impl<T> SharedRows<T> {
    /// Rows of the batch, to read only; it must be in standard layout.
    fn of(view: ArrayView2<'_, T>) -> Self {
        assert!(
            view.is_standard_layout(),
            "a run's buffers are in standard layout"
        );
        SharedRows {
            ptr: view.as_ptr().cast_mut(),
            cols: view.ncols(),
        }
    }

    /// Rows of a workspace buffer (in standard layout), to read and write.
    fn of_mut(buffer: &mut Array2<T>) -> Self {
        assert!(
            buffer.is_standard_layout(),
            "a run's buffers are in standard layout"
        );
        SharedRows {
            ptr: buffer.as_mut_ptr(),
            cols: buffer.ncols(),
        }
    }

    /// Rows `rows`, to read.
    ///
    /// # Safety
    /// The rows are inside the buffer and nothing writes them meanwhile.
    unsafe fn rows<'b>(self, rows: Range<usize>) -> ArrayView2<'b, T> {
        let at = rows.start * self.cols;
        // SAFETY: as the caller promised.
        unsafe { ArrayView2::from_shape_ptr((rows.len(), self.cols), self.ptr.add(at)) }
    }

    /// Rows `rows`, to write.
    ///
    /// # Safety
    /// The rows are inside the buffer, which was borrowed mutably, and no other view of
    /// them is alive meanwhile.
    unsafe fn rows_mut<'b>(self, rows: Range<usize>) -> ArrayViewMut2<'b, T> {
        let at = rows.start * self.cols;
        // SAFETY: as the caller promised.
        unsafe { ArrayViewMut2::from_shape_ptr((rows.len(), self.cols), self.ptr.add(at)) }
    }
}

/// The buffers of a run: the first layer's input, the `d` of the layer below it (`None`
/// for the model's first layer), and each layer's `z`, `a` and `d`: the batch's (rows as
/// in the batch), or, `local`, a block's own that hold only the rows in flight (from row 0).
struct RunBuffers<T> {
    local: bool,
    input: SharedRows<T>,
    d_below: Option<SharedRows<T>>,
    layers: [Option<[SharedRows<T>; 3]>; MAX_RUN],
}

impl<T: Float> RunBuffers<T> {
    /// The buffers of layers `run` in `ws`, whose first reads `input` when it is the
    /// model's first layer. Each buffer is borrowed once.
    fn new(ws: &mut Workspace<T>, run: &Range<usize>, input: ArrayView2<T>) -> Self {
        assert!(run.len() <= MAX_RUN, "runs are cut at MAX_RUN layers");
        let mut layers = [None; MAX_RUN];
        for (buf, l) in layers.iter_mut().zip(run.clone()) {
            let (z, a, d) = (&mut ws.z[l], &mut ws.a[l], &mut ws.d[l]);
            *buf = Some([z, a, d].map(SharedRows::of_mut));
        }
        let (input, d_below) = match run.start {
            0 => (SharedRows::of(input), None),
            l => (
                SharedRows::of_mut(&mut ws.a[l - 1]),
                Some(SharedRows::of_mut(&mut ws.d[l - 1])),
            ),
        };
        RunBuffers {
            local: false,
            input,
            d_below,
            layers,
        }
    }

    /// A block's own buffers `images` (`[z, a, d]` of each layer, [`RUN_ROWS`] rows), for
    /// a run of all the model's layers, whose first reads the batch `input`.
    fn local(images: &mut [[Array2<T>; 3]], input: ArrayView2<T>) -> Self {
        assert!(images.len() <= MAX_RUN, "runs are cut at MAX_RUN layers");
        let mut layers = [None; MAX_RUN];
        for (buf, zad) in layers.iter_mut().zip(images) {
            let [z, a, d] = zad;
            *buf = Some([z, a, d].map(SharedRows::of_mut));
        }
        RunBuffers {
            local: true,
            input: SharedRows::of(input),
            d_below: None,
            layers,
        }
    }

    /// Where rows `r` of the batch are in the layers' buffers.
    fn place(&self, r: &Range<usize>) -> Range<usize> {
        if self.local {
            0..r.len()
        } else {
            r.clone()
        }
    }

    /// Layer `k`'s `[z, a, d]`.
    fn at(&self, k: usize) -> [SharedRows<T>; 3] {
        self.layers[k].expect("buffers for each layer of the run")
    }

    /// Rows `r` of block `block` forward through `layers`.
    ///
    /// # Safety
    /// Rows `r` are this thread's alone, inside the buffers.
    unsafe fn forward(&self, layers: &[Layer<T>], block: usize, r: Range<usize>) {
        let here = self.place(&r);
        let (mut x, mut x_rows) = (self.input, r);
        for (k, layer) in layers.iter().enumerate() {
            let [z, a, _] = self.at(k);
            // SAFETY: as the caller promised; `x`'s rows were written before, on this thread.
            unsafe {
                let (z, a) = (z.rows_mut(here.clone()), a.rows_mut(here.clone()));
                layer.forward_rows(block, x.rows(x_rows), z, a);
            }
            (x, x_rows) = (a, here.clone());
        }
    }

    /// Rows `r` of block `block` backward through `layers`, from the last layer's `d =
    /// dL/dz`: each layer's backward, and below it the activation's, down to the `d` below
    /// the run (`dL/da`).
    ///
    /// # Safety
    /// Rows `r` are this thread's alone, inside the buffers.
    unsafe fn backward(&self, layers: &[Layer<T>], block: usize, r: Range<usize>) {
        let here = self.place(&r);
        for (k, layer) in layers.iter().enumerate().rev() {
            let d = self.at(k)[2];
            let (x, d_in, x_rows) = match k {
                0 => (self.input, self.d_below, r.clone()),
                k => (self.at(k - 1)[1], Some(self.at(k - 1)[2]), here.clone()),
            };
            // SAFETY: as the caller promised; `d`'s rows were written before, on this thread.
            unsafe {
                let d_in = d_in.map(|d_in| d_in.rows_mut(x_rows.clone()));
                layer.backward_rows(block, x.rows(x_rows), d.rows(here.clone()), d_in);
                if k > 0 {
                    let [z, a, d] = self.at(k - 1).map(|b| (b, here.clone()));
                    let d = d.0.rows_mut(d.1); // dL/da_{k-1}, then dL/dz_{k-1}
                    layers[k - 1]
                        .activation()
                        .backward(z.0.rows(z.1), a.0.rows(a.1), d);
                }
            }
        }
    }
}

/// `job(block, rows)` for the rows, `RUN_ROWS` at a time, of each of the batch's fixed
/// blocks (the blocks the layers' own passes use), the blocks on the pool's threads.
fn by_blocks(rows: usize, work: usize, job: impl Fn(usize, Range<usize>) + Sync) {
    let blocks: [usize; ROW_BLOCKS] = std::array::from_fn(|b| b);
    for_each_block(work, blocks, |b| {
        let end = rows * (b + 1) / ROW_BLOCKS;
        let mut first = rows * b / ROW_BLOCKS;
        while first < end {
            let last = (first + RUN_ROWS).min(end);
            job(b, first..last);
            first = last;
        }
        0.0
    });
}

/// The elements a pass over `layers` writes for `rows` rows (whether to wake threads).
fn work<T: Float>(layers: &[Layer<T>], rows: usize) -> usize {
    rows * layers.iter().map(Layer::n_out).sum::<usize>()
}

/// The forward pass of the per-row layers `run` (at most [`MAX_RUN`]; `input` is the
/// batch, read if the run starts at the first layer), a few images at a time through all
/// of them.
pub(super) fn forward_run<T: Float>(
    layers: &[Layer<T>],
    run: Range<usize>,
    ws: &mut Workspace<T>,
    input: ArrayView2<T>,
) {
    let rows = input.nrows();
    let bufs = RunBuffers::new(ws, &run, input);
    let layers = &layers[run];
    // SAFETY: `by_blocks` gives each thread its blocks' rows.
    by_blocks(rows, work(layers, rows), |block, r| unsafe {
        bufs.forward(layers, block, r)
    });
}

/// The backward pass of the per-row layers `run` (at most [`MAX_RUN`]) given `d = dL/dz` of
/// its last layer, a few images at a time through all of them: each layer's parameter
/// gradients, and `d = dL/da` of the layer below the run (if any).
pub(super) fn backward_run<T: Float>(
    layers: &mut [Layer<T>],
    run: Range<usize>,
    ws: &mut Workspace<T>,
    input: ArrayView2<T>,
) {
    let rows = input.nrows();
    let bufs = RunBuffers::new(ws, &run, input);
    layers[run.clone()]
        .iter_mut()
        .for_each(Layer::backward_begin);
    let run_layers = &layers[run.clone()];
    // SAFETY: `by_blocks` gives each thread its blocks' rows.
    by_blocks(rows, 2 * work(run_layers, rows), |block, r| unsafe {
        bufs.backward(run_layers, block, r)
    });
    for l in run {
        layers[l].backward_end();
    }
}

impl<T: Float> Autoencoder<T> {
    /// Whether [`Autoencoder::whole_step`] can take the data part of a training step: every
    /// layer per row (at most [`MAX_RUN`]), no activity penalty, a deterministic code.
    pub(super) fn steps_whole(&self, penalties: &[Penalty]) -> bool {
        self.arch.latent == Latent::Deterministic
            && self.layers.len() <= MAX_RUN
            && self.layers.iter().all(Layer::per_row)
            && penalties.iter().all(|p| matches!(p, Penalty::Weight(_)))
    }

    /// The data part of a training step (see [`Autoencoder::data_gradient`]) a few images
    /// at a time: forward through every layer, the loss's gradient, and backward, so the
    /// images' activations are still in the cache when the backward pass reads them. The
    /// loss's value is then summed over the batch as `Loss::value` sums it (the bits of
    /// the layer-by-layer step).
    pub(super) fn whole_step(
        &mut self,
        input: ArrayView2<T>,
        target: ArrayView2<T>,
        loss: Loss,
        terms: &mut LossTerms,
    ) {
        let rows = input.nrows();
        let ws = &mut self.ws;
        ws.prepare(rows, &self.layers, 0);
        ws.prepare_images(&self.layers, RUN_ROWS);
        self.layers.iter_mut().for_each(Layer::zero_grad);
        self.layers.iter_mut().for_each(Layer::backward_begin);
        let last = self.layers.len() - 1;
        // The batch's output, for the loss's value.
        let outputs = [&mut ws.z[last], &mut ws.a[last]].map(SharedRows::of_mut);
        let mut images = ws.images.iter_mut();
        let blocks: [RunBuffers<T>; ROW_BLOCKS] = std::array::from_fn(|_| {
            let images = images.next().expect("a block's buffers per block");
            RunBuffers::local(images, input)
        });
        let targets = SharedRows::of(target);
        let layers = &self.layers;
        let output = layers[last].activation();
        // SAFETY: `by_blocks` gives each thread its blocks' rows, and each block has its own
        // buffers.
        by_blocks(rows, 3 * work(layers, rows), |block, r| unsafe {
            let bufs = &blocks[block];
            bufs.forward(layers, block, r.clone());
            let here = bufs.place(&r);
            let [z, a, d] = bufs.at(last).map(|b| b.rows_mut(here.clone()));
            outputs[0].rows_mut(r.clone()).assign(&z);
            outputs[1].rows_mut(r.clone()).assign(&a);
            let (z, a, x) = (z.view(), a.view(), targets.rows(r.clone()));
            loss.grad_rows_unchecked(z, a, x, output, d, rows);
            bufs.backward(layers, block, r);
        });
        self.layers.iter_mut().for_each(Layer::backward_end);
        let (z, a) = self.ws.output(rows);
        terms.reconstruction = loss.value(z, a, target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation::{Identity, Relu, Sigmoid};
    use crate::architecture::{Padding, Rounding};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The parameter gradients' bits, in the one list's order.
    fn gradient_bits(model: &mut Autoencoder<f32>) -> Vec<u32> {
        let mut bits = Vec::new();
        model.visit_params(|_, _, grad, _| bits.extend(grad.iter().map(|g| g.to_bits())));
        bits
    }

    /// A model of image layers only, every kind, trained a few images at a time, and layer
    /// after layer: the same loss and the same gradients, bit for bit, for batches that
    /// do and do not divide into the blocks.
    #[test]
    fn the_whole_step_has_the_bits_of_the_step_layer_by_layer() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut model = Autoencoder::<f32>::sequence([2, 9, 9])
            .conv(4, 3, Padding::Same, Relu)
            .max_pool(2, Rounding::Ceil) // 4x5x5
            .conv(3, 3, Padding::Valid, Relu) // 3x3x3
            .code()
            .conv_transpose(3, [2, 2], [2, 2], [0, 0, 0, 0], Relu) // 3x6x6
            .upsample(2) // 3x12x12
            .conv(2, 4, Padding::Valid, Identity) // 2x9x9
            .conv(2, 1, Padding::Same, Sigmoid)
            .build(&mut rng)
            .expect("a valid model");
        assert!(model.steps_whole(&[]));
        for rows in [1, 8, 13] {
            let x = Array2::from_shape_simple_fn((rows, 162), || rng.random_range(0.0..1.0f32));
            let loss = Loss::BinaryCrossEntropy;
            let mut terms = LossTerms::default();
            model.whole_step(x.view(), x.view(), loss, &mut terms);
            let (whole, whole_loss) = (gradient_bits(&mut model), terms.reconstruction);
            let mut seed = ChaCha8Rng::seed_from_u64(0);
            model.gradient_by_layers(x.view(), x.view(), loss, &[], &mut terms, &mut seed, None);
            let by_layers = gradient_bits(&mut model);
            assert_eq!(whole, by_layers, "gradients, {rows} rows");
            assert_eq!(whole_loss.to_bits(), terms.reconstruction.to_bits(), "loss");
        }
    }
}
