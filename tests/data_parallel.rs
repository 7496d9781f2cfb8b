//! Data-parallel training on ranks that are threads of this process
//! ([`autoencoder::distributed::Local`]; the same code path as MPI ranks, without MPI):
//! one rank is the single-process run bit for bit; several ranks agree with one to rounding
//! and with each other bit for bit; every rank holds the same weights; a rank that fails
//! stops every rank with the same error; rank 0's checkpoint resumes bit for bit.

mod common;

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;

use autoencoder::data::RowSource;
use autoencoder::distributed::{Communicator, Local};
use autoencoder::{
    Activation, Adam, Autoencoder, Checkpoint, Error, History, Loss, Noise, Penalty, Result,
    Shuffle, Trainer,
};
use common::{param_bits, params};
use ndarray::{s, Array2, ArrayViewMut2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("data-parallel-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// 97 rows: batches of 16 leave a last batch of 1 row, so with 2 or 3 ranks some rank
/// has no row of it.
fn data<T: autoencoder::Float>() -> Array2<T> {
    Array2::from_shape_fn((97, 12), |(i, j)| {
        T::from(((i * 7 + j * 5) % 13) as f64 / 12.0).unwrap()
    })
}

fn model<T: autoencoder::Float>() -> Result<Autoencoder<T>> {
    Autoencoder::<T>::builder(12)
        .hidden(8, Activation::Relu)
        .latent(4, Activation::Tanh)
        .output(Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(5))
}

/// A loss, an activity penalty (a mean over the batch's rows) and a weight penalty (which
/// must count once, not once per rank).
fn trainer<T: autoencoder::Float>() -> Result<Trainer<Adam<T>>> {
    Ok(Trainer::new(Adam::new(5e-3))
        .loss(Loss::BinaryCrossEntropy)
        .epochs(4)
        .batch_size(16)
        .seed(9)
        .penalty(Penalty::l2_weights(1e-3)?)
        .penalty(Penalty::l1_activity(1e-3)?))
}

/// Runs `f(comm)` on each rank of a local group of `size`, one thread per rank, and
/// returns the ranks' results in rank order.
fn on_ranks<V: Send>(
    size: usize,
    f: impl Fn(Arc<dyn Communicator>) -> Result<V> + Sync,
) -> Vec<Result<V>> {
    let group = Local::group(size).expect("a valid size");
    std::thread::scope(|s| {
        let handles: Vec<_> = group
            .into_iter()
            .map(|c| {
                let f = &f;
                s.spawn(move || f(Arc::new(c)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no rank panics"))
            .collect()
    })
}

/// Trains `model()` with `trainer()` (adjusted by `adjust`) on `size` ranks (`None`: no
/// communicator); returns every rank's weights and history.
fn train_f64(
    size: Option<usize>,
    adjust: impl Fn(Trainer<Adam<f64>>) -> Trainer<Adam<f64>> + Sync,
) -> Vec<(Vec<f64>, History)> {
    let x = data::<f64>();
    let run = |comm: Option<Arc<dyn Communicator>>| -> Result<(Vec<f64>, History)> {
        let mut ae = model::<f64>()?;
        let mut t = adjust(trainer()?);
        if let Some(c) = comm {
            t = t.distributed(c);
        }
        let history = t.fit(&mut ae, x.view(), None)?;
        Ok((params(&ae), history))
    };
    match size {
        None => vec![run(None).expect("trains")],
        Some(n) => on_ranks(n, |c| run(Some(c)))
            .into_iter()
            .collect::<Result<Vec<_>>>()
            .expect("every rank trains"),
    }
}

fn bits(w: &[f64]) -> Vec<u64> {
    w.iter().map(|v| v.to_bits()).collect()
}

/// max |a - b| / max(|a|, |b|, 1e-3) over the weights.
fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(1e-3))
        .fold(0.0, f64::max)
}

#[test]
fn one_rank_is_the_single_process_run_bit_for_bit() {
    let noisy = |t: Trainer<Adam<f64>>| t.noise(Noise::Masking { fraction: 0.2 });
    let alone = train_f64(None, noisy);
    let one = train_f64(Some(1), noisy);
    assert_eq!(bits(&alone[0].0), bits(&one[0].0));
    assert_eq!(alone[0].1.epochs.len(), one[0].1.epochs.len());
}

/// The documented bound: f64 weights of 2 and 3 ranks within 1e-12 (relative, floor 1e-3)
/// of one process's after 4 epochs; losses within 1e-12 relative.
#[test]
fn several_ranks_agree_with_one_to_rounding() {
    for noise in [None, Some(Noise::Masking { fraction: 0.2 })] {
        let adjust = |t: Trainer<Adam<f64>>| match noise {
            Some(n) => t.noise(n),
            None => t,
        };
        let alone = train_f64(None, adjust);
        for size in [2, 3] {
            let ranks = train_f64(Some(size), adjust);
            let diff = max_rel_diff(&alone[0].0, &ranks[0].0);
            println!("{size} ranks, noise {noise:?}: weights within {diff:.1e} of one process");
            assert!(
                diff < 1e-12,
                "{size} ranks, noise {noise:?}: weights differ by {diff:e}"
            );
            assert!(
                diff > 0.0 || size == 1,
                "a test that cannot fail: sums in another order"
            );
            for (a, b) in alone[0].1.epochs.iter().zip(&ranks[0].1.epochs) {
                let rel = (a.train_loss - b.train_loss).abs() / a.train_loss;
                assert!(
                    rel < 1e-12,
                    "{size} ranks: loss {} vs {}",
                    a.train_loss,
                    b.train_loss
                );
            }
        }
    }
}

/// KL sparsity's mean activation is the global batch's: with a mean over each rank's part
/// instead, 2 ranks would differ from one by far more than rounding (the penalty is not
/// linear in the mean). In the last batch of 1 row, the ranks without a row still take
/// part in the exchange of the sums.
#[test]
fn kl_sparsity_uses_the_global_batch() {
    let x = data::<f64>();
    let run = |comm: Option<Arc<dyn Communicator>>| -> Result<(Vec<f64>, History)> {
        let mut ae = Autoencoder::<f64>::builder(12)
            .hidden(8, Activation::Sigmoid)
            .latent(4, Activation::Tanh)
            .output(Activation::Sigmoid)
            .build(&mut ChaCha8Rng::seed_from_u64(5))?;
        let mut t = trainer::<f64>()?.penalty(Penalty::kl_sparsity(0.05, 0.5)?.on_layer(0));
        if let Some(c) = comm {
            t = t.distributed(c);
        }
        let history = t.fit(&mut ae, x.view(), None)?;
        Ok((params(&ae), history))
    };
    let alone = run(None).expect("trains");
    for size in [2, 3] {
        let ranks: Vec<_> = on_ranks(size, |c| run(Some(c)))
            .into_iter()
            .collect::<Result<_>>()
            .expect("every rank trains");
        let diff = max_rel_diff(&alone.0, &ranks[0].0);
        println!("{size} ranks, KL sparsity: weights within {diff:.1e} of one process");
        assert!(diff < 1e-12, "{size} ranks: weights differ by {diff:e}");
        let kl = |h: &History| {
            h.epochs
                .iter()
                .map(|e| e.train_penalties[2])
                .collect::<Vec<_>>()
        };
        for (a, b) in kl(&alone.1).iter().zip(kl(&ranks[0].1)) {
            assert!((a - b).abs() <= 1e-12 * a.abs(), "KL {a} vs {b}");
        }
        for (w, _) in &ranks {
            assert_eq!(bits(w), bits(&ranks[0].0));
        }
    }
}

#[test]
fn ranks_hold_the_same_weights_and_repeat_bit_for_bit() {
    let first = train_f64(Some(3), |t| t);
    let again = train_f64(Some(3), |t| t);
    autoencoder::set_threads(1).expect("1 thread");
    let one_thread = train_f64(Some(3), |t| t);
    autoencoder::set_threads(2).expect("2 threads");
    for run in [&first, &again, &one_thread] {
        for (w, h) in run.iter() {
            assert_eq!(bits(w), bits(&first[0].0));
            let losses = |h: &History| {
                h.epochs
                    .iter()
                    .map(|e| e.train_loss.to_bits())
                    .collect::<Vec<_>>()
            };
            assert_eq!(losses(h), losses(&first[0].1));
        }
    }
}

/// Rows of an array behind the trait's required methods (not in memory to the trainer);
/// reads of rows `fail_from..` fail.
struct Streamed {
    x: Array2<f32>,
    fail_from: Option<usize>,
}

impl RowSource<f32> for Streamed {
    fn n_rows(&self) -> usize {
        self.x.nrows()
    }

    fn width(&self) -> usize {
        self.x.ncols()
    }

    fn read_rows(&self, start: usize, mut out: ArrayViewMut2<'_, f32>) -> Result<()> {
        let end = start + out.nrows();
        if self.fail_from.is_some_and(|f| f < end) {
            return Err(Error::Io {
                action: "cannot read",
                path: PathBuf::from("shard-on-rank-1.npy"),
                source: std::io::Error::other("disk gone"),
            });
        }
        out.assign(&self.x.slice(s![start..end, ..]));
        Ok(())
    }
}

fn trainer_f32() -> Result<Trainer<Adam<f32>>> {
    Ok(trainer::<f32>()?.noise(Noise::SaltAndPepper { fraction: 0.1 }))
}

#[test]
fn a_source_read_piece_by_piece_trains_as_memory_on_two_ranks() {
    let x = data::<f32>();
    let results = on_ranks(2, |c| {
        let mut in_memory = model::<f32>()?;
        trainer_f32()?
            .shuffle(Shuffle::Rows)
            .distributed(c.clone())
            .fit(&mut in_memory, x.view(), None)?;
        let mut streamed = model::<f32>()?;
        let source = Streamed {
            x: x.clone(),
            fail_from: None,
        };
        trainer_f32()?
            .shuffle(Shuffle::Rows)
            .distributed(c)
            .fit(&mut streamed, &source, None)?;
        Ok((param_bits(&in_memory), param_bits(&streamed)))
    });
    for r in results {
        let (memory, streamed) = r.expect("trains");
        assert_eq!(memory, streamed);
    }
}

#[test]
fn a_rank_that_cannot_read_stops_every_rank_with_its_error() {
    let x = data::<f32>();
    let results = on_ranks(3, |c| {
        let mut ae = model::<f32>()?;
        // Rank 1's disk fails in the second epoch; the others read fine.
        let fail_from = (c.rank() == 1).then_some(0);
        let source = Streamed {
            x: x.clone(),
            fail_from,
        };
        let mut t = trainer_f32()?
            .shuffle(Shuffle::Blocks {
                block_rows: 20,
                buffer_blocks: 2,
            })
            .distributed(c);
        t.fit(&mut ae, &source, None).map(|_| ())
    });
    for (rank, r) in results.into_iter().enumerate() {
        match r {
            Err(Error::RankFailed { rank: 1, message }) => {
                assert!(message.contains("disk gone"), "rank {rank}: {message}")
            }
            other => panic!("rank {rank}: expected RankFailed from rank 1, got {other:?}"),
        }
    }
}

#[test]
fn rank_zero_checkpoints_and_a_resumed_run_is_bit_exact() {
    let dir = scratch("resume");
    let x = data::<f32>();
    let uninterrupted = on_ranks(2, |c| {
        let mut ae = model::<f32>()?;
        trainer_f32()?.distributed(c).fit(&mut ae, x.view(), None)?;
        Ok(param_bits(&ae))
    });
    let path = dir.join("run.ckpt");
    let resumed = on_ranks(2, |c| {
        let mut ae = model::<f32>()?;
        trainer_f32()?
            .checkpoint(&path, 1)
            .on_epoch(|r| match r.epoch {
                1 => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            })
            .distributed(c.clone())
            .fit(&mut ae, x.view(), None)?;
        // Every rank reads rank 0's file (shared storage).
        let checkpoint = Checkpoint::<f32>::load(&path)?;
        assert_eq!(checkpoint.epoch(), 2);
        trainer_f32()?
            .distributed(c)
            .resume(&mut ae, checkpoint, x.view(), None)?;
        Ok(param_bits(&ae))
    });
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, ["run.ckpt"], "rank 0 alone writes, atomically");
    for (u, r) in uninterrupted.into_iter().zip(resumed) {
        assert_eq!(u.expect("trains"), r.expect("resumes"));
    }
}

/// A checkpoint does not depend on the number of ranks: a run of 2 ranks resumed on 3 (or
/// on one process) ends within rounding of the uninterrupted run.
#[test]
fn a_checkpoint_resumes_on_another_number_of_ranks() {
    let dir = scratch("other-ranks");
    let path = dir.join("run.ckpt");
    let x = data::<f64>();
    let uninterrupted = train_f64(Some(2), |t| t);
    on_ranks(2, |c| {
        let mut ae = model::<f64>()?;
        trainer::<f64>()?
            .checkpoint(&path, 1)
            .on_epoch(|r| match r.epoch {
                1 => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            })
            .distributed(c)
            .fit(&mut ae, x.view(), None)
            .map(|_| ())
    })
    .into_iter()
    .collect::<Result<Vec<_>>>()
    .expect("the first two epochs train");
    for size in [1, 3] {
        let resumed = on_ranks(size, |c| {
            let mut ae = model::<f64>()?;
            let checkpoint = Checkpoint::<f64>::load(&path)?;
            trainer::<f64>()?
                .distributed(c)
                .resume(&mut ae, checkpoint, x.view(), None)?;
            Ok(params(&ae))
        });
        let resumed = resumed
            .into_iter()
            .next()
            .expect("rank 0")
            .expect("resumes");
        let diff = max_rel_diff(&uninterrupted[0].0, &resumed);
        assert!(diff < 1e-12, "resumed on {size} ranks: {diff:e}");
    }
}

#[test]
fn a_checkpoint_rank_zero_cannot_write_stops_every_rank() {
    let dir = scratch("unwritable");
    let path = dir.join("missing-folder").join("run.ckpt");
    let x = data::<f32>();
    let results = on_ranks(2, |c| {
        let mut ae = model::<f32>()?;
        trainer_f32()?
            .checkpoint(&path, 1)
            .distributed(c)
            .fit(&mut ae, x.view(), None)
            .map(|_| ())
    });
    for r in results {
        assert!(matches!(r, Err(Error::RankFailed { rank: 0, .. })), "{r:?}");
    }
}

/// One row's values overflow `f32` when squared: the rank whose part holds it computes an
/// infinite loss, and every rank sees it in the summed loss at the same batch.
#[test]
fn a_divergence_on_one_rank_is_the_same_error_on_every_rank() {
    let mut x = data::<f32>();
    x.row_mut(40).fill(1e30);
    let results = on_ranks(2, |c| {
        let mut ae = model::<f32>()?;
        Trainer::new(Adam::new(1e-3))
            .epochs(3)
            .batch_size(16)
            .distributed(c)
            .fit(&mut ae, x.view(), None)
            .map(|_| ())
    });
    let errors: Vec<String> = results.into_iter().map(|r| format!("{r:?}")).collect();
    assert!(errors[0].contains("Diverged"), "{}", errors[0]);
    assert_eq!(errors[0], errors[1]);
}

/// A variational model: every rank draws the `eps` of the rows before and after its part
/// (and discards them), so its `eps` are one process's: 2 and 3 ranks agree with one to
/// rounding, though `eps` is random. (Drawing only its own rows, a rank would train on
/// other `eps` and its generator would leave the others'.)
#[test]
fn a_variational_model_samples_as_one_process() {
    let x = data::<f64>();
    let run = |comm: Option<Arc<dyn Communicator>>| -> Result<Vec<f64>> {
        let mut vae = Autoencoder::<f64>::builder(12)
            .hidden(8, Activation::Relu)
            .gaussian_latent(3)
            .output(Activation::Sigmoid)
            .build(&mut ChaCha8Rng::seed_from_u64(1))?;
        let mut t = Trainer::new(Adam::new(5e-3))
            .loss(Loss::BinaryCrossEntropySum)
            .penalty(Penalty::gaussian_kl(1.0)?)
            .epochs(3)
            .batch_size(16)
            .seed(4);
        if let Some(c) = comm {
            t = t.distributed(c);
        }
        t.fit(&mut vae, x.view(), None)?;
        Ok(params(&vae))
    };
    let alone = run(None).expect("trains");
    for size in [2, 3] {
        let ranks: Vec<_> = on_ranks(size, |c| run(Some(c)))
            .into_iter()
            .collect::<Result<_>>()
            .expect("every rank trains");
        let diff = max_rel_diff(&alone, &ranks[0]);
        println!("{size} ranks, variational: weights within {diff:.1e} of one process");
        assert!(diff < 1e-12, "{size} ranks: weights differ by {diff:e}");
        assert!(ranks.iter().all(|w| bits(w) == bits(&ranks[0])));
    }
}

#[test]
fn a_single_step_is_refused_on_several_ranks() {
    let x = data::<f64>();
    let results = on_ranks(2, |c| {
        let mut ae = model::<f64>()?;
        Ok(trainer::<f64>()?
            .distributed(c)
            .step(&mut ae, x.view(), x.view()))
    });
    for r in results {
        let refused = r.expect("the refusal is returned");
        assert!(
            matches!(refused, Err(Error::InvalidConfig(_))),
            "{refused:?}"
        );
    }
}
