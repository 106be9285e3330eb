//! Videos: translated frame by frame through a generator, kept steady over
//! time ([`temporal`]), read and written by ffmpeg ([`ffmpeg`]), one frame
//! in memory at a time; and how steady a translated video is ([`metrics`]).
//!
//! A video is a file ffmpeg reads, or a folder of frames (`--sequence`); a
//! translation goes to a video file (by its extension) or a folder of PNG
//! frames. Either output is written beside its target and renamed into
//! place when complete.

pub mod ffmpeg;
pub mod flow;
pub mod metrics;
pub mod temporal;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use image::DynamicImage;

pub use ffmpeg::{Ffmpeg, Rate, VideoFormat, VideoInfo};
pub use metrics::{Consistency, ConsistencyMeter};
pub use temporal::{Stabiliser, Temporal};

use crate::error::{Error, Result};
use crate::image_io::{self, ImageData};
use crate::translate::{self, Tiling, Translator};

/// Extensions taken as videos when given as a file to translate (any other
/// non-image file is tried as a video too).
pub const VIDEO_EXTENSIONS: &[&str] = &["mp4", "m4v", "mkv", "webm", "mov", "avi", "mpg", "mpeg", "ts", "flv", "wmv", "ogv", "3gp", "gif"];

/// Whether `path` names a video by its extension.
pub fn is_video_path(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Where a video's frames come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A file ffmpeg reads.
    File(PathBuf),
    /// A folder of frames, in the sorted order of their paths, at this rate.
    Sequence(PathBuf, Rate),
}

impl Source {
    pub fn path(&self) -> &Path {
        match self {
            Self::File(p) | Self::Sequence(p, _) => p,
        }
    }
}

/// A video's frames, one at a time.
pub struct Frames {
    pub width: u32,
    pub height: u32,
    pub rate: Rate,
    /// How many frames there are (from the container's packets for a file).
    pub count: u64,
    /// The codec of a file's first audio stream.
    pub audio: Option<String>,
    kind: FramesKind,
}

enum FramesKind {
    File(ffmpeg::FrameReader),
    Sequence { files: std::vec::IntoIter<PathBuf>, folder: PathBuf },
}

impl Frames {
    /// Open `source` (checking, for a file, everything [`Ffmpeg::probe`] checks).
    pub fn open(source: &Source, ffmpeg: Option<&Ffmpeg>) -> Result<Self> {
        match source {
            Source::File(path) => {
                let ffmpeg = ffmpeg.ok_or_else(|| Error::Usage("reading a video file needs ffmpeg".into()))?;
                let info = ffmpeg.probe(path)?;
                let reader = ffmpeg.read(path, &info)?;
                Ok(Self { width: info.width, height: info.height, rate: info.rate, count: info.frames, audio: info.audio.clone(), kind: FramesKind::File(reader) })
            }
            Source::Sequence(folder, rate) => {
                let meta = std::fs::metadata(folder).map_err(|e| Error::io(folder, e))?;
                if !meta.is_dir() {
                    return Err(Error::Usage(format!("{}: --sequence takes a folder of frames", folder.display())));
                }
                let files = crate::data::folder::images_in(folder)?;
                let first = &files[0];
                let (width, height) = image_io::header_dimensions(first, &crate::fs::read(first)?)?;
                Ok(Self {
                    width,
                    height,
                    rate: *rate,
                    count: files.len() as u64,
                    audio: None,
                    kind: FramesKind::Sequence { files: files.into_iter(), folder: folder.clone() },
                })
            }
        }
    }

    /// The next frame, `None` after the last. Every frame has the first one's size.
    pub fn next_frame(&mut self) -> Result<Option<DynamicImage>> {
        match &mut self.kind {
            FramesKind::File(reader) => Ok(reader.next_frame()?.map(|rgb| {
                DynamicImage::ImageRgb8(image::RgbImage::from_raw(self.width, self.height, rgb).expect("frame of the probed size"))
            })),
            FramesKind::Sequence { files, folder } => {
                let Some(file) = files.next() else { return Ok(None) };
                let img = image_io::decode(&file)?;
                if (img.width(), img.height()) != (self.width, self.height) {
                    return Err(Error::image(
                        &file,
                        format!("is {}x{}, but the frames of {} are {}x{}", img.width(), img.height(), folder.display(), self.width, self.height),
                    ));
                }
                Ok(Some(img))
            }
        }
    }
}

