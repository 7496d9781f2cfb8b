//! Training from row sources that are not in memory: the read-ahead path gives the weights
//! of the in-memory path bit for bit (same shuffle setting), the block shuffle reads whole
//! blocks once per epoch and resumes bit for bit, and bad rows or failed reads stop the run
//! with a typed error. `.npy` files and shards read piece by piece train as memory does.

mod common;

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Mutex;

use autoencoder::data::{npy, NpyRows, NpyShards, RowSource};
use autoencoder::{
    Activation, Adam, Autoencoder, Checkpoint, Error, Loss, Noise, Penalty, Result, Shuffle,
    Trainer,
};
use common::param_bits;
use ndarray::{s, Array1, Array2, ArrayViewMut2, ShapeBuilder};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Rows of an array behind the trait's required methods only: the trainer sees a source
/// that is not in memory, and every read is logged as `(start, rows)`.
struct Streamed {
    x: Array2<f32>,
    reads: Mutex<Vec<(usize, usize)>>,
    fail_at: Option<usize>,
}

impl Streamed {
    fn new(x: Array2<f32>) -> Streamed {
        Streamed {
            x,
            reads: Mutex::new(Vec::new()),
            fail_at: None,
        }
    }

    fn reads(&self) -> Vec<(usize, usize)> {
        self.reads.lock().expect("not poisoned").clone()
    }
}

impl RowSource<f32> for Streamed {
    fn n_rows(&self) -> usize {
        self.x.nrows()
    }

    fn width(&self) -> usize {
        self.x.ncols()
    }

    fn read_rows(&self, start: usize, mut out: ArrayViewMut2<'_, f32>) -> Result<()> {
        let rows = out.nrows();
        if self
            .fail_at
            .is_some_and(|f| (start..start + rows).contains(&f))
        {
            return Err(Error::Io {
                action: "cannot read",
                path: PathBuf::from("streamed.bin"),
                source: std::io::Error::other("disk gone"),
            });
        }
        self.reads.lock().expect("not poisoned").push((start, rows));
        out.assign(&self.x.slice(s![start..start + rows, ..]));
        Ok(())
    }
}

/// `n` rows of zeros, never stored.
struct Zeros(usize);

impl RowSource<f32> for Zeros {
    fn n_rows(&self) -> usize {
        self.0
    }

    fn width(&self) -> usize {
        12
    }

    fn read_rows(&self, _start: usize, mut out: ArrayViewMut2<'_, f32>) -> Result<()> {
        out.fill(0.0);
        Ok(())
    }
}

fn data() -> Array2<f32> {
    Array2::from_shape_fn((203, 12), |(i, j)| ((i * 7 + j * 5) % 13) as f32 / 12.0)
}

fn model() -> Result<Autoencoder<f32>> {
    Autoencoder::<f32>::builder(12)
        .hidden(8, Activation::Relu)
        .latent(4, Activation::Tanh)
        .output(Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(5))
}

/// Noise and a penalty draw from and use the run's generator in every batch; batches of
/// 16 leave a last batch of 11 rows and span the block shuffle's buffers.
fn trainer() -> Result<Trainer<Adam<f32>>> {
    Ok(Trainer::new(Adam::new(5e-3))
        .loss(Loss::BinaryCrossEntropy)
        .epochs(4)
        .batch_size(16)
        .seed(9)
        .noise(Noise::SaltAndPepper { fraction: 0.1 })
        .penalty(Penalty::l2_weights(1e-4)?))
}

const BLOCKS: Shuffle = Shuffle::Blocks {
    block_rows: 10,
    buffer_blocks: 3,
};

fn trained(shuffle: Option<Shuffle>, source: impl RowSource<f32>) -> Result<Vec<u32>> {
    let mut ae = model()?;
    let mut t = trainer()?;
    if let Some(shuffle) = shuffle {
        t = t.shuffle(shuffle);
    }
    t.fit(&mut ae, source, None)?;
    Ok(param_bits(&ae))
}

/// The row shuffle through the read-ahead thread (rows read by index) and straight from
/// memory; the block shuffle on a source in memory and on one read piece by piece.
#[test]
fn streamed_sources_train_as_memory_does_bit_for_bit() -> Result<()> {
    let x = data();
    let memory = trained(None, x.view())?;
    let streamed = Streamed::new(x.clone());
    assert_eq!(trained(Some(Shuffle::Rows), &streamed)?, memory);
    assert!(!streamed.reads().is_empty(), "the source was read");

    let blocks = trained(Some(BLOCKS), x.view())?;
    assert_ne!(blocks, memory, "another order, other weights");
    assert_eq!(trained(Some(BLOCKS), Streamed::new(x.clone()))?, blocks);
    // An owned array is a source too.
    assert_eq!(trained(Some(BLOCKS), x)?, blocks);
    Ok(())
}

