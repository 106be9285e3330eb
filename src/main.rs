//! The `cyclegan` program: parse, dispatch, and report any error on one line.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use cyclegan::cli::{Cli, one_line, one_line_usage_error, run};

fn main() -> ExitCode {
    let parsed = Cli::command().try_get_matches().and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e) if e.use_stderr() => {
            eprintln!("{}", one_line_usage_error(&e));
            return ExitCode::from(2);
        }
        Err(e) => e.exit(), // --help, --version
    };
    match run(cli, &matches) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}