/// What to translate and where (`cyclegan translate` of a video).
#[derive(Clone, Debug)]
pub struct VideoJob {
    pub source: Source,
    /// A video file (`.mp4`, `.m4v`, `.mov`, `.mkv`, `.webm`) or a folder for PNG frames.
    pub output: PathBuf,
    pub temporal: Temporal,
    /// Weight of the previous output where it is blended in.
    pub strength: f32,
    /// Quality of an encoded output (lower is better; see [`VideoFormat::DEFAULT_CRF`]).
    pub crf: u8,
    pub load_size: Option<u32>,
    pub tiling: Option<Tiling>,
}

/// What happened while translating a video.
#[derive(Clone, Debug)]
pub enum VideoEvent {
    /// The input was opened: its frame count (as the container states it), size and rate.
    Started { frames: u64, width: u32, height: u32, rate: Rate },
    /// One more frame was written.
    Frame,
}

/// What a video translation did.
#[derive(Clone, Debug)]
pub struct VideoSummary {
    pub frames: u64,
    pub width: u32,
    pub height: u32,
    pub rate: Rate,
    pub seconds: f64,
}

/// Where translated frames go: an encoder, or a temporary folder renamed
/// into place at the end. Dropped unfinished, it leaves nothing.
enum Sink {
    Video(ffmpeg::FrameWriter),
    Frames { temp: tempfile::TempDir, target: PathBuf, written: u64 },
}

impl Sink {
    fn open(job: &VideoJob, format: Option<VideoFormat>, ffmpeg: Option<&Ffmpeg>, frames: &Frames, size: (u32, u32)) -> Result<Self> {
        if let Some(format) = format {
            format.check_crf(job.crf)?;
            format.check_size(&job.output, size.0, size.1)?;
            let ffmpeg = ffmpeg.ok_or_else(|| Error::Usage("writing a video file needs ffmpeg".into()))?;
            let audio = match (&job.source, &frames.audio) {
                (Source::File(path), Some(codec)) => Some((path.as_path(), codec.as_str())),
                _ => None,
            };
            return Ok(Self::Video(ffmpeg.write(&job.output, format, size, frames.rate, job.crf, audio)?));
        }
        let (parent, prefix) = crate::fs::temporary_beside(&job.output);
        std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".part");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // A new folder's permissions (narrowed by the umask), not a temporary one's private 0700.
            builder.permissions(std::fs::Permissions::from_mode(0o777));
        }
        let temp = builder.tempdir_in(&parent).map_err(|e| Error::io(&job.output, e))?;
        Ok(Self::Frames { temp, target: job.output.clone(), written: 0 })
    }

    fn write(&mut self, rgb: &image::RgbImage, output: &Path) -> Result<()> {
        match self {
            Self::Video(writer) => writer.write_frame(rgb.as_raw()),
            Self::Frames { temp, written, .. } => {
                *written += 1;
                // Inside a temporary folder: no file needs its own atomic write.
                let path = temp.path().join(format!("{:06}.png", *written));
                rgb.save_with_format(&path, image::ImageFormat::Png).map_err(|e| Error::image(output, e))
            }
        }
    }

    fn finish(self) -> Result<()> {
        match self {
            Self::Video(writer) => writer.finish(),
            Self::Frames { temp, target, .. } => {
                if target.is_dir() {
                    // Checked empty before the work: replaced by the finished folder.
                    std::fs::remove_dir(&target).map_err(|e| Error::io(&target, e))?;
                }
                let path = temp.keep();
                std::fs::rename(&path, &target).map_err(|e| {
                    let _ = std::fs::remove_dir_all(&path);
                    Error::io(&target, e)
                })
            }
        }
    }
}

