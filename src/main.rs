//! The `cyclegan` program: parse, dispatch, and report any error on one line.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use cyclegan::cli::{Cli, one_line, run};

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match run(cli, &matches) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}
