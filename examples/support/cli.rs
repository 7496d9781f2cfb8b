//! Command-line plumbing shared by the examples (included with `#[path]`; not an example
//! itself): the `main` that parses the flags with clap and turns the outcome into an exit
//! code, and, for the examples' tests, a parser helper.
//!
//! Each example declares its flags once, as a `#[derive(clap::Parser)]` struct: the same
//! definitions parse the command line and write `--help`, so the two cannot drift apart.

use std::process::ExitCode;

use clap::Parser;

/// Parses the command line into `C`, then calls `run`.
///
/// | outcome                         | output                               | exit code |
/// | ------------------------------- | ------------------------------------ | --------- |
/// | `-h` / `--help`                 | the usage, on standard output        | 0         |
/// | a good run                      | the example's own                    | 0         |
/// | an unknown flag or a bad value  | one line on standard error           | 2         |
/// | a failed run                    | the crate's error, on standard error | 1         |
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
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// The first line of clap's message (`error: invalid value 'x' for '--lr <X>': ...`), which
/// says what was wrong, with the values a flag takes if clap knows them, but without the
/// usage and tips clap appends on further lines.
pub fn one_line(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("error: bad command line");
    match e.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(values)) => format!(
            "{first}: possible values {} (--help lists the flags)",
            values.join(", ")
        ),
        _ => format!("{first} (--help lists the flags)"),
    }
}

/// The value parser of `--out DIR` for `example`: the folder, or, without the `viz`
/// feature, an error saying how to build with it.
#[allow(dead_code)] // mnist_deep and throughput write no pictures
pub fn out_dir(
    example: &'static str,
) -> impl Fn(&str) -> Result<std::path::PathBuf, String> + Clone + Send + Sync + 'static {
    move |dir| {
        if cfg!(feature = "viz") {
            Ok(dir.into())
        } else {
            Err(format!(
                "--out needs the `viz` feature: cargo run --release --features viz \
                 --example {example} -- --out DIR"
            ))
        }
    }
}

/// Parses `line`, split at spaces, as the example's flags (for the tests).
#[cfg(test)]
pub fn parse<C: Parser>(line: &str) -> Result<C, clap::Error> {
    C::try_parse_from(std::iter::once("example").chain(line.split_whitespace()))
}
