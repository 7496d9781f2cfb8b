//! Command-line plumbing shared by the MNIST examples (included with `#[path]`; not an
//! example itself): number parsing and the `main` that prints usage and errors.

/// Parses `s` as a number for `flag`, with a message naming both.
pub fn parse_num<N: std::str::FromStr>(flag: &str, s: &str) -> Result<N, String> {
    s.parse()
        .map_err(|_| format!("{flag}: `{s}` is not a valid number"))
}

/// Parses the command line with `parse` (`Ok(None)` = `--help`: print `usage`), then calls
/// `run`. Exit codes: 2 for bad flags, 1 for a failed run.
pub fn main_with<C>(
    usage: &str,
    parse: impl FnOnce(Vec<String>) -> Result<Option<C>, String>,
    run: impl FnOnce(&C) -> autoencoder::Result<()>,
) {
    let config = match parse(std::env::args().skip(1).collect()) {
        Ok(Some(c)) => c,
        Ok(None) => {
            print!("{usage}");
            return;
        }
        Err(e) => {
            eprintln!("error: {e}\n(run with --help for the flags)");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&config) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Walks the flags (`--flag value` or `--flag=value`), calling `apply(config, flag, value)`
/// for each; `value()` takes the flag's value. `apply` returns `Ok(false)` for `--help`,
/// which makes this return `Ok(None)`.
pub fn parse_flags<C>(
    args: impl IntoIterator<Item = String>,
    mut config: C,
    mut apply: impl FnMut(
        &mut C,
        &str,
        &mut dyn FnMut() -> Result<String, String>,
    ) -> Result<bool, String>,
) -> Result<Option<C>, String> {
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        if !apply(&mut config, &flag, &mut value)? {
            return Ok(None);
        }
    }
    Ok(Some(config))
}

/// A command line split on spaces, as `parse_args` receives it (for the flag tests).
#[cfg(test)]
pub fn args(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}
