//! The training step allocates nothing after the first batch: a counting global allocator
//! (this test binary only) watches many steps, through `Trainer::step` and inside
//! `Trainer::fit`, with matrix products small enough to run on one thread and large
//! enough to be split over two (the helper threads' allocations are counted too).
//!
//! Built with `harness = false` (see Cargo.toml): the test harness's own threads would
//! otherwise allocate now and then while the counter runs; here the process runs only
//! this `main` and the matrix products' helper threads.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use autoencoder::data::RowSource;
use autoencoder::{Activation, Adam, Autoencoder, Loss, Noise, Penalty, Result, Shuffle, Trainer};
use ndarray::{Array2, ArrayViewMut2};
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

fn main() -> Result<()> {
    training_steps_allocate_nothing_after_the_first_batch()?;
    variational_steps_allocate_nothing()?;
    threaded_steps_allocate_nothing()?;
    convolutional_steps_allocate_nothing()?;
    streamed_steps_allocate_nothing()?;
    distributed_steps_allocate_nothing()?;
    println!("alloc: no allocation per training step after the first batch: ok");
    Ok(())
}

fn training_steps_allocate_nothing_after_the_first_batch() -> Result<()> {
    // 4 layers: 64-48-16-48-64, batch 32: every product runs on the calling thread.
    let mut ae = Autoencoder::<f32>::builder(64)
        .hidden(48, Activation::Relu)
        .latent(16, Activation::Sigmoid)
        .output(Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(5))?;
    let x = Array2::from_shape_fn((200, 64), |(i, j)| ((i * 7 + j * 3) % 13) as f32 / 12.0);
    let batch = x.slice(ndarray::s![..32, ..]);
    let penalties: [Penalty; 3] = [
        Penalty::kl_sparsity(0.1, 0.5)?.into(),
        Penalty::l2_weights(1e-4)?.into(),
        Penalty::l1_activity(1e-4)?.on_layer(0).into(),
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
    assert_eq!(during, 0, "{during} allocations in {steps} steps");

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
                0,
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
fn variational_steps_allocate_nothing() -> Result<()> {
    let mut vae = Autoencoder::<f32>::builder(64)
        .hidden(48, Activation::Relu)
        .gaussian_latent(8)
        .output(Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(6))?;
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
        during, 0,
        "variational model: {during} allocations in {steps} steps"
    );
    Ok(())
}

/// W-shallow's shape (784-32-784, batch 256): its products are split over two threads.
fn threaded_steps_allocate_nothing() -> Result<()> {
    autoencoder::set_threads(2)?;
    let mut ae = Autoencoder::<f32>::builder(784)
        .latent(32, Activation::Relu)
        .output(Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(7))?;
    let x = Array2::from_shape_fn((256, 784), |(i, j)| ((i * 3 + j * 7) % 17) as f32 / 16.0);
    let mut trainer = Trainer::new(Adam::new(1e-3).eps(1e-7)).loss(Loss::BinaryCrossEntropy);
    trainer.step(&mut ae, x.view(), x.view())?; // first batch; starts the helper thread
    std::thread::sleep(std::time::Duration::from_millis(100)); // let it settle
    trainer.step(&mut ae, x.view(), x.view())?;
    let steps = 50;
    let before = allocations();
    for _ in 0..steps {
        trainer.step(&mut ae, x.view(), x.view())?;
    }
    let during = allocations() - before;
    assert_eq!(
        during, 0,
        "two threads: {during} allocations in {steps} steps"
    );
    // The work was handed to the pool: its helper thread exists (Linux names it in /proc).
    if cfg!(all(
        feature = "threading",
        not(feature = "blas"),
        target_os = "linux"
    )) {
        let helpers = std::fs::read_dir("/proc/self/task")
            .map(|tasks| {
                tasks
                    .flatten()
                    .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                    .filter(|name| name.starts_with("autoencoder-gem"))
                    .count()
            })
            .unwrap_or(0);
        assert_eq!(helpers, 1, "one matrix-product helper thread");
    }
    Ok(())
}

/// A convolutional denoiser through every image kind, on two threads, with a last batch
/// smaller than the others: after the first epoch, no step allocates (the image layers'
/// patch buffers grow once, at the first batch).
fn convolutional_steps_allocate_nothing() -> Result<()> {
    use autoencoder::Padding::Same;
    autoencoder::set_threads(2)?;
    let mut ae = Autoencoder::<f32>::sequence([1, 16, 16])
        .conv(8, 3, Same, Activation::Relu)
        .max_pool(2, autoencoder::Rounding::Ceil)
        .conv(4, 3, Same, Activation::Relu)
        .code()
        .conv_transpose(8, [2, 2], [2, 2], [0; 4], Activation::Relu)
        .upsample(1)
        .conv(1, 3, Same, Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(8))?;
    let x = Array2::from_shape_fn((300, 256), |(i, j)| ((i * 5 + j * 3) % 19) as f32 / 18.0);
    let log = Arc::new(Mutex::new(Vec::with_capacity(1000)));
    let sink = Arc::clone(&log);
    let mut trainer = Trainer::new(Adam::new(1e-3).eps(1e-7))
        .loss(Loss::BinaryCrossEntropy)
        .noise(Noise::Gaussian {
            std: 0.3,
            clip: Some((0.0, 1.0)),
        })
        .batch_size(128)
        .epochs(3)
        .on_batch(move |p| {
            if let Ok(mut log) = sink.lock() {
                log.push((p.epoch, allocations()));
            }
        });
    trainer.fit(&mut ae, x.view(), None)?;
    let log = log.lock().map(|l| l.clone()).unwrap_or_default();
    assert_eq!(log.len(), 3 * 3, "one record per batch");
    // Between epochs the trainer records its history; within epochs 2 and 3 (whose last
    // batch has 44 rows, not 128), nothing.
    for epoch in 1..3 {
        let batches: Vec<usize> = log.iter().filter(|r| r.0 == epoch).map(|r| r.1).collect();
        assert_eq!(batches.len(), 3);
        assert_eq!(
            batches[batches.len() - 1] - batches[0],
            0,
            "convolutional model: allocations within epoch {epoch}: {log:?}"
        );
    }
    Ok(())
}

/// Rows of an array behind the trait's required methods only, as a file would give them.
struct Streamed(Array2<f32>);

impl RowSource<f32> for Streamed {
    fn n_rows(&self) -> usize {
        self.0.nrows()
    }

    fn width(&self) -> usize {
        self.0.ncols()
    }

    fn read_rows(&self, start: usize, mut out: ArrayViewMut2<'_, f32>) -> Result<()> {
        let rows = out.nrows();
        out.assign(&self.0.slice(ndarray::s![start..start + rows, ..]));
        Ok(())
    }
}

/// `fit` on a source read piece by piece, under the block shuffle and the row shuffle: the
/// read-ahead thread fills its windows and hands them over without allocating, on either
/// thread (batches of 32 span the block shuffle's buffers of 3 blocks of 20 rows).
fn streamed_steps_allocate_nothing() -> Result<()> {
    let source = Streamed(Array2::from_shape_fn((500, 64), |(i, j)| {
        ((i * 7 + j * 3) % 13) as f32 / 12.0
    }));
    for shuffle in [
        Shuffle::Blocks {
            block_rows: 20,
            buffer_blocks: 3,
        },
        Shuffle::Rows,
    ] {
        let mut ae = Autoencoder::<f32>::builder(64)
            .latent(16, Activation::Sigmoid)
            .output(Activation::Sigmoid)
            .build(&mut ChaCha8Rng::seed_from_u64(8))?;
        let log = Arc::new(Mutex::new(Vec::with_capacity(1000)));
        let sink = Arc::clone(&log);
        let mut trainer = Trainer::new(Adam::new(1e-3))
            .loss(Loss::BinaryCrossEntropy)
            .noise(Noise::SaltAndPepper { fraction: 0.1 })
            .shuffle(shuffle)
            .batch_size(32)
            .epochs(3)
            .on_batch(move |p| {
                if let Ok(mut log) = sink.lock() {
                    log.push((p.epoch, p.batch, allocations()));
                }
            });
        trainer.fit(&mut ae, &source, None)?;
        let log = log.lock().map(|l| l.clone()).unwrap_or_default();
        assert_eq!(log.len(), 3 * 16, "one record per batch");
        let mut compared = 0;
        for pair in log.windows(2) {
            let ((epoch0, _, count0), (epoch1, _, count1)) = (pair[0], pair[1]);
            if epoch0 == epoch1 {
                assert_eq!(
                    count1 - count0,
                    0,
                    "{shuffle:?}: allocations between batches {:?} and {:?}",
                    pair[0],
                    pair[1]
                );
                compared += 1;
            }
        }
        assert_eq!(compared, 3 * 15);
    }
    Ok(())
}

/// Two ranks (threads of this process, `distributed::Local`) training with noise and a
/// weight penalty and KL sparsity: the per-step exchanges (gradients, and the global batch's
/// mean activation) allocate nothing either.
/// Rank 0 logs the counter, which counts both ranks' allocations.
fn distributed_steps_allocate_nothing() -> Result<()> {
    use autoencoder::distributed::Local;
    let x = Array2::from_shape_fn((200, 64), |(i, j)| ((i * 7 + j * 3) % 13) as f32 / 12.0);
    let log = Arc::new(Mutex::new(Vec::with_capacity(1000)));
    let group = Local::group(2)?;
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = group
            .into_iter()
            .map(|comm| {
                let (x, sink) = (x.view(), Arc::clone(&log));
                s.spawn(move || -> Result<()> {
                    let rank0 = autoencoder::distributed::Communicator::rank(&comm) == 0;
                    let mut ae = Autoencoder::<f32>::builder(64)
                        .hidden(48, Activation::Relu)
                        .latent(16, Activation::Sigmoid)
                        .output(Activation::Sigmoid)
                        .build(&mut ChaCha8Rng::seed_from_u64(5))?;
                    Trainer::new(Adam::new(1e-3))
                        .loss(Loss::BinaryCrossEntropy)
                        .penalty(Penalty::l2_weights(1e-4)?)
                        .penalty(Penalty::kl_sparsity(0.1, 0.5)?)
                        .noise(Noise::Masking { fraction: 0.2 })
                        .batch_size(32)
                        .epochs(3)
                        .distributed(Arc::new(comm))
                        .on_batch(move |p| {
                            if let (true, Ok(mut log)) = (rank0, sink.lock()) {
                                log.push((p.epoch, p.batch, allocations()));
                            }
                        })
                        .fit(&mut ae, x, None)
                        .map(|_| ())
                })
            })
            .collect();
        for h in handles {
            h.join().expect("no rank panics")?;
        }
        Ok(())
    })?;
    let log = log.lock().map(|l| l.clone()).unwrap_or_default();
    assert_eq!(log.len(), 3 * 7, "one record per batch");
    // Only pairs inside an epoch, away from its ends: the other rank may be finishing
    // the previous epoch or already recording this one (which allocates, once per epoch).
    let inside = |p: &&[(usize, usize, usize)]| p[0].0 == p[1].0 && p[0].1 > 1 && p[1].1 < 7;
    assert_eq!(log.windows(2).filter(inside).count(), 3 * 4);
    for pair in log.windows(2).filter(inside) {
        let ((_, _, count0), (_, _, count1)) = (pair[0], pair[1]);
        assert_eq!(
            count1 - count0,
            0,
            "distributed: allocations between batches {:?} and {:?}",
            pair[0],
            pair[1]
        );
    }
    Ok(())
}