/// Without a setting, a source that is not in memory gets the default block shuffle.
#[test]
fn sources_not_in_memory_default_to_the_block_shuffle() -> Result<()> {
    let x = Array2::from_shape_fn((5000, 12), |(i, j)| ((i * 7 + j * 5) % 13) as f32 / 12.0);
    let streamed = Streamed::new(x.clone());
    let mut ae = model()?;
    trainer()?.epochs(1).fit(&mut ae, &streamed, None)?;
    let Shuffle::Blocks { block_rows, .. } = Shuffle::BLOCKS else {
        unreachable!("BLOCKS is a block shuffle")
    };
    let reads = streamed.reads();
    // Salt-and-pepper's range pass reads all rows once, in one chunk here; then the blocks.
    assert_eq!(reads[0], (0, 5000), "{reads:?}");
    let blocks = &reads[1..];
    assert_eq!(blocks.len(), 5, "{reads:?}");
    assert!(blocks
        .iter()
        .all(|&(start, rows)| start % block_rows == 0 && rows == block_rows.min(5000 - start)));
    let mut explicit = model()?;
    trainer()?
        .epochs(1)
        .shuffle(Shuffle::BLOCKS)
        .fit(&mut explicit, x.view(), None)?;
    assert_eq!(param_bits(&ae), param_bits(&explicit));
    Ok(())
}

/// Every epoch reads each block once, whole, in an order that changes between epochs.
#[test]
fn the_block_shuffle_reads_each_block_once_per_epoch() -> Result<()> {
    let streamed = Streamed::new(data());
    let mut ae = model()?;
    trainer()?
        .noise(Noise::Masking { fraction: 0.1 }) // no range pass: only the blocks are read
        .shuffle(BLOCKS)
        .fit(&mut ae, &streamed, None)?;
    let reads = streamed.reads();
    let n_blocks = 21; // 203 rows in blocks of 10
    assert_eq!(reads.len(), 4 * n_blocks);
    let mut orders = Vec::new();
    for epoch in reads.chunks(n_blocks) {
        let mut starts: Vec<usize> = epoch.iter().map(|r| r.0).collect();
        orders.push(starts.clone());
        starts.sort_unstable();
        assert_eq!(starts, (0..n_blocks).map(|b| b * 10).collect::<Vec<_>>());
        for &(start, rows) in epoch {
            assert_eq!(rows, if start == 200 { 3 } else { 10 });
        }
    }
    assert_ne!(orders[0], orders[1]);
    assert_ne!(orders[0], (0..n_blocks).map(|b| b * 10).collect::<Vec<_>>());
    Ok(())
}

/// A run under the block shuffle, stopped after 2 of 4 epochs and resumed from its
/// checkpoint on a streamed source, ends with the weights of the uninterrupted run.
#[test]
fn the_block_shuffle_resumes_bit_for_bit() -> Result<()> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("out-of-core-resume");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io {
        action: "cannot create",
        path: dir.clone(),
        source: e,
    })?;
    let path = dir.join("run.ckpt");
    let x = data();
    let whole = trained(Some(BLOCKS), x.view())?;

    let mut ae = model()?;
    trainer()?
        .shuffle(BLOCKS)
        .checkpoint(&path, 1)
        .on_epoch(|r| match r.epoch {
            1 => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        })
        .fit(&mut ae, Streamed::new(x.clone()), None)?;
    let checkpoint = Checkpoint::<f32>::load(&path)?;
    assert_eq!(checkpoint.epoch(), 2);

    // Another shuffle than the first run's is refused.
    let mut other = model()?;
    for shuffle in [
        Shuffle::Rows,
        Shuffle::Blocks {
            block_rows: 10,
            buffer_blocks: 4,
        },
    ] {
        match trainer()?
            .shuffle(shuffle)
            .resume(&mut other, checkpoint.clone(), x.view(), None)
        {
            Err(Error::InvalidConfig(m)) => assert!(m.contains("shuffle"), "{m}"),
            r => panic!("{shuffle:?}: expected InvalidConfig, got {r:?}"),
        }
    }
    let mut resumed = model()?;
    trainer()?
        .shuffle(BLOCKS)
        .resume(&mut resumed, checkpoint, Streamed::new(x), None)?;
    assert_eq!(param_bits(&resumed), whole);
    Ok(())
}

