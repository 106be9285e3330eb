//! The `cyclegan` program: parse, dispatch, and report any error on one line.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use std::sync::atomic::Ordering;

use cyclegan::cli::{Cli, Interrupted, STOP, one_line, one_line_usage_error, run};

/// Linux's default main-thread stack.
const MAIN_STACK: usize = 8 << 20;

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
    let batch = cli.command.runs_on_a_worker();
    if batch {
        keep_freed_memory();
    }
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
    // The command runs on one of rayon's workers: a parallel loop started
    // from outside the pool hands its work to a sleeping worker and waits
    // for it even when it is one task, which for the small layers of small
    // networks was about 15 % of a training step (BENCHMARKS.md). Workers
    // get the main thread's stack size, not rayon's 2 MiB.
    let pooled = batch && rayon::ThreadPoolBuilder::new().stack_size(MAIN_STACK).build_global().is_ok();
    let result = if pooled { rayon::scope(|_| run(cli, &matches)) } else { run(cli, &matches) };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is::<Interrupted>() => ExitCode::from(130),
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// glibc's allocator set for a job that allocates and frees the same large
/// tensors every step: by default each worker thread's arena hands freed
/// memory back to the kernel and the next step faults it in again, zeroed
/// (2.2 million page faults in four 256 px CUT steps). One arena, no
/// trimming of the heap's free top, and blocks up to 256 MiB from the heap
/// rather than their own mappings: 0.46 million, steps 5-15 % faster, peak
/// memory no higher (BENCHMARKS.md). Called before any thread starts.
/// (mimalloc and jemalloc, tried through LD_PRELOAD, faulted more than
/// glibc's defaults.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only sets the allocator's parameters.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        // Older glibc refuses a threshold above 32 MiB; a fixed one must be
        // set either way, since setting the trim threshold below stops
        // glibc raising the 128 KiB default as blocks are freed.
        if libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20) == 0 {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        }
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}
