//! Optimizers and schedules against steps computed by hand (derivations beside the numbers).

use autoencoder::{Adam, Optimizer, ParamKind, Result, Schedule, Sgd, WeightDecay};

/// Runs `grads` through `opt` on a one-element tensor starting at 1.0, returning p after each step.
fn run<O: Optimizer<f64>>(opt: &mut O, kind: ParamKind, grads: &[f64], lr: f64) -> Vec<f64> {
    let mut p = [1.0];
    grads
        .iter()
        .map(|&g| {
            opt.begin_step();
            opt.update(0, &mut p, &[g], kind, lr);
            p[0]
        })
        .collect()
}

#[test]
fn adam_two_steps_match_the_formula_with_bias_correction() -> Result<()> {
    // lr 0.1, betas (0.9, 0.999), eps 1e-8, p0 = 1, g = 0.5 then -0.25.
    // t=1: m = 0.1*0.5 = 0.05, v = 0.001*0.25 = 0.00025;
    //      m^ = 0.05/0.1 = 0.5, v^ = 0.00025/0.001 = 0.25, p = 1 - 0.1*0.5/(0.5 + 1e-8) = 0.900000002
    // t=2: m = 0.9*0.05 + 0.1*(-0.25) = 0.02, v = 0.999*0.00025 + 0.001*0.0625 = 0.00031225;
    //      m^ = 0.02/0.19, v^ = 0.00031225/0.001999, p = 0.900000002 - 0.1 m^/(sqrt(v^) + 1e-8)
    //      = 0.8733662987078463
    let mut adam = Adam::<f64>::new(0.1);
    adam.validate()?;
    let p = run(&mut adam, ParamKind::Weight, &[0.5, -0.25], 0.1);
    approx::assert_abs_diff_eq!(p[0], 0.900000002, epsilon = 1e-15);
    approx::assert_abs_diff_eq!(p[1], 0.8733662987078463, epsilon = 1e-15);
    assert_eq!(adam.steps(), 2);
    Ok(())
}

#[test]
fn adamw_decays_weights_but_not_biases() -> Result<()> {
    // Decoupled decay 0.5 at lr 0.1: p <- p (1 - 0.05) before each Adam update.
    // t=1: 0.95 - 0.099999998 = 0.850000002; t=2: 0.850000002*0.95 - 0.026633703... = 0.7808662986078463
    let mut adamw = Adam::<f64>::adamw(0.1, 0.5);
    let w = run(&mut adamw, ParamKind::Weight, &[0.5, -0.25], 0.1);
    approx::assert_abs_diff_eq!(w[1], 0.7808662986078463, epsilon = 1e-15);
    let mut adamw = Adam::<f64>::new(0.1).weight_decay(WeightDecay::Decoupled(0.5));
    let b = run(&mut adamw, ParamKind::Bias, &[0.5, -0.25], 0.1);
    approx::assert_abs_diff_eq!(b[1], 0.8733662987078463, epsilon = 1e-15); // as plain Adam
    Ok(())
}

#[test]
fn sgd_momentum_and_nesterov_match_hand_computed_steps() -> Result<()> {
    // mu 0.9, lr 0.1, g = 0.5 then -0.25.
    // Momentum: v1 = 0.5, p1 = 1 - 0.05 = 0.95; v2 = 0.45 - 0.25 = 0.2, p2 = 0.95 - 0.02 = 0.93.
    let mut sgd = Sgd::<f64>::new(0.1).momentum(0.9);
    sgd.validate()?;
    let p = run(&mut sgd, ParamKind::Weight, &[0.5, -0.25], 0.1);
    approx::assert_abs_diff_eq!(p[0], 0.95, epsilon = 1e-15);
    approx::assert_abs_diff_eq!(p[1], 0.93, epsilon = 1e-15);
    // Nesterov: p1 = 1 - 0.1 (0.5 + 0.9*0.5) = 0.905; v2 = 0.2, p2 = 0.905 - 0.1 (-0.25 + 0.18) = 0.912.
    let mut nesterov = Sgd::<f64>::new(0.1).momentum(0.9).nesterov(true);
    let p = run(&mut nesterov, ParamKind::Weight, &[0.5, -0.25], 0.1);
    approx::assert_abs_diff_eq!(p[0], 0.905, epsilon = 1e-15);
    approx::assert_abs_diff_eq!(p[1], 0.912, epsilon = 1e-15);
    // Plain: p = 1 - 0.1*0.5 + 0.1*0.25 = 0.975.
    let mut plain = Sgd::<f64>::new(0.1);
    approx::assert_abs_diff_eq!(
        run(&mut plain, ParamKind::Weight, &[0.5, -0.25], 0.1)[1],
        0.975,
        epsilon = 1e-15
    );
    Ok(())
}

#[test]
fn reset_forgets_optimizer_state() {
    let mut adam = Adam::<f64>::new(0.1);
    let first = run(&mut adam, ParamKind::Weight, &[0.5], 0.1);
    adam.reset();
    assert_eq!(adam.steps(), 0);
    assert_eq!(run(&mut adam, ParamKind::Weight, &[0.5], 0.1), first);
}

#[test]
fn schedules_give_the_documented_rates() -> Result<()> {
    let lr = 0.1;
    assert_eq!(Schedule::Constant.lr_at(lr, 7, 10), 0.1);
    // Step: every 3 epochs halve: epochs 0-2 0.1, 3-5 0.05, 6-8 0.025.
    let step = Schedule::Step {
        every: 3,
        gamma: 0.5,
    };
    let rates: Vec<f64> = (0..9).map(|e| step.lr_at(lr, e, 9)).collect();
    assert_eq!(
        rates,
        vec![0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025]
    );
    // Exponential: 0.1 * 0.9^2 = 0.081.
    approx::assert_abs_diff_eq!(
        Schedule::Exponential { gamma: 0.9 }.lr_at(lr, 2, 10),
        0.081,
        epsilon = 1e-15
    );
    // Cosine from 0.1 to 0.01 over 10 epochs: start 0.1, middle (e=5) 0.055, approaching 0.01.
    let cosine = Schedule::Cosine { min_lr: 0.01 };
    approx::assert_abs_diff_eq!(cosine.lr_at(lr, 0, 10), 0.1, epsilon = 1e-15);
    approx::assert_abs_diff_eq!(cosine.lr_at(lr, 5, 10), 0.055, epsilon = 1e-15);
    assert!(cosine.lr_at(lr, 9, 10) < 0.013);
    for s in [step, cosine, Schedule::Exponential { gamma: 0.9 }] {
        s.validate(lr)?;
    }
    Ok(())
}
