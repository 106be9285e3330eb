//! `cyclegan train`: options from the command line, a `--config` file, or
//! (with `--resume`) the run's own `options.toml`; flags given on the command
//! line win over the file.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args};

use super::progress::TrainProgress;
use crate::train::options::TrainOptions;
use crate::train::{self, Ending};

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub options: TrainOptions,
    /// Read options from this TOML file (keys as the flags, without the dashes).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue the run in --output from checkpoints/latest, with its options.toml.
    #[arg(long, conflicts_with = "config")]
    pub resume: bool,
}

pub fn run(args: TrainArgs, matches: &ArgMatches) -> anyhow::Result<()> {
    let options = resolve(&args, matches)?;
    let mut progress = TrainProgress::default();
    let outcome = train::run(&options, args.resume, super::STOP.clone(), &mut |e| progress.on_event(e));
    progress.finish();
    let outcome = outcome?;
    let latest = outcome.run.latest();
    println!(
        "{} after {} iteration{} in {:.1} s (epoch {}); checkpoints: {}; report: {}",
        match outcome.ending {
            Ending::Finished => "finished",
            Ending::IterationLimit => "stopped at --max-iters",
            Ending::Interrupted => "interrupted",
        },
        outcome.iterations,
        if outcome.iterations == 1 { "" } else { "s" },
        outcome.seconds,
        outcome.epoch,
        latest.display(),
        train::report::report_location(&outcome.run),
    );
    if outcome.ending == Ending::Interrupted {
        return Err(super::Interrupted.into());
    }
    Ok(())
}

/// The options in force: file (config or the run's own) overlaid with the flags given.
fn resolve(args: &TrainArgs, matches: &ArgMatches) -> anyhow::Result<TrainOptions> {
    let base = if args.resume {
        let Some(out) = &args.options.output else { bail!("--resume needs --output RUN_DIR") };
        let path = crate::train::run_dir::RunDir::new(out).options_path();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: cannot read the run's options (is this a training run?)", path.display()))?;
        TrainOptions::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
    } else if let Some(config) = &args.config {
        let text = std::fs::read_to_string(config).with_context(|| format!("{}", config.display()))?;
        TrainOptions::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?
    } else {
        return Ok(args.options.clone());
    };
    overlay(base, &args.options, matches)
}

/// Copy into `base` every option that was given on the command line.
fn overlay(base: TrainOptions, cli: &TrainOptions, matches: &ArgMatches) -> anyhow::Result<TrainOptions> {
    let mut table: toml::Table = toml::from_str(&base.to_toml())?;
    let given: toml::Table = toml::from_str(&cli.to_toml())?;
    let command = TrainArgs::augment_args(clap::Command::new("train"));
    for arg in command.get_arguments() {
        let (Some(long), id) = (arg.get_long(), arg.get_id().as_str()) else { continue };
        if matches.value_source(id) != Some(ValueSource::CommandLine) {
            continue;
        }
        match given.get(long) {
            Some(v) => table.insert(long.to_string(), v.clone()),
            None => table.remove(long),
        };
    }
    Ok(table.try_into()?)
}
