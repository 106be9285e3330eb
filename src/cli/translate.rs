//! `cyclegan translate`: images, folders and run folders through a generator.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::DeviceArgs;
use super::video::VideoArgs;
use super::download::{MirrorArgs, resolve_model};
use crate::checkpoint::Direction;
use crate::translate::{self, Precision, Tiling, TranslateJob, Translator};

#[derive(Args, Debug)]
pub struct TranslateArgs {
    /// A generator (.safetensors or PyTorch .pth), a training run folder, or a pretrained model's name
    /// (`cyclegan download --list`; downloaded into the cache on first use).
    #[arg(long)]
    pub model: PathBuf,
    /// Images or folders of images (searched recursively), or one video (any file ffmpeg reads).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output file for a single image, else an output folder mirroring the inputs. For a video:
    /// a video file (.mp4, .m4v, .mov, .mkv, .webm) or a new folder for PNG frames.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Which generator of a run folder: a2b (G_A, or a CUT run's G) or b2a (G_B).
    #[arg(long, value_enum, default_value_t = Direction::A2B)]
    pub direction: Direction,
    /// Rescale each image to this width first (aspect ratio kept).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub load_size: Option<u32>,
    /// Translate images larger than N px in N x N tiles, in bounded memory.
    #[arg(long, value_name = "N")]
    pub tile: Option<usize>,
    /// Pixels neighbouring tiles share (blended), with --tile.
    #[arg(long, value_name = "M", default_value_t = Tiling::DEFAULT_OVERLAP, requires = "tile")]
    pub overlap: usize,
    /// Longest side of the pass that measures the whole image's normalisation statistics, with --tile.
    #[arg(long, value_name = "PX", default_value_t = Tiling::DEFAULT_STATS_SIZE, requires = "tile")]
    pub stats_size: usize,
    /// Numeric precision of inference: bf16 and f16 on GPUs that compute in them; on a CPU with AVX512_BF16, bf16 products in the convolutions; otherwise the CPU runs f32 (and says so).
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
    #[command(flatten)]
    pub video: VideoArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub mirror: MirrorArgs,
}

pub fn run(args: TranslateArgs) -> anyhow::Result<()> {
    let device = args.device.device()?;
    let model = resolve_model(&args.model, &args.mirror)?;
    let (precision, why) = args.precision.on(&device)?;
    if let Some(why) = why {
        eprintln!("warning: {why}");
    }
    let video = args.video.source(&args.inputs)?;
    let translator = Translator::open(&model, args.direction, &device)?.with_precision(precision)?;
    let tiling = match args.tile {
        Some(tile) => Some(Tiling { tile, overlap: args.overlap, stats_size: args.stats_size }.check(translator.config.arch.size_multiple())?),
        None => None,
    };
    if let Some(source) = video {
        return super::video::translate(&args.video, &translator, source, &args.output, args.load_size, tiling);
    }
    let job = TranslateJob { inputs: args.inputs, output: args.output.clone(), load_size: args.load_size, tiling };
    let found = crate::data::folder::find_images(&job.inputs)?;
    let total = found.len();
    let bar = if total > 1 {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed} < {eta}] {per_sec} {msg}")
                .expect("valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let summary = translate::run(&translator, &job, &found, |_| bar.inc(1))?;
    bar.finish_and_clear();
    for failure in &summary.failed {
        eprintln!("error: {failure}");
    }
    let rate = summary.translated as f64 / summary.seconds.max(1e-9);
    println!(
        "translated {} image{} in {:.1} s ({:.2} images/s) -> {}",
        summary.translated,
        if summary.translated == 1 { "" } else { "s" },
        summary.seconds,
        rate,
        args.output.display()
    );
    if !summary.failed.is_empty() {
        bail!("{} of {} images could not be translated", summary.failed.len(), total);
    }
    Ok(())
}
