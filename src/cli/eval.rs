//! `cyclegan eval`: FID and KID (and, for aligned sets, L1, PSNR and SSIM)
//! between two folders, or of a model's translations of test folders.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::DeviceArgs;
use super::video::{FfmpegArgs, measured_source};
use crate::video::Source;
use super::download::{MirrorArgs, resolve_model};
use crate::checkpoint::Direction;
use crate::evaluate::features::DEFAULT_BATCH;
use crate::evaluate::inception::Inception;
use crate::evaluate::kid::KidOptions;
use crate::evaluate::report::{self, Paired, Scores, Side};
use crate::evaluate::{stats, weights};
use crate::translate::Translator;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Real images: a folder (searched recursively), or a statistics file from --save-stats.
    #[arg(long, requires = "fake", conflicts_with = "model", required_unless_present_any = ["model", "video"])]
    pub real: Option<PathBuf>,
    /// Generated images: a folder (searched recursively).
    #[arg(long, requires = "real")]
    pub fake: Option<PathBuf>,
    /// A training run folder (each direction it has: both for CycleGAN, A to B for CUT), a generator file,
    /// or a pretrained model's name (`cyclegan download --list`): translate the test folders and score that.
    #[arg(long, requires_all = ["test_a", "test_b"])]
    pub model: Option<PathBuf>,
    /// Domain A test images, with --model.
    #[arg(long, requires = "model")]
    pub test_a: Option<PathBuf>,
    /// Domain B test images, with --model.
    #[arg(long, requires = "model")]
    pub test_b: Option<PathBuf>,
    /// pytorch-fid's Inception weights (pt_inception-2015-12-05-6726825d.pth); found or fetched when left out.
    #[arg(long, value_name = "FILE")]
    pub inception: Option<PathBuf>,
    /// Print one JSON object instead of a line of text.
    #[arg(long)]
    pub json: bool,
    /// Write the real side's features and statistics here, for --real next time.
    #[arg(long, value_name = "FILE", requires = "real")]
    pub save_stats: Option<PathBuf>,
    /// Also compare images with the same relative names: L1 (0-255), PSNR and SSIM.
    #[arg(long, requires = "fake")]
    pub paired: bool,
    /// Random subsets KID averages over.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub kid_subsets: u32,
    /// Images in each KID subset (capped at the smaller set).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(2..))]
    pub kid_subset_size: u32,
    /// Images per Inception forward pass.
    #[arg(long, default_value_t = DEFAULT_BATCH as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// A video (a file, or a folder of frames): with --translated, how steady its translation is
    /// (warping error and tOF; no Inception weights needed).
    #[arg(long, requires = "translated", conflicts_with_all = ["real", "model"])]
    pub video: Option<PathBuf>,
    /// The translation of --video (a file, or a folder of frames), at its size and frame count.
    #[arg(long, requires = "video")]
    pub translated: Option<PathBuf>,
    #[command(flatten)]
    pub ffmpeg: FfmpegArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub mirror: MirrorArgs,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let device = args.device.device()?;
    if let (Some(video), Some(translated)) = (&args.video, &args.translated) {
        return steadiness(&args, video, translated, &device);
    }
    // Folders without images fail now, not after the weights have loaded.
    let folders = [&args.fake, &args.test_a, &args.test_b, &args.real];
    for dir in folders.into_iter().flatten().filter(|p| !stats::is_stats_file(p)) {
        crate::data::folder::images_in(dir)?;
    }
    // The generators are read now too: a bad model file fails before the weights load.
    let translators = match &args.model {
        Some(model) => Some(crate::translate::open_generators(&resolve_model(model, &args.mirror)?, &device)?),
        None => None,
    };
    let loaded = weights::load(args.inception.as_deref(), &device)?;
    let kid = KidOptions { subsets: args.kid_subsets as usize, subset_size: args.kid_subset_size as usize };
    let batch = args.batch_size as usize;
    match (&args.real, &args.fake, translators) {
        (Some(real), Some(fake), None) => compare_folders(&args, &loaded.net, real, fake, kid, batch)?,
        (None, None, Some(translators)) => {
            let (test_a, test_b) = (args.test_a.as_ref().expect("clap"), args.test_b.as_ref().expect("clap"));
            score_model(&args, &loaded.net, translators, test_a, test_b, kid, batch)?
        }
        _ => bail!("give --real and --fake, or --model with --test-a and --test-b"),
    }
    // after the numbers, so that a failure stays one line
    if let Some(w) = &loaded.warning {
        eprintln!("warning: {w}");
    }
    Ok(())
}

