//! Progress output when not on a terminal: plain lines, three per epoch at 25/50/75 % of
//! the batches and one at its end. Needs no feature.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use autoencoder::{Activation, Adam, Autoencoder, Progress, ProgressOutput, Result, Trainer};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A writer whose bytes the test can read afterwards.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("UTF-8 output")
    }
}

/// The number after `key` in `line`, e.g. `value(line, "loss ")`.
fn value(line: &str, key: &str) -> f64 {
    let start = line
        .find(key)
        .unwrap_or_else(|| panic!("no {key:?} in {line:?}"))
        + key.len();
    line[start..]
        .split(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number after {key:?} in {line:?}"))
}

#[test]
fn plain_lines_report_batches_and_epochs() -> Result<()> {
    let x = common::structured(256, 12, 2, 0.05, 1);
    let mut ae = Autoencoder::<f64>::builder(12)
        .latent(3, Activation::Tanh)
        .output(Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(2))?;
    let out = Captured::default();
    let epochs = 3;
    let trainer = Trainer::new(Adam::new(1e-2)).epochs(epochs).batch_size(32); // 8 batches
    let mut trainer = Progress::to_writer(epochs, out.clone()).install(trainer);
    let history = trainer.fit(&mut ae, x.view(), Some(x.view()))?;

    let text = out.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), epochs * 4, "output:\n{text}");
    for (e, chunk) in lines.chunks(4).enumerate() {
        for (q, line) in chunk[..3].iter().enumerate() {
            let batch = 2 * (q + 1);
            let head = format!(
                "epoch {}/{epochs}  batch {batch}/8 ({}%)",
                e + 1,
                25 * (q + 1)
            );
            assert!(
                line.starts_with(&head),
                "{line:?} should start with {head:?}"
            );
            assert!(line.contains(" samples/s  loss "), "{line}");
            assert!(line.contains("  eta "), "{line}");
            assert!(value(line, "loss ") > 0.0, "{line}");
        }
        let end = chunk[3];
        assert!(
            end.starts_with(&format!("epoch {}/{epochs}  done in ", e + 1)),
            "{end}"
        );
        let record = &history.epochs[e];
        assert!(
            end.contains(&format!("train {:.6}", record.train_loss)),
            "{end}"
        );
        assert!(
            end.contains(&format!("valid {:.6}", record.valid_loss.unwrap())),
            "{end}"
        );
    }
    Ok(())
}

#[test]
fn a_progress_handle_can_be_fed_by_hand() -> Result<()> {
    // Callers with their own epoch callback forward to `Progress::epoch` themselves.
    let x = common::structured(64, 6, 2, 0.05, 3);
    let mut ae = Autoencoder::<f64>::builder(6)
        .latent(2, Activation::Tanh)
        .build(&mut ChaCha8Rng::seed_from_u64(4))?;
    let out = Captured::default();
    let progress = Progress::to_writer(2, out.clone());
    let seen = Arc::new(Mutex::new(0));
    let (p, s) = (progress.clone(), seen.clone());
    Trainer::new(Adam::new(1e-2))
        .epochs(2)
        .batch_size(64) // one batch per epoch: no 25/50/75 % lines
        .on_epoch(move |r| {
            *s.lock().unwrap() += 1;
            p.epoch(r);
            std::ops::ControlFlow::Continue(())
        })
        .fit(&mut ae, x.view(), None)?;
    assert_eq!(*seen.lock().unwrap(), 2);
    let text = out.text();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.lines()
            .all(|l| l.contains("done in") && !l.contains("valid")),
        "{text}"
    );
    Ok(())
}

#[test]
fn lines_mode_is_explicit_and_debuggable() {
    let p = Progress::with_output(5, ProgressOutput::Lines);
    assert_eq!(format!("{p:?}"), "Progress { epochs: 5, bar: false }");
}
