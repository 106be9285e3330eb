//! The video options of `cyclegan translate` and `cyclegan eval --video`,
//! and the terminal view of a video translation (a bar with frames per
//! second and ETA, then one line).

use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::translate::{Tiling, Translator};
use crate::video::{self, Ffmpeg, Rate, Source, Temporal, VideoEvent, VideoFormat, VideoJob};

/// `--temporal` when it is not given.
pub(super) const DEFAULT_TEMPORAL: Temporal = Temporal::Flow;

/// Frame rate of a `--sequence` when `--fps` is not given.
const DEFAULT_SEQUENCE_FPS: Rate = Rate { num: 25, den: 1 };

#[derive(Args, Debug, Clone)]
pub struct VideoArgs {
    /// Read the one input folder as the frames of a video, in the sorted order of their names.
    #[arg(long)]
    pub sequence: bool,
    /// Keeping a video steady: none (frame by frame), ema (blend the previous output in),
    /// flow (blend it in along the input's motion, where the motion is consistent) [default: flow]
    #[arg(long, value_enum)]
    pub temporal: Option<Temporal>,
    /// Weight of the previous output where it is blended in, 0 to 1 [default: 0.7]
    #[arg(long, value_name = "W", value_parser = strength)]
    pub temporal_strength: Option<f32>,
    /// Quality of a video output, lower is better: H.264 0-51, VP9 0-63 [default: 18]
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=63))]
    pub crf: Option<u8>,
    /// Frame rate of a --sequence written as a video: 25, 30000/1001 [default: 25]
    #[arg(long, value_parser = rate)]
    pub fps: Option<Rate>,
    #[command(flatten)]
    pub ffmpeg: FfmpegArgs,
}

/// Where ffmpeg is.
#[derive(Args, Debug, Clone)]
pub struct FfmpegArgs {
    /// The ffmpeg program for videos (ffprobe is taken from its folder); found on PATH when left out.
    #[arg(long, value_name = "PATH", env = "CYCLEGAN_FFMPEG")]
    pub ffmpeg: Option<PathBuf>,
}

impl FfmpegArgs {
    pub fn locate(&self) -> anyhow::Result<Ffmpeg> {
        Ok(Ffmpeg::locate(self.ffmpeg.as_deref())?)
    }
}

fn strength(text: &str) -> Result<f32, String> {
    let v: f32 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) { Ok(v) } else { Err(format!("{v} is outside 0 to 1")) }
}

fn rate(text: &str) -> Result<Rate, String> {
    Rate::parse(text).ok_or_else(|| format!("{text:?} is not a frame rate (25, or a ratio such as 30000/1001)"))
}

impl VideoArgs {
    /// Whether the translate inputs name a video (what [`VideoArgs::source`] takes as one).
    pub fn names_video(&self, inputs: &[PathBuf]) -> bool {
        self.sequence || matches!(inputs, [file] if file.is_file() && (video::is_video_path(file) || !crate::data::folder::is_image_path(file)))
    }

    /// The video the translate inputs name, if they name one: a `--sequence`
    /// folder, or one file that is a video by its extension or is not an
    /// image. Video options given for images are refused.
    pub fn source(&self, inputs: &[PathBuf]) -> anyhow::Result<Option<Source>> {
        if self.sequence {
            match inputs {
                [dir] if dir.is_dir() => return Ok(Some(Source::Sequence(dir.clone(), self.fps.unwrap_or(DEFAULT_SEQUENCE_FPS)))),
                _ => anyhow::bail!("--sequence takes one folder of frames"),
            }
        }
        if self.names_video(inputs) {
            if self.fps.is_some() {
                anyhow::bail!("--fps is for --sequence: a video keeps its own frame rate");
            }
            return Ok(Some(Source::File(inputs[0].clone())));
        }
        let given: Vec<&str> = [
            (self.temporal.is_some(), "--temporal"),
            (self.temporal_strength.is_some(), "--temporal-strength"),
            (self.crf.is_some(), "--crf"),
            (self.fps.is_some(), "--fps"),
        ]
        .into_iter()
        .filter_map(|(given, name)| given.then_some(name))
        .collect();
        if !given.is_empty() {
            anyhow::bail!("{} apply to a video input or a --sequence folder, not to images", given.join(", "));
        }
        Ok(None)
    }
}

/// Translate the video `source` into `output`, showing progress.
pub fn translate(args: &VideoArgs, translator: &Translator, source: Source, output: &Path, load_size: Option<u32>, tiling: Option<Tiling>) -> anyhow::Result<()> {
    if args.crf.is_some() && VideoFormat::from_path(output).is_none() {
        anyhow::bail!("--crf sets the quality of a video file output; {} is a folder of PNG frames", output.display());
    }
    let needs_ffmpeg = matches!(source, Source::File(_)) || VideoFormat::from_path(output).is_some();
    let ffmpeg = if needs_ffmpeg { Some(args.ffmpeg.locate()?) } else { None };
    let job = VideoJob {
        source,
        output: output.to_path_buf(),
        temporal: args.temporal.unwrap_or(DEFAULT_TEMPORAL),
        strength: args.temporal_strength.unwrap_or(Temporal::DEFAULT_STRENGTH),
        crf: args.crf.unwrap_or(VideoFormat::DEFAULT_CRF),
        load_size,
        tiling,
    };
    let bar = ProgressBar::hidden();
    let summary = video::translate_video(translator, ffmpeg.as_ref(), &job, &super::STOP, |event| match event {
        VideoEvent::Started { frames, .. } => {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.set_length(frames);
            bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} frames [{elapsed} < {eta}] {per_sec}").expect("valid template"));
        }
        VideoEvent::Frame => bar.inc(1),
    });
    bar.finish_and_clear();
    // Ctrl-C reaches ffmpeg too, which may end first: the stop is the cause.
    if super::STOP.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(super::Interrupted.into());
    }
    let summary = summary?;
    println!(
        "translated {} frames ({}x{}, {} fps, temporal {}) in {:.1} s ({:.2} frames/s) -> {}",
        summary.frames,
        summary.width,
        summary.height,
        summary.rate,
        clap::ValueEnum::to_possible_value(&job.temporal).expect("a value").get_name(),
        summary.seconds,
        summary.frames as f64 / summary.seconds.max(1e-9),
        output.display()
    );
    Ok(())
}

/// The input of `eval --video` or `--translated`: a folder of frames or a video file.
pub fn measured_source(path: &Path) -> Source {
    if path.is_dir() { Source::Sequence(path.to_path_buf(), DEFAULT_SEQUENCE_FPS) } else { Source::File(path.to_path_buf()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The defaults the help states are the ones used.
    #[test]
    fn help_states_the_defaults_in_use() {
        let help = crate::cli::Cli::command().find_subcommand_mut("translate").expect("translate").render_long_help().to_string();
        for want in [
            format!("[default: {}]", Temporal::DEFAULT_STRENGTH),
            format!("[default: {}]", VideoFormat::DEFAULT_CRF),
            format!("[default: {}]", DEFAULT_SEQUENCE_FPS),
            format!("[default: {}]", clap::ValueEnum::to_possible_value(&DEFAULT_TEMPORAL).expect("a value").get_name()),
        ] {
            assert!(help.contains(&want), "help lacks {want}");
        }
    }
}
