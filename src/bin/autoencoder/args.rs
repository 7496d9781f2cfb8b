//! The command line's shared parts, for the `autoencoder` tool and the examples (which
//! include this file with `#[path]`): the flags that describe a model and its training,
//! the value parsers, and the `main` that turns a parse and a run into an exit code.
//!
//! Values use the crate's text forms (`autoencoder::spec`), so `--activation leaky-relu:0.2`
//! or `--penalty kl:0.05:3` mean the same in the tool, the examples and a user's program.
#![allow(dead_code)] // each includer uses its own part

use std::process::ExitCode;
use std::str::FromStr;

use autoencoder::{Activation, Adam, Init, Optimizer, Sgd};
use clap::{Args, Parser, ValueEnum};

/// Parses the command line into `C`, then calls `run`.
///
/// | outcome                         | output                               | exit code |
/// | ------------------------------- | ------------------------------------ | --------- |
/// | `-h` / `--help`, `--version`    | on standard output                   | 0         |
/// | a good run                      | the program's own                    | 0         |
/// | an unknown flag or a bad value  | one line on standard error           | 2         |
/// | a failed run                    | the crate's error, one line, on standard error | 1 |
pub fn main_with<C: Parser>(run: impl FnOnce(&C) -> autoencoder::Result<()>) -> ExitCode {
    let config = match C::try_parse() {
        Ok(c) => c,
        // `--help` arrives as an "error" that is not one: print it, succeed.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    match run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", flatten(&e.to_string()));
            ExitCode::from(1)
        }
    }
}

/// A message on one line: the lines of a multi-line message joined with `; `.
pub fn flatten(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join("; ")
}

/// The first line of clap's message (`error: invalid value 'x' for '--lr <X>': ...`), which
/// says what was wrong, with the values a flag takes if clap knows them, but without the
/// usage and tips clap appends on further lines.
pub fn one_line(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let text = e.to_string();
    let mut first = text
        .lines()
        .next()
        .unwrap_or("error: bad command line")
        .to_string();
    // "the following required arguments were not provided:" names them on the next lines.
    if first.ends_with(':') {
        if let Some(ContextValue::Strings(missing)) = e.get(ContextKind::InvalidArg) {
            first = format!("{first} {}", missing.join(", "));
        }
    }
    match e.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(values)) => format!(
            "{first}: possible values {} (--help lists the flags)",
            values.join(", ")
        ),
        _ => format!("{first} (--help lists the flags)"),
    }
}

/// A value in the crate's text forms (`autoencoder::spec`: activations, losses, noise,
/// penalties, initializers); the crate's message becomes clap's.
pub fn spec<T: FromStr<Err = autoencoder::Error>>(s: &str) -> Result<T, String> {
    s.parse().map_err(|e: autoencoder::Error| e.to_string())
}

/// `--hidden`: comma-separated widths, or `none` (or nothing) for no hidden layer.
pub fn widths(s: &str) -> Result<Vec<usize>, String> {
    if s == "none" || s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|w| {
            w.trim()
                .parse()
                .map_err(|_| format!("width `{w}` is not a whole number"))
        })
        .collect()
}

/// `--init`: `default` (each layer's activation's own), or one of the crate's initializers.
pub fn init(s: &str) -> Result<Option<Init>, String> {
    match s {
        "default" => Ok(None),
        _ => spec(s).map(Some),
    }
}

/// The optimizers the command line offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptimizerKind {
    /// Adam, eps 1e-7 (as Keras)
    Adam,
    /// Plain stochastic gradient descent
    Sgd,
    /// SGD with momentum 0.9
    Momentum,
}

impl OptimizerKind {
    /// The learning rate when none is given: 1e-3 for Adam, 0.1 for SGD.
    pub fn default_lr(self) -> f64 {
        match self {
            OptimizerKind::Adam => 1e-3,
            OptimizerKind::Sgd | OptimizerKind::Momentum => 0.1,
        }
    }
}

/// Calls `with` with the optimizer `kind` at learning rate `lr`, in element type `T`.
pub fn with_optimizer<T: autoencoder::Float, R>(
    kind: OptimizerKind,
    lr: f64,
    with: impl WithOptimizer<T, Output = R>,
) -> R {
    match kind {
        OptimizerKind::Adam => with.run(Adam::new(lr).eps(1e-7)),
        OptimizerKind::Sgd => with.run(Sgd::new(lr)),
        OptimizerKind::Momentum => with.run(Sgd::new(lr).momentum(0.9)),
    }
}

/// Work that needs the optimizer's type: the trainer is generic over it.
pub trait WithOptimizer<T: autoencoder::Float> {
    /// What the work returns.
    type Output;
    /// Does the work with `optimizer`.
    fn run<O: Optimizer<T> + 'static>(self, optimizer: O) -> Self::Output;
}

/// The flags that describe a dense autoencoder's layers.
#[derive(Debug, Clone, Args)]
pub struct ArchitectureArgs {
    /// Encoder hidden widths, comma-separated, or `none` (the decoder mirrors them)
    // `::std::vec::Vec`: one value holding the whole list (clap reads a plain `Vec` as a
    // repeatable flag).
    #[arg(long, value_name = "LIST", default_value = "128,64", value_parser = widths,
          help_heading = "Architecture")]
    pub hidden: ::std::vec::Vec<usize>,
    /// Code width
    #[arg(
        long,
        value_name = "N",
        default_value_t = 32,
        help_heading = "Architecture"
    )]
    pub latent: usize,
    /// Hidden-layer activation (and the code's unless --code-activation)
    #[arg(long, value_name = "S", default_value = "relu", value_parser = spec::<Activation>,
          help_heading = "Architecture")]
    pub activation: Activation,
    /// Code activation [default: --activation]
    #[arg(long, value_name = "S", value_parser = spec::<Activation>, help_heading = "Architecture")]
    pub code_activation: Option<Activation>,
    /// default (He for ReLU-like, else Glorot), glorot, he, glorot-normal, he-normal
    // `::std::option::Option`: "default" is a value that parses to `None`.
    #[arg(long, value_name = "I", default_value = "default", value_parser = init,
          help_heading = "Architecture")]
    pub init: ::std::option::Option<Init>,
}

/// The activation forms, for `after_help` texts.
pub const ACTIVATION_FORMS: &str = "Activations (S): relu, sigmoid, tanh, identity, softplus, \
                                    gelu, leaky-relu[:ALPHA], elu[:ALPHA].";
