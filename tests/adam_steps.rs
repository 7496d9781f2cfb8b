//! Adam's step count at its extremes, from a crafted saved state: a count near `u64::MAX`
//! saturates instead of overflowing (a panic in debug builds, a wrap to step 0 in release),
//! and counts past `2^31` keep the bias correction right (`beta^t` through `powi` would take
//! the count as a negative `i32`). Run in debug (`cargo test --test adam_steps`, overflow
//! checks on) and in release.

use autoencoder::{Adam, Optimizer, OptimizerState, ParamKind, Result};

const LR: f64 = 0.1;
const P: [f64; 2] = [1.0, -2.0];
const M: [f64; 2] = [0.1, -0.2];
const V: [f64; 2] = [0.01, 0.04];
const G: [f64; 2] = [0.5, -0.25];

/// An Adam (lr 0.1, betas 0.9 and 0.999, eps 1e-8) whose saved state says `steps` steps
/// were taken, with moments `M` and `V` for one two-element tensor.
fn adam_after(steps: u64) -> Result<Adam<f64>> {
    let mut adam = Adam::<f64>::new(LR);
    adam.load_state(
        OptimizerState::new("adam", steps)
            .with_buffer("m", vec![M.to_vec()])
            .with_buffer("v", vec![V.to_vec()]),
    )?;
    Ok(adam)
}

/// `n` steps with gradient `G` from `P`.
fn steps(adam: &mut Adam<f64>, n: usize) -> Vec<f64> {
    let mut p = P;
    for _ in 0..n {
        adam.begin_step();
        adam.update(0, &mut p, &G, ParamKind::Weight, LR);
    }
    p.to_vec()
}

/// The same `n` steps by hand at step counts where the bias correction has vanished:
/// `beta1^t = 0.9^t` and `beta2^t = 0.999^t` are 0 in f64 for `t >= 2^31`
/// (`0.999^(2^31) = e^(-2.1e6)`), so `m^ = m`, `v^ = v` and
/// `p <- p - lr m / (sqrt(v) + eps)` after `m <- 0.9 m + 0.1 g`, `v <- 0.999 v + 0.001 g^2`.
fn by_hand(n: usize) -> Vec<f64> {
    (0..2)
        .map(|i| {
            let (mut p, mut m, mut v, g) = (P[i], M[i], V[i], G[i]);
            for _ in 0..n {
                m = 0.9 * m + (1.0 - 0.9) * g;
                v = 0.999 * v + (1.0 - 0.999) * g * g;
                p -= LR * m / (v.sqrt() + 1e-8);
            }
            p
        })
        .collect()
}

fn assert_close(found: &[f64], expected: &[f64]) {
    for (f, e) in found.iter().zip(expected) {
        assert!((f - e).abs() <= 1e-14, "{found:?} != {expected:?}");
    }
}

#[test]
fn a_step_count_near_u64_max_saturates() -> Result<()> {
    // The first step reaches u64::MAX, the next two stay there (they used to overflow).
    let mut adam = adam_after(u64::MAX - 1)?;
    let p = steps(&mut adam, 3);
    assert_eq!(adam.steps(), u64::MAX);
    assert_close(&p, &by_hand(3));
    // One step from u64::MAX: m = 0.9*0.1 + 0.1*0.5 = 0.14, v = 0.999*0.01 + 0.001*0.25 =
    // 0.01024, p = 1 - 0.1*0.14/(sqrt(0.01024) + 1e-8) = 0.86165...
    let p = steps(&mut adam_after(u64::MAX)?, 1);
    assert_close(&p[..1], &[1.0 - 0.1 * 0.14 / (0.01024f64.sqrt() + 1e-8)]);
    Ok(())
}

#[test]
fn step_counts_past_2_pow_31_keep_the_bias_correction() -> Result<()> {
    for start in [
        (1u64 << 31) - 2, // crosses from powi to powf
        (1 << 31) + 5,
        (1 << 32) - 1, // `as i32` took this as -1: beta^-1 > 1, a step the wrong way
        1 << 40,
        1 << 53,
        u64::MAX / 2,
    ] {
        let mut adam = adam_after(start)?;
        let p = steps(&mut adam, 3);
        assert_eq!(adam.steps(), start + 3);
        assert_close(&p, &by_hand(3));
    }
    Ok(())
}