/// Bad rows are found where they are read, and named by their row in the source; a failed
/// read stops the run with the source's error; settings and shapes are checked first.
#[test]
fn streamed_errors_are_typed() -> Result<()> {
    let mut x = data();
    x[[157, 3]] = f32::NAN;
    let mut ae = model()?;
    let plain = || Trainer::new(Adam::new(1e-3)).shuffle(BLOCKS);
    match plain().fit(&mut ae, Streamed::new(x.clone()), None) {
        Err(Error::NonFiniteData { row, col, .. }) => assert_eq!((row, col), (157, 3)),
        r => panic!("expected NonFiniteData, got {r:?}"),
    }
    assert!(ae
        .layers()
        .iter()
        .all(|l| l.weights().iter().all(|v| v.is_finite())));
    match plain()
        .shuffle(Shuffle::Rows)
        .fit(&mut ae, Streamed::new(x.clone()), None)
    {
        Err(Error::NonFiniteData { row, col, .. }) => assert_eq!((row, col), (157, 3)),
        r => panic!("expected NonFiniteData, got {r:?}"),
    }

    x[[157, 3]] = 1.5; // outside [0, 1]: not a target for binary cross-entropy
    match plain()
        .loss(Loss::BinaryCrossEntropy)
        .fit(&mut ae, Streamed::new(x.clone()), None)
    {
        Err(Error::InvalidConfig(m)) => assert!(m.contains("[0, 1]"), "{m}"),
        r => panic!("expected InvalidConfig, got {r:?}"),
    }

    let mut failing = Streamed::new(data());
    failing.fail_at = Some(42);
    match plain().epochs(3).fit(&mut ae, &failing, None) {
        Err(Error::Io { path, .. }) => assert_eq!(path, PathBuf::from("streamed.bin")),
        r => panic!("expected Io, got {r:?}"),
    }

    for (block_rows, buffer_blocks, name) in [(0, 3, "block_rows"), (10, 0, "buffer_blocks")] {
        let bad = Shuffle::Blocks {
            block_rows,
            buffer_blocks,
        };
        match plain()
            .shuffle(bad)
            .fit(&mut ae, Streamed::new(data()), None)
        {
            Err(Error::InvalidHyperparameter { name: n, .. }) => assert_eq!(n, name),
            r => panic!("expected InvalidHyperparameter, got {r:?}"),
        }
    }
    let narrow = Streamed::new(Array2::zeros((10, 11)));
    assert!(matches!(
        plain().fit(&mut ae, &narrow, None),
        Err(Error::ShapeMismatch { .. })
    ));
    let empty = Streamed::new(Array2::zeros((0, 12)));
    assert!(matches!(
        plain().fit(&mut ae, &empty, None),
        Err(Error::EmptyData { .. })
    ));
    // Read-ahead buffers past the memory limit are refused before they are allocated.
    let huge = Shuffle::Blocks {
        block_rows: 1 << 40,
        buffer_blocks: 2,
    };
    match plain().shuffle(huge).fit(&mut ae, Zeros(1 << 41), None) {
        Err(Error::TooLarge { what, .. }) => assert_eq!(what, "read-ahead buffers"),
        r => panic!("expected TooLarge, got {r:?}"),
    }
    Ok(())
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("out-of-core-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// A file and shards of the same rows (one shard `f64`, one empty) give the weights of
/// training in memory, bit for bit, under both shuffles.
#[test]
fn npy_files_and_shards_train_as_memory_does_bit_for_bit() -> Result<()> {
    let dir = scratch("npy");
    let x = data();
    let whole = dir.join("whole.npy");
    npy::write(&whole, x.view())?;
    let parts = [
        dir.join("a.npy"),
        dir.join("b.npy"),
        dir.join("empty.npy"),
        dir.join("c.npy"),
    ];
    npy::write(&parts[0], x.slice(s![..70, ..]))?;
    npy::write(&parts[1], x.slice(s![70..150, ..]).mapv(f64::from).view())?;
    npy::write(&parts[2], Array2::<f32>::zeros((0, 12)).view())?;
    npy::write(&parts[3], x.slice(s![150.., ..]))?;
    let file = NpyRows::<f32>::open(&whole)?;
    let shards = NpyShards::<f32>::open(&parts)?;
    assert_eq!((shards.n_rows(), shards.width()), (203, 12));

    let rows = trained(None, x.view())?;
    assert_eq!(trained(Some(Shuffle::Rows), &file)?, rows);
    assert_eq!(trained(Some(Shuffle::Rows), &shards)?, rows);
    let blocks = trained(Some(BLOCKS), x.view())?;
    assert_eq!(trained(Some(BLOCKS), &file)?, blocks);
    assert_eq!(trained(Some(BLOCKS), &shards)?, blocks);

    // The same rows read back, across shard boundaries, in f64 too.
    let wide = NpyShards::<f64>::open(&parts)?;
    let mut out = Array2::<f64>::zeros((100, 12));
    wide.read_rows(60, out.view_mut())?;
    assert_eq!(out, x.slice(s![60..160, ..]).mapv(f64::from));
    // Into a buffer whose rows are not contiguous (column-major): read through the reader's
    // own buffer instead of straight into the rows, the same values.
    let mut columns = Array2::<f32>::zeros((100, 12).f());
    file.read_rows(60, columns.view_mut())?;
    assert_eq!(columns, x.slice(s![60..160, ..]));
    Ok(())
}

/// Files that cannot be rows are refused when opened; a file truncated while in use is
/// reported when read.
#[test]
fn npy_sources_refuse_what_they_cannot_read() -> Result<()> {
    let dir = scratch("npy-errors");
    let format = |r: Result<NpyRows<f32>>, what: &str| match r {
        Err(Error::Format { reason, .. }) => assert!(reason.contains(what), "{reason}"),
        r => panic!("expected a Format error with {what:?}, got {r:?}"),
    };
    let flat = dir.join("flat.npy");
    npy::write(&flat, Array1::<f32>::zeros(10).view())?;
    format(NpyRows::open(&flat), "two-dimensional");
    let fortran = dir.join("fortran.npy");
    npy::write(&fortran, data().t().as_standard_layout().t())?;
    format(NpyRows::open(&fortran), "np.ascontiguousarray");
    let short = dir.join("short.npy");
    npy::write(&short, data().view())?;
    let bytes = std::fs::read(&short).expect("written");
    std::fs::write(&short, &bytes[..bytes.len() - 3]).expect("rewritten");
    format(NpyRows::open(&short), "truncated");

    let narrow = dir.join("narrow.npy");
    npy::write(&narrow, Array2::<f32>::zeros((5, 11)).view())?;
    let whole = dir.join("whole.npy");
    npy::write(&whole, data().view())?;
    match NpyShards::<f32>::open([&whole, &narrow]) {
        Err(Error::ShapeMismatch { found, .. }) => assert!(found.contains("narrow.npy"), "{found}"),
        r => panic!("expected ShapeMismatch, got {r:?}"),
    }
    assert!(matches!(
        NpyShards::<f32>::open(Vec::<PathBuf>::new()),
        Err(Error::EmptyData { .. })
    ));
    assert!(matches!(
        NpyRows::<f32>::open(dir.join("missing.npy")),
        Err(Error::Io { .. })
    ));

    let rows = NpyRows::<f32>::open(&whole)?;
    let mut out = Array2::<f32>::zeros((10, 12));
    assert!(matches!(
        rows.read_rows(200, out.view_mut()),
        Err(Error::ShapeMismatch { .. })
    ));
    let bytes = std::fs::read(&whole).expect("written");
    std::fs::write(&whole, &bytes[..bytes.len() / 2]).expect("truncated");
    match rows.read_rows(190, out.view_mut()) {
        Err(Error::Format { reason, .. }) => assert!(reason.contains("truncated"), "{reason}"),
        r => panic!("expected Format, got {r:?}"),
    }
    Ok(())
}

/// Every row once per epoch, whole blocks of many rows spread over several pieces of a
/// file and batches spanning buffers: with a learning rate too small to move the weights,
/// the epoch's mean training loss is the loss of the whole data set.
#[test]
fn every_row_is_seen_once_per_epoch() -> Result<()> {
    let dir = scratch("once");
    let x = Array2::from_shape_fn((3001, 784), |(i, j)| {
        (((i * 31 + j * 7) % 97) as f32 / 96.0 * ((i % 13) as f32 / 12.0)).min(1.0)
    });
    let path = dir.join("x.npy");
    npy::write(&path, x.view())?;
    let file = NpyRows::<f32>::open(&path)?;
    let mut ae = Autoencoder::<f32>::builder(784)
        .latent(8, Activation::Relu)
        .output(Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(3))?;
    let history = Trainer::new(autoencoder::Sgd::new(1e-30))
        .loss(Loss::BinaryCrossEntropy)
        .epochs(2)
        .batch_size(100)
        .shuffle(Shuffle::Blocks {
            block_rows: 700,
            buffer_blocks: 2,
        })
        .fit(&mut ae, &file, None)?;
    let whole = ae.evaluate(x.view(), x.view(), Loss::BinaryCrossEntropy)?;
    for e in &history.epochs {
        let rel = (e.train_reconstruction - whole).abs() / whole;
        assert!(
            rel < 1e-5,
            "epoch {}: {} vs {whole}",
            e.epoch,
            e.train_reconstruction
        );
    }
    Ok(())
}
