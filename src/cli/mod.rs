//! The command line: one subcommand per job, each with its own typed
//! options struct (`cyclegan <command> --help` documents each flag).

mod bench;
mod demo;
mod devices;
mod download;
mod eval;
mod export;
mod import;
mod progress;
mod serve;
mod train;
mod translate;
mod video;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, LazyLock};

use clap::{Parser, Subcommand};

use crate::device::DeviceChoice;

#[derive(Parser, Debug)]
#[command(name = "cyclegan", version, about = "Unpaired image-to-image translation: CycleGAN (Zhu et al. 2017), CUT and FastCUT (Park et al. 2020)")]
#[command(args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Time translation and training on this machine.
    Bench(bench::BenchArgs),
    /// Train on the bundled emoji dataset for a few minutes, then translate its test set.
    Demo(demo::DemoArgs),
    /// Train a CycleGAN (or CUT / FastCUT, --model) on two folders of unpaired images.
    Train(train::TrainArgs),
    /// Translate images or folders with a trained generator.
    Translate(translate::TranslateArgs),
    /// Convert a PyTorch .pth network to a self-describing .safetensors file.
    Import(import::ImportArgs),
    /// FID and KID (pytorch-fid's and torch-fidelity's) between two folders, or of a model's translations.
    Eval(eval::EvalArgs),
    /// Write a generator as an ONNX file for other runtimes (onnxruntime, TensorRT, the browser).
    Export(export::ExportArgs),
    /// Offer generators over HTTP: an API and a web page.
    Serve(serve::ServeArgs),
    /// Fetch an official dataset or pretrained generator by name (--list shows them).
    Download(download::DownloadArgs),
    /// The devices this binary was built with: usable here or not, what each is, fusion and autotune.
    Devices(devices::DevicesArgs),
}

/// Set by the first Ctrl-C during `train` and `demo` (the handler is
/// `main`'s): training saves `checkpoints/latest` and stops at the next step.
pub static STOP: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));

/// A command stopped by Ctrl-C after saving what it had: `main` exits 130,
/// the shell's code for an interrupted command.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

impl Command {
    /// What a first Ctrl-C does if this command stops cleanly on it (through
    /// [`STOP`]) rather than ending the process: training saves its
    /// checkpoints; a video translation removes its unfinished output.
    pub fn stops_on_ctrl_c(&self) -> Option<&'static str> {
        match self {
            Self::Train(_) | Self::Demo(_) => Some("saving checkpoints/latest"),
            Self::Translate(args) if args.video.names_video(&args.inputs) => Some("removing the unfinished output"),
            _ => None,
        }
    }

    /// Whether the command may run on one of rayon's worker threads (see
    /// `main`): every one but `serve`, whose event loop would hold a worker
    /// for good and leave its translations the other cores only.
    pub fn runs_on_a_worker(&self) -> bool {
        !matches!(self, Self::Serve(_))
    }
}

/// Options shared by every command that computes.
#[derive(clap::Args, Debug, Clone)]
pub struct DeviceArgs {
    /// Where the tensors live: cpu (default), jit, cuda or wgpu (the last three need a build with that feature).
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
}

impl DeviceArgs {
    pub fn device(&self) -> anyhow::Result<burn::tensor::Device> {
        self.device.device().map_err(anyhow::Error::msg)
    }
}

/// Run the parsed command; `matches` tells which options were given explicitly.
pub fn run(cli: Cli, matches: &clap::ArgMatches) -> anyhow::Result<()> {
    // Refused here, once, before any kernel reads it.
    crate::ops::cpu::simd::requested().map_err(anyhow::Error::msg)?;
    match cli.command {
        Command::Bench(args) => bench::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Train(args) => train::run(args, matches.subcommand_matches("train").expect("train subcommand")),
        Command::Translate(args) => translate::run(args),
        Command::Import(args) => import::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Export(args) => export::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Download(args) => download::run(args),
        Command::Devices(args) => devices::run(args),
    }
}

/// An error and its causes on one line, for the terminal.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}

/// A command-line parsing error on one line (clap spreads it over several).
pub fn one_line_usage_error(err: &clap::Error) -> String {
    let text = err.render().to_string();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join(" ")
}
