//! The `cyclegan` program: parse, dispatch, and report any error on one line.

use std::process::ExitCode;

use clap::Parser;
use cyclegan::cli::{Cli, one_line, run};

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}
