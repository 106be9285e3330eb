//! `cyclegan download`: the official datasets and pretrained generators by
//! name, and the `--model NAME` resolution every model-taking command shares.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::zoo::{self, DATASETS, Event, MODELS, Source};

#[derive(Args, Debug)]
pub struct DownloadArgs {
    /// List every dataset and model name, what it translates and its size where published.
    #[arg(long, conflicts_with = "what")]
    pub list: bool,
    #[command(subcommand)]
    pub what: Option<What>,
}

#[derive(Subcommand, Debug)]
pub enum What {
    /// A dataset as the official zips hold it (trainA, trainB, testA, testB).
    Dataset {
        /// Its name, e.g. horse2zebra (`--list` shows them all).
        name: String,
        /// Folder to unpack it into [default: datasets/NAME].
        #[arg(long)]
        dir: Option<PathBuf>,
        #[command(flatten)]
        mirror: MirrorArgs,
    },
    /// A pretrained generator into the cache ($CYCLEGAN_HOME), imported as a self-describing .safetensors.
    Model {
        /// Its name, e.g. horse2zebra or horse2zebra_cut (`--list` shows them all).
        name: String,
        #[command(flatten)]
        mirror: MirrorArgs,
    },
}

/// Where zoo files come from.
#[derive(Args, Debug, Clone, Default)]
pub struct MirrorArgs {
    /// Download zoo names from this host instead of the official one (same paths): a mirror or a proxy.
    #[arg(long, value_name = "URL", env = "CYCLEGAN_MIRROR")]
    pub mirror: Option<String>,
}

pub fn run(args: DownloadArgs) -> anyhow::Result<()> {
    match args.what {
        _ if args.list => match print_list(&mut std::io::stdout().lock()) {
            // `download --list | head` closes the pipe early: not an error
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => Ok(other?),
        },
        Some(What::Dataset { name, dir, mirror }) => {
            let dir = dir.unwrap_or_else(|| Path::new("datasets").join(&name));
            let source = Source::new(mirror.mirror.as_deref())?;
            let mut view = DownloadView::default();
            let outcome = zoo::dataset(&name, &dir, &source, &mut |e| view.on_event(e));
            view.finish();
            match outcome? {
                zoo::DatasetOutcome::Downloaded => println!("{name} -> {}", dir.display()),
                zoo::DatasetOutcome::AlreadyThere => {
                    println!("{} is there already and not empty; nothing was downloaded (remove it, or pick another --dir)", dir.display())
                }
            }
            Ok(())
        }
        Some(What::Model { name, mirror }) => {
            let path = model_file(&name, &mirror)?;
            println!("{name} -> {}", path.display());
            Ok(())
        }
        None => anyhow::bail!("say what to download: `download dataset NAME`, `download model NAME`, or `download --list`"),
    }
}

/// The generator a `--model` argument names: the path itself, or for a zoo
/// name with nothing at that path, the cached import (downloaded first if needed).
pub fn resolve_model(arg: &Path, mirror: &MirrorArgs) -> anyhow::Result<PathBuf> {
    match arg.to_str() {
        Some(name) if zoo::is_model_name(arg) => model_file(name, mirror),
        _ => Ok(arg.to_path_buf()),
    }
}

fn model_file(name: &str, mirror: &MirrorArgs) -> anyhow::Result<PathBuf> {
    let source = Source::new(mirror.mirror.as_deref())?;
    let mut view = DownloadView::default();
    let path = zoo::model(name, &source, &mut |e| view.on_event(e));
    view.finish();
    Ok(path?)
}

fn print_list(out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(out, "datasets (cyclegan download dataset NAME):")?;
    for d in DATASETS {
        let size = d.published.map_or("size not published".to_string(), |(bytes, _)| format!("{:.0} MB", bytes as f64 / 1e6));
        writeln!(out, "  {:<24} {:<18} {}", d.name, size, d.about)?;
    }
    for (name, _) in zoo::catalogue::NOT_REDISTRIBUTED {
        writeln!(out, "  {name:<24} {:<18} not redistributed: `download dataset {name}` says where it comes from", "-")?;
    }
    writeln!(out, "models (cyclegan download model NAME, or --model NAME in translate, serve, eval, export):")?;
    for m in MODELS {
        writeln!(out, "  {:<24} {:<18} {} -> {}", m.name, m.kind.name(), m.from, m.to)?;
    }
    Ok(())
}

/// A progress bar with bytes, rate and ETA on a terminal (indicatif draws
/// nothing elsewhere), and a line for each retry and each finished file.
#[derive(Default)]
struct DownloadView {
    bar: Option<ProgressBar>,
}

impl DownloadView {
    fn on_event(&mut self, event: Event) {
        match event {
            Event::Downloading { url, total, resumed_from } => {
                self.finish();
                let bar = total.map_or_else(ProgressBar::new_spinner, ProgressBar::new);
                bar.set_style(
                    ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
                        .expect("valid template"),
                );
                bar.set_message(short_name(&url));
                bar.set_position(resumed_from);
                bar.reset_eta();
                self.bar = Some(bar);
                if resumed_from > 0 {
                    self.print(&format!("resuming {url} at byte {resumed_from}"));
                }
            }
            Event::Progress { done } => {
                if let Some(bar) = &self.bar {
                    bar.set_position(done);
                }
            }
            Event::Retrying { attempt, of, why } => self.print(&format!("warning: {why}; trying again ({attempt} of {of})")),
            Event::Fetched { url, bytes, sha256, published } => {
                self.finish();
                let check = if published { "matches the published SHA-256" } else { "no checksum is published; SHA-256" };
                eprintln!("fetched {url} ({bytes} bytes), {check} {sha256}");
            }
            Event::Unpacking { what } => {
                self.finish();
                eprintln!("{what}...");
            }
        }
    }

    /// A line above the bar (indicatif drops it where the bar is hidden: not a terminal).
    fn print(&self, line: &str) {
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.println(line),
            _ => eprintln!("{line}"),
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn short_name(url: &str) -> String {
    url.rsplit('/').next().unwrap_or(url).to_string()
}