/// Check what `output` can be before any work: a video file name, or a
/// folder that does not exist yet or is empty.
fn destination(output: &Path) -> Result<Option<VideoFormat>> {
    if let Some(format) = VideoFormat::from_path(output) {
        if output.is_dir() {
            return Err(Error::Usage(format!("{}: is a folder, not a video file name", output.display())));
        }
        return Ok(Some(format));
    }
    if is_video_path(output) {
        return Err(Error::Usage(format!(
            "{}: videos are written as .mp4, .m4v, .mov, .mkv or .webm (or PNG frames into a folder)",
            output.display()
        )));
    }
    if crate::data::folder::is_image_path(output) {
        return Err(Error::Usage(format!(
            "{}: a video translates to a video file (.mp4, .m4v, .mov, .mkv, .webm) or a folder of PNG frames, not one image",
            output.display()
        )));
    }
    if output.exists() {
        let empty = std::fs::read_dir(output).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !output.is_dir() || !empty {
            return Err(Error::Usage(format!(
                "{}: exists; frames go to a new (or empty) folder; a video file needs a .mp4, .m4v, .mov, .mkv or .webm name",
                output.display()
            )));
        }
    }
    Ok(None)
}

/// Translate the video `job` names with `translator`, streaming: one frame
/// is decoded, translated, steadied and encoded before the next is read.
/// Setting `stop` ends it before the next frame, removing the unfinished output.
pub fn translate_video(
    translator: &Translator,
    ffmpeg: Option<&Ffmpeg>,
    job: &VideoJob,
    stop: &AtomicBool,
    mut on_event: impl FnMut(VideoEvent),
) -> Result<VideoSummary> {
    let format = destination(&job.output)?;
    let mut frames = Frames::open(&job.source, ffmpeg)?;
    let (width, height) = translate::loaded_size(frames.width, frames.height, job.load_size);
    let start = Instant::now();
    let mut sink = Sink::open(job, format, ffmpeg, &frames, (width, height))?;
    on_event(VideoEvent::Started { frames: frames.count, width, height, rate: frames.rate });
    let mut stabiliser = Stabiliser::new(job.temporal, job.strength);
    let mut count = 0u64;
    while let Some(img) = frames.next_frame()? {
        if stop.load(Ordering::SeqCst) {
            return Err(Error::Usage("interrupted".into()));
        }
        let data = translate::prepare(img, job.load_size, translator.config.input_nc);
        let translated = translate::translate_data(translator, &data, job.tiling)?;
        let out = if job.temporal == Temporal::None {
            translated
        } else {
            let device = translator.device();
            ImageData::from_tensor(stabiliser.next(&data.to_tensor(device), translated.to_tensor(device)))
        };
        let rgb = out.to_image().into_rgb8();
        sink.write(&rgb, &job.output)?;
        count += 1;
        on_event(VideoEvent::Frame);
    }
    if count == 0 {
        return Err(Error::video(job.source.path(), "has no frames"));
    }
    sink.finish()?;
    Ok(VideoSummary { frames: count, width, height, rate: frames.rate, seconds: start.elapsed().as_secs_f64() })
}

/// Measure how steady `translated` is against `input` (both videos or
/// frame folders of the same size and length), frame pair by frame pair.
pub fn measure(input: &Source, translated: &Source, ffmpeg: Option<&Ffmpeg>, device: &burn::tensor::Device) -> Result<Consistency> {
    let mut a = Frames::open(input, ffmpeg)?;
    let mut b = Frames::open(translated, ffmpeg)?;
    if (a.width, a.height) != (b.width, b.height) {
        return Err(Error::video(
            translated.path(),
            format!("is {}x{}, but {} is {}x{}: measure a translation at the input's size", b.width, b.height, input.path().display(), a.width, a.height),
        ));
    }
    let mut meter = ConsistencyMeter::default();
    let mut n = 0u64;
    loop {
        match (a.next_frame()?, b.next_frame()?) {
            (Some(x), Some(y)) => {
                let x = image_io::to_data(&x, 3).to_tensor(device);
                let y = image_io::to_data(&y, 3).to_tensor(device);
                meter.push(&x, &y);
                n += 1;
            }
            (None, None) => break,
            (x, _) => {
                let (longer, shorter) = if x.is_some() { (input, translated) } else { (translated, input) };
                return Err(Error::video(shorter.path(), format!("has {n} frames, fewer than {}", longer.path().display())));
            }
        }
    }
    meter.finish().ok_or_else(|| Error::video(input.path(), format!("has {n} frame{}: a video of at least two is needed", if n == 1 { "" } else { "s" })))
}
