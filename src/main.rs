//! The `cyclegan` program: parse, dispatch, and report any error on one line.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use std::sync::atomic::Ordering;

use cyclegan::cli::{Cli, Interrupted, STOP, one_line, one_line_usage_error, run};

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
    if let Some(doing) = cli.command.stops_on_ctrl_c() {
        let installed = ctrlc::set_handler(move || {
            if STOP.swap(true, Ordering::SeqCst) {
                // A second Ctrl-C: stop now, whatever the state.
                std::process::exit(130);
            }
            eprintln!("\ninterrupted: {doing} (Ctrl-C again to quit at once)");
        });
        if let Err(e) = installed {
            eprintln!("error: installing the Ctrl-C handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    match run(cli, &matches) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is::<Interrupted>() => ExitCode::from(130),
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}
