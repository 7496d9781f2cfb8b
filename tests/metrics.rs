//! Metrics on plain arrays against hand-computed cases and brute-force definitions.

use autoencoder::metrics::{self, Confusion};
use autoencoder::{Error, Result};
use ndarray::{array, Array1};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// ROC-AUC by its definition: over all (positive, negative) pairs, 1 if the positive scores
/// higher, 1/2 on a tie.
fn auc_by_pairs(scores: &[f64], labels: &[bool]) -> f64 {
    let (mut wins, mut pairs) = (0.0, 0.0);
    for (_, &si) in scores.iter().enumerate().filter(|&(i, _)| labels[i]) {
        for (_, &sj) in scores.iter().enumerate().filter(|&(j, _)| !labels[j]) {
            pairs += 1.0;
            wins += if si > sj {
                1.0
            } else if si == sj {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / pairs
}

#[test]
fn roc_auc_on_hand_computed_cases() -> Result<()> {
    // scikit-learn's documented example: 3 of the 4 (positive, negative) pairs ordered.
    let s = array![0.1, 0.4, 0.35, 0.8];
    let y = array![false, false, true, true];
    assert_eq!(metrics::roc_auc(s.view(), y.view())?, 0.75);
    // Perfect, reversed, all tied.
    assert_eq!(
        metrics::roc_auc(array![1.0, 2.0].view(), array![false, true].view())?,
        1.0
    );
    assert_eq!(
        metrics::roc_auc(array![2.0, 1.0].view(), array![false, true].view())?,
        0.0
    );
    assert_eq!(
        metrics::roc_auc(
            array![3.0, 3.0, 3.0].view(),
            array![false, true, true].view()
        )?,
        0.5
    );
    // One tie between classes: pairs (p=2 vs n=1: win), (p=2 vs n=2: tie) -> 1.5 / 2.
    assert_eq!(
        metrics::roc_auc(
            array![1.0, 2.0, 2.0].view(),
            array![false, false, true].view()
        )?,
        0.75
    );
    Ok(())
}

#[test]
fn roc_auc_equals_the_pair_count_on_random_scores_with_ties() -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for trial in 0..50 {
        let n = rng.random_range(2..60);
        // Few distinct values, so that ties are common.
        let scores: Vec<f64> = (0..n)
            .map(|_| f64::from(rng.random_range(0..8u8)) * 0.5)
            .collect();
        let mut labels: Vec<bool> = (0..n).map(|_| rng.random_bool(0.4)).collect();
        labels[0] = true;
        labels[1] = false;
        let auc = metrics::roc_auc(
            Array1::from(scores.clone()).view(),
            Array1::from(labels.clone()).view(),
        )?;
        let expected = auc_by_pairs(&scores, &labels);
        assert!(
            (auc - expected).abs() < 1e-12,
            "trial {trial}: {auc} vs {expected}"
        );
    }
    Ok(())
}

#[test]
fn average_precision_on_hand_computed_cases() -> Result<()> {
    // Thresholds 0.8, 0.4, 0.35, 0.1: (recall, precision) = (1/2, 1), (1/2, 1/2), (1, 2/3),
    // (1, 1/2); AP = 1/2 * 1 + 0 + 1/2 * 2/3 = 5/6 (scikit-learn: 0.8333).
    let s = array![0.1, 0.4, 0.35, 0.8];
    let y = array![false, false, true, true];
    let ap = metrics::average_precision(s.view(), y.view())?;
    assert!((ap - 5.0 / 6.0).abs() < 1e-15, "{ap}");
    // Perfect ranking: 1. Tied scores form one threshold: all 4 flagged at once, precision
    // 2/4 at recall 1.
    assert_eq!(
        metrics::average_precision(
            array![0.0, 1.0, 2.0].view(),
            array![false, true, true].view()
        )?,
        1.0
    );
    assert_eq!(
        metrics::average_precision(
            array![1.0, 1.0, 1.0, 1.0].view(),
            array![false, true, true, false].view()
        )?,
        0.5
    );
    // Worst ranking of 1 positive among 4: flagged last, precision 1/4.
    assert_eq!(
        metrics::average_precision(
            array![4.0, 3.0, 2.0, 1.0].view(),
            array![false, false, false, true].view()
        )?,
        0.25
    );
    Ok(())
}

#[test]
fn confusion_quantile_and_contamination_thresholds() -> Result<()> {
    let s = array![0.1, 0.4, 0.35, 0.8];
    let y = array![false, false, true, true];
    let c = metrics::confusion(s.view(), y.view(), 0.35)?; // flags 0.4 and 0.8 (strictly above)
    assert_eq!(
        c,
        Confusion {
            true_positives: 1,
            false_positives: 1,
            true_negatives: 1,
            false_negatives: 1
        }
    );
    assert_eq!(
        (c.precision(), c.recall(), c.f1()),
        (Some(0.5), Some(0.5), Some(0.5))
    );
    assert_eq!(c.false_positive_rate(), Some(0.5));
    let none = metrics::confusion(s.view(), y.view(), 1.0)?;
    assert_eq!((none.precision(), none.recall()), (None, Some(0.0)));
    // Quantiles interpolate as NumPy's default: np.quantile([1, 2, 3, 4, 10], q).
    let v = array![10.0, 1.0, 3.0, 2.0, 4.0];
    for (q, expected) in [
        (0.0, 1.0),
        (0.25, 2.0),
        (0.5, 3.0),
        (0.9, 7.6),
        (1.0, 10.0),
        (0.1, 1.4),
    ] {
        let got = metrics::quantile(v.view(), q)?;
        assert!((got - expected).abs() < 1e-12, "q {q}: {got} vs {expected}");
    }
    assert_eq!(metrics::quantile(array![5.0].view(), 0.3)?, 5.0);
    // A contamination of 10% on 1..=200 flags exactly 20 of them.
    let scores = Array1::from_iter((1..=200).map(f64::from));
    for (fraction, flagged) in [(0.1, 20), (0.0, 0), (0.5, 100), (1.0, 199)] {
        let t = metrics::contamination_threshold(scores.view(), fraction)?;
        assert_eq!(
            scores.iter().filter(|&&x| x > t).count(),
            flagged,
            "fraction {fraction}"
        );
    }
    Ok(())
}

#[test]
fn reconstruction_metrics_by_hand() -> Result<()> {
    let x = array![[0.0f32, 1.0], [0.5, 0.5]];
    let r = array![[0.5f32, 1.0], [0.5, 0.25]];
    // Row 0: (0.25 + 0) / 2; row 1: (0 + 0.0625) / 2.
    assert_eq!(
        metrics::mse_per_sample(x.view(), r.view())?,
        array![0.125, 0.03125]
    );
    assert_eq!(metrics::mse(x.view(), r.view())?, 0.078125);
    let db = metrics::psnr(x.view(), r.view(), 1.0)?;
    assert!((db - 10.0 * (1.0 / 0.078125f64).log10()).abs() < 1e-12);
    assert_eq!(metrics::psnr(x.view(), x.view(), 1.0)?, f64::INFINITY);
    // BCE of p = 0.5 is ln 2 whatever the target; row 1 of p = (1, 0) against (1, 0) is ~0.
    let t = array![[1.0f64, 0.0], [1.0, 0.0]];
    let p = array![[0.5, 0.5], [1.0, 0.0]];
    let per = metrics::bce_per_sample(t.view(), p.view())?;
    assert!((per[0] - std::f64::consts::LN_2).abs() < 1e-15);
    assert!(per[1] > 0.0 && per[1] < 1e-6, "{}", per[1]); // clipped at 1e-7
    Ok(())
}

#[test]
fn bad_inputs_are_typed_errors() {
    let s = array![0.1, 0.2];
    let y = array![true, false];
    assert!(matches!(
        metrics::roc_auc(s.view(), array![true].view()),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        metrics::roc_auc(array![].view(), array![].view()),
        Err(Error::EmptyData { .. })
    ));
    assert!(matches!(
        metrics::roc_auc(array![0.1, f64::NAN].view(), y.view()),
        Err(Error::NonFiniteData { row: 1, .. })
    ));
    assert!(matches!(
        metrics::roc_auc(s.view(), array![true, true].view()),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        metrics::average_precision(s.view(), array![false, false].view()),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        metrics::confusion(s.view(), y.view(), f64::NAN),
        Err(Error::InvalidHyperparameter { .. })
    ));
    for q in [-0.1, 1.1, f64::NAN] {
        assert!(
            matches!(
                metrics::quantile(s.view(), q),
                Err(Error::InvalidHyperparameter { .. })
            ),
            "{q}"
        );
        assert!(
            matches!(
                metrics::contamination_threshold(s.view(), q),
                Err(Error::InvalidHyperparameter { .. })
            ),
            "{q}"
        );
    }
    let x = array![[0.0, 1.0]];
    assert!(matches!(
        metrics::mse(x.view(), array![[0.0]].view()),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        metrics::psnr(x.view(), x.view(), 0.0),
        Err(Error::InvalidHyperparameter { .. })
    ));
    assert!(matches!(
        metrics::bce(array![[2.0]].view(), array![[0.5]].view()),
        Err(Error::InvalidConfig(_))
    ));
}