fn compare_folders(args: &EvalArgs, net: &Inception, real: &Path, fake: &Path, kid: KidOptions, batch: usize) -> anyhow::Result<()> {
    let real_side = if stats::is_stats_file(real) {
        report::stats_side(real)?
    } else {
        report::folder_side(net, real, batch, &mut bar("real"))?
    };
    if let Some(path) = &args.save_stats {
        stats::save(path, &real_side.set, &real.display().to_string())?;
    }
    let fake_side = report::folder_side(net, fake, batch, &mut bar("fake"))?;
    let scores = report::scores(&real_side.set, &fake_side.set, kid);
    let paired = if args.paired {
        if stats::is_stats_file(real) {
            bail!("--paired needs --real to be a folder of images, not a statistics file");
        }
        Some(report::paired(real, fake)?)
    } else {
        None
    };
    let skipped = warn_skipped(&[&real_side, &fake_side]);
    if args.json {
        let mut out = serde_json::to_value(scores)?;
        out["skipped"] = json!(skipped);
        if let Some(p) = &paired {
            out["paired"] = serde_json::to_value(p)?;
        }
        println!("{out}");
    } else {
        println!("{}", line(&scores, skipped.len()));
        if let Some(p) = &paired {
            println!("{}", paired_line(p));
        }
    }
    Ok(())
}

fn score_model(
    args: &EvalArgs,
    net: &Inception,
    translators: Vec<(Direction, Translator)>,
    test_a: &Path,
    test_b: &Path,
    kid: KidOptions,
    batch: usize,
) -> anyhow::Result<()> {
    let mut results = serde_json::Map::new();
    let mut lines = Vec::new();
    for (direction, translator) in translators {
        let (inputs, reference) = match direction {
            Direction::A2B => (test_a, test_b),
            Direction::B2A => (test_b, test_a),
        };
        let real = report::folder_side(net, reference, batch, &mut bar(&format!("{} real", direction.name())))?;
        let fake = report::translated_side(net, &translator, inputs, batch, &mut bar(&format!("{} fake", direction.name())))?;
        let scores = report::scores(&real.set, &fake.set, kid);
        let skipped = warn_skipped(&[&real, &fake]);
        let mut value = serde_json::to_value(scores)?;
        value["skipped"] = json!(skipped);
        results.insert(direction.name().to_string(), value);
        let (from, to) = if direction == Direction::A2B { ("A", "B") } else { ("B", "A") };
        lines.push(format!("{} (fake {to} from test {from}, against test {to}): {}", direction.name(), line(&scores, skipped.len())));
    }
    if args.json {
        println!("{}", serde_json::Value::Object(results));
    } else {
        lines.iter().for_each(|l| println!("{l}"));
    }
    Ok(())
}

/// `eval --video IN --translated OUT`: warping error and tOF.
fn steadiness(args: &EvalArgs, video: &Path, translated: &Path, device: &burn::tensor::Device) -> anyhow::Result<()> {
    let (input, output) = (measured_source(video), measured_source(translated));
    let needs_ffmpeg = [&input, &output].iter().any(|s| matches!(s, Source::File(_)));
    let ffmpeg = if needs_ffmpeg { Some(args.ffmpeg.locate()?) } else { None };
    let c = crate::video::measure(&input, &output, ffmpeg.as_ref(), device)?;
    if args.json {
        println!("{}", serde_json::to_value(&c)?);
    } else {
        println!(
            "warping error {:.6} (the input's own: {:.6}; {:.2}x)  tOF {:.4} px  ({} frame pairs)",
            c.warping_error,
            c.input_warping_error,
            c.warping_error / c.input_warping_error.max(1e-12),
            c.tof,
            c.pairs
        );
    }
    Ok(())
}

/// `FID 77.21  KID 0.0123 +- 0.0008  (120 real, 140 fake)`
fn line(s: &Scores, skipped: usize) -> String {
    let skipped = if skipped > 0 { format!("; {skipped} unreadable skipped") } else { String::new() };
    format!("FID {:.2}  KID {:.4} +- {:.4}  ({} real, {} fake{skipped})", s.fid, s.kid, s.kid_std, s.n_real, s.n_fake)
}

fn paired_line(p: &Paired) -> String {
    let ssim = p.mean_ssim.map_or("-".to_string(), |v| format!("{v:.4}"));
    let unmatched = if p.unmatched.is_empty() { String::new() } else { format!("; {} without a partner", p.unmatched.len()) };
    format!("paired: L1 {:.2}  PSNR {:.2} dB  SSIM {ssim}  ({} pairs{unmatched})", p.mean_l1, p.mean_psnr, p.files.len())
}

/// Report skipped files on stderr; their messages, for the JSON.
fn warn_skipped(sides: &[&Side]) -> Vec<String> {
    let all: Vec<String> = sides.iter().flat_map(|s| s.skipped.iter().map(|e| e.to_string())).collect();
    all.iter().for_each(|e| eprintln!("warning: skipping {e}"));
    all
}

/// A progress bar (hidden when stderr is not a terminal) as a `(done, total)` callback.
fn bar(label: &str) -> impl FnMut(usize, usize) {
    let bar = ProgressBar::no_length();
    bar.set_style(
        ProgressStyle::with_template(&format!("{label:>10} {{bar:30}} {{pos}}/{{len}} {{per_sec}} ETA {{eta}}"))
            .expect("valid template"),
    );
    move |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        if done >= total {
            bar.finish_and_clear();
        }
    }
}
