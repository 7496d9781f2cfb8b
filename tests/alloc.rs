//! The training step allocates nothing after the first batch: a counting global allocator
//! (this test binary only) watches many steps, through `Trainer::step` and inside
//! `Trainer::fit`.
//!
//! The one allocation left is not ours: without the `blas` feature, `ndarray`'s matrix
//! product (matrixmultiply) takes a packing buffer from the allocator on every call and
//! frees it before returning. The test measures that number on a bare `general_mat_mul`
//! and asserts that a step allocates exactly that many times per matrix product and
//! nothing more (with `blas`, OpenBLAS keeps its own buffers and the expected count is 0).
//!
//! Built with `harness = false` (see Cargo.toml): the test harness's own threads would
//! otherwise allocate now and then while the counter runs; here the process runs only
//! this `main` (and the matrix products' worker threads, which are counted too).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use autoencoder::{Activation, Adam, Autoencoder, Loss, Noise, Penalty, Result, Trainer};
use ndarray::linalg::general_mat_mul;
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::SeqCst)
}

/// Allocations made by one `general_mat_mul` of the shapes a step uses, after a warm-up.
fn allocations_per_matrix_product() -> usize {
    // Start matrixmultiply's worker threads (a product large enough to be split) and let
    // them finish starting up: a new thread allocates a little in its first moments.
    let big = Array2::<f32>::from_elem((512, 512), 0.5);
    let mut out = Array2::<f32>::zeros((512, 512));
    general_mat_mul(1.0, &big, &big, 0.0, &mut out);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let a = Array2::<f32>::from_elem((32, 64), 0.5);
    let b = Array2::<f32>::from_elem((64, 48), 0.25);
    let mut c = Array2::<f32>::zeros((32, 48));
    general_mat_mul(1.0, &a, &b, 0.0, &mut c);
    let before = allocations();
    for _ in 0..10 {
        general_mat_mul(1.0, &a, &b, 1.0, &mut c);
    }
    let per_call = (allocations() - before) / 10;
    assert!(per_call <= 1, "{per_call} allocations per matrix product");
    per_call
}

fn main() -> Result<()> {
    let per_product = allocations_per_matrix_product();
    training_steps_allocate_nothing_after_the_first_batch(per_product)?;
    variational_steps_allocate_nothing(per_product)?;
    println!(
        "alloc: no allocation per training step beyond the matrix products' own \
         ({per_product} per product): ok"
    );
    Ok(())
}

fn training_steps_allocate_nothing_after_the_first_batch(per_product: usize) -> Result<()> {
    // 4 layers: 64-48-16-48-64; per step 4 forward products, 4 weight-gradient products and
    // 3 input-gradient products (none for the first layer).
    let mut ae = Autoencoder::<f32>::builder(64)
        .hidden(48, Activation::Relu)
        .latent(16, Activation::Sigmoid)
        .output(Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(5))?;
    let products_per_step = 4 + 4 + 3;
    let x = Array2::from_shape_fn((200, 64), |(i, j)| ((i * 7 + j * 3) % 13) as f32 / 12.0);
    let batch = x.slice(ndarray::s![..32, ..]);
    let penalties = [
        Penalty::kl_sparsity(0.1, 0.5)?,
        Penalty::l2_weights(1e-4)?,
        Penalty::l1_activity(1e-4)?.on_layer(0),
    ];
    let mut trainer = Trainer::new(Adam::new(1e-3).eps(1e-7))
        .loss(Loss::BinaryCrossEntropy)
        .clip_grad_norm(1.0);
    for p in penalties {
        trainer = trainer.penalty(p);
    }

    // Through the public single step.
    trainer.step(&mut ae, batch, batch)?; // first batch: workspace and optimizer state
    let steps = 100;
    let before = allocations();
    for _ in 0..steps {
        trainer.step(&mut ae, batch, batch)?;
    }
    let during = allocations() - before;
    assert_eq!(
        during,
        steps * products_per_step * per_product,
        "{during} allocations in {steps} steps; the matrix products account for {per_product} each"
    );

    // Inside fit (with noise, a partial last batch of 200 % 32 = 8 rows): record the
    // counter at every batch into storage reserved up front, then compare consecutive
    // batches of the same epoch.
    let log = Arc::new(Mutex::new(Vec::with_capacity(1000)));
    let sink = Arc::clone(&log);
    let mut trainer = trainer
        .noise(Noise::Masking { fraction: 0.2 })
        .batch_size(32)
        .epochs(3)
        .on_batch(move |p| {
            if let Ok(mut log) = sink.lock() {
                log.push((p.epoch, p.batch, allocations()));
            }
        });
    trainer.fit(&mut ae, x.view(), Some(x.view()))?;
    let log = log.lock().map(|l| l.clone()).unwrap_or_default();
    assert_eq!(log.len(), 3 * 7, "one record per batch");
    let mut compared = 0;
    for pair in log.windows(2) {
        let ((epoch0, _, count0), (epoch1, _, count1)) = (pair[0], pair[1]);
        if epoch0 == epoch1 {
            assert_eq!(
                count1 - count0,
                products_per_step * per_product,
                "allocations between batches {:?} and {:?}",
                pair[0],
                pair[1]
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 3 * 6);
    Ok(())
}

/// The variational model's step (sampling, Gaussian KL) through `Trainer::step`.
fn variational_steps_allocate_nothing(per_product: usize) -> Result<()> {
    let mut vae = Autoencoder::<f32>::builder(64)
        .hidden(48, Activation::Relu)
        .gaussian_latent(8)
        .output(Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(6))?;
    let products_per_step = 3 * vae.layers().len() - 1;
    let x = Array2::from_shape_fn((32, 64), |(i, j)| ((i * 5 + j) % 11) as f32 / 10.0);
    let mut trainer = Trainer::new(Adam::new(1e-3))
        .loss(Loss::BinaryCrossEntropySum)
        .penalty(Penalty::gaussian_kl(1.0)?);
    trainer.step(&mut vae, x.view(), x.view())?;
    let steps = 50;
    let before = allocations();
    for _ in 0..steps {
        trainer.step(&mut vae, x.view(), x.view())?;
    }
    let during = allocations() - before;
    assert_eq!(
        during,
        steps * products_per_step * per_product,
        "variational model: {during} allocations in {steps} steps"
    );
    Ok(())
}
