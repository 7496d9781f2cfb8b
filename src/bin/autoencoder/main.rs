//! `autoencoder`: train, encode, score and inspect autoencoders from data files, for people
//! who do not write Rust. Built with the `cli` feature:
//!
//! ```text
//! cargo install --path . --features cli
//! autoencoder train data.csv --label-column label -o data.model
//! autoencoder score data.model new.csv -o scores.csv --contamination 0.01
//! autoencoder --help
//! ```
//!
//! Exit status: 0 on success, 1 for a runtime error, 2 for a usage error; every error is
//! one line on standard error. Outputs are written atomically.

mod apply;
mod args;
mod files;
mod inspect;
mod model_file;
#[cfg(feature = "viz")]
mod pictures;
mod score;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Train autoencoders on your data files and use them: encode, decode, reconstruct, score
/// anomalies, evaluate and inspect.
#[derive(Debug, Parser)]
#[command(
    name = "autoencoder",
    version,
    after_help = "Data files: .npy (float32/float64), .csv (header detected; --label-column \
                  to leave a column out), IDX images (MNIST's format, gzipped or not).\n\
                  Run `autoencoder <COMMAND> --help` for each command's flags and examples.",
    // A repeated flag takes its last value; `--lr -1` is a (refused) value, not a flag.
    args_override_self = true,
    allow_negative_numbers = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Train(Box<train::Train>),
    /// Write the codes of a data file's rows
    #[command(after_help = "Examples:\n  \
        autoencoder encode digits.model digits.csv --label-column label -o codes.csv\n  \
        autoencoder encode mnist.model t10k-images-idx3-ubyte.gz -o codes.npy")]
    Encode(apply::Files),
    /// Write the decoder's outputs for a file of codes
    #[command(after_help = "Examples:\n  \
        autoencoder decode digits.model codes.csv -o decoded.csv")]
    Decode(apply::Files),
    /// Write the reconstructions of a data file's rows, in the data's units
    #[command(after_help = "Examples:\n  \
        autoencoder reconstruct sensors.model today.npy -o today-reconstructed.npy")]
    Reconstruct(apply::Files),
    Score(score::Score),
    Evaluate(score::Evaluate),
    Inspect(inspect::Inspect),
    #[cfg(feature = "viz")]
    Pictures(pictures::Pictures),
}

fn run(cli: &Cli) -> autoencoder::Result<()> {
    match &cli.command {
        Command::Train(t) => train::run(t),
        Command::Encode(f) => apply::run(apply::Apply::Encode, f),
        Command::Decode(f) => apply::run(apply::Apply::Decode, f),
        Command::Reconstruct(f) => apply::run(apply::Apply::Reconstruct, f),
        Command::Score(s) => score::run(s),
        Command::Evaluate(e) => score::run_evaluate(e),
        Command::Inspect(i) => inspect::run(i),
        #[cfg(feature = "viz")]
        Command::Pictures(p) => pictures::run(p),
    }
}

fn main() -> ExitCode {
    // The library returns errors rather than panicking; should a panic happen anyway, it is
    // reported on one line like any other error, without a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!(
            "error: internal error (a bug, please report it): {}",
            args::flatten(&info.to_string())
        );
    }));
    args::main_with(run)
}

#[cfg(test)]
#[allow(dead_code)] // the examples' test support; the tool uses its README part
#[path = "../../../examples/support/cli.rs"]
mod support;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_flag_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    /// Every `autoencoder ...` command line in the README parses (with its placeholders
    /// as written: they are real file names there).
    #[test]
    fn every_command_line_in_the_readme_parses() {
        let commands = support::readme::tool_commands();
        assert!(commands.len() >= 4, "found {commands:?}");
        let refused: Vec<String> = commands
            .iter()
            // `pictures` exists with the `viz` feature only.
            .filter(|m| cfg!(feature = "viz") || m.args.first().is_none_or(|a| a != "pictures"))
            .filter_map(|m| {
                let args = std::iter::once("autoencoder").chain(m.args.iter().map(String::as_str));
                match Cli::try_parse_from(args) {
                    Ok(_) => None,
                    Err(e) if !e.use_stderr() => None, // --help
                    Err(e) => Some(format!(
                        "README.md:{} {:?}: {}",
                        m.line,
                        m.args,
                        args::one_line(&e)
                    )),
                }
            })
            .collect();
        assert!(refused.is_empty(), "{}", refused.join("\n"));
    }
}
