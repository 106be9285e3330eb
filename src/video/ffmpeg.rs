//! ffmpeg as a subprocess: what a video holds (ffprobe), its frames as raw
//! RGB over a pipe, and raw RGB frames back into a video file.
//!
//! Frames stream through pipes one at a time, so memory does not grow with
//! the length of a video. Each child's stderr is drained by a thread (a full
//! stderr pipe would stall it) and its last line becomes the error if the
//! child fails. The encoder writes a temporary file beside the target, which
//! is renamed over it only when ffmpeg has finished without error.

use std::ffi::OsString;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread::JoinHandle;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The ffmpeg and ffprobe programs.
#[derive(Clone, Debug)]
pub struct Ffmpeg {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    /// ffmpeg before 5.1 (Ubuntu 22.04 has 4.4) names `-fps_mode` `-vsync`.
    old_vsync: bool,
}

const INSTALL_HINT: &str = "install it (Debian/Ubuntu: apt install ffmpeg; macOS: brew install ffmpeg) or name it with --ffmpeg PATH";

impl Ffmpeg {
    /// `explicit` (`--ffmpeg PATH`), else `ffmpeg` on `PATH`; ffprobe is the
    /// one in the same folder (ffmpeg's packages install both).
    pub fn locate(explicit: Option<&Path>) -> Result<Self> {
        let ffmpeg = match explicit {
            Some(path) if is_executable(path) => path.to_path_buf(),
            Some(path) => return Err(Error::Usage(format!("{}: no ffmpeg program there; {INSTALL_HINT}", path.display()))),
            None => on_path("ffmpeg").ok_or_else(|| Error::Usage(format!("ffmpeg was not found on PATH (videos are read and written by it); {INSTALL_HINT}")))?,
        };
        let name = ffmpeg.file_name().map(|n| n.to_string_lossy().replace("ffmpeg", "ffprobe")).unwrap_or_default();
        let ffprobe = ffmpeg.with_file_name(if name.contains("ffprobe") { name } else { "ffprobe".into() });
        if !is_executable(&ffprobe) {
            return Err(Error::Usage(format!("{}: ffprobe, which comes with ffmpeg, is missing there; {INSTALL_HINT}", ffprobe.display())));
        }
        let old_vsync = version(&ffmpeg).is_some_and(|v| v < (5, 1));
        Ok(Self { ffmpeg, ffprobe, old_vsync })
    }

    /// What `path` holds: its first video stream's size, rate and frame
    /// count, and its first audio stream. Refuses files that are not videos,
    /// videos without frames and variable frame rates (their timing would
    /// be lost: a translated video has one rate).
    pub fn probe(&self, path: &Path) -> Result<VideoInfo> {
        if !path.is_file() {
            let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
            if meta.is_dir() {
                return Err(Error::video(path, "is a folder: give --sequence to read a folder of frames as a video"));
            }
        }
        let out = run_capture(
            &self.ffprobe,
            &[
                "-v", "error", "-show_entries",
                "stream=index,codec_type,codec_name,width,height,r_frame_rate,avg_frame_rate:stream_disposition=attached_pic",
                "-of", "json",
            ],
            path,
        )?;
        let parsed: Probe = serde_json::from_slice(&out).map_err(|e| Error::video(path, format!("ffprobe's answer could not be read: {e}")))?;
        let video = parsed
            .streams
            .iter()
            .find(|s| s.codec_type == "video" && s.disposition.as_ref().is_none_or(|d| d.attached_pic == 0))
            .ok_or_else(|| Error::video(path, "has no video stream"))?;
        let (Some(width), Some(height)) = (video.width, video.height) else {
            return Err(Error::video(path, "its video stream has no size"));
        };
        if width == 0 || height == 0 {
            return Err(Error::video(path, format!("its video stream is {width}x{height}")));
        }
        let audio = parsed.streams.iter().find(|s| s.codec_type == "audio").map(|s| s.codec_name.clone().unwrap_or_default());
        let index = video.index;
        let times = run_capture(
            &self.ffprobe,
            &["-v", "error", "-select_streams", &index.to_string(), "-show_entries", "packet=pts_time", "-of", "csv=p=0"],
            path,
        )?;
        let times = String::from_utf8_lossy(&times);
        let packets: Vec<&str> = times.lines().map(|l| l.trim().trim_end_matches(',')).filter(|l| !l.is_empty()).collect();
        // A packet without a time (N/A) counts as a frame but not towards the rate.
        let mut pts: Vec<f64> = packets.iter().filter_map(|l| l.parse().ok()).collect();
        let packets = packets.len() as u64;
        if packets == 0 {
            return Err(Error::video(path, "has no frames"));
        }
        pts.sort_by(f64::total_cmp);
        let rate = Rate::parse(&video.r_frame_rate)
            .or_else(|| Rate::parse(&video.avg_frame_rate))
            .ok_or_else(|| Error::video(path, "its frame rate is unknown"))?;
        if let Some((shortest, longest)) = frame_interval_spread(&pts) {
            return Err(Error::video(
                path,
                format!(
                    "has a variable frame rate (frames {:.1} to {:.1} ms apart), which one output rate cannot keep; make it constant first, e.g. ffmpeg -i IN -fps_mode cfr -r {} OUT",
                    shortest * 1e3,
                    longest * 1e3,
                    rate
                ),
            ));
        }
        Ok(VideoInfo { width, height, rate, frames: packets, audio, stream: index })
    }

    /// Start decoding `path`'s video stream to raw RGB frames.
    pub fn read(&self, path: &Path, info: &VideoInfo) -> Result<FrameReader> {
        let mut command = Command::new(&self.ffmpeg);
        // -noautorotate: frames come as stored, the size ffprobe reported.
        command.args(["-nostdin", "-v", "error", "-noautorotate", "-i"]).arg(path);
        // Every decoded frame once, none duplicated or dropped for a rate.
        let vsync = if self.old_vsync { "-vsync" } else { "-fps_mode" };
        command.args(["-map", &format!("0:{}", info.stream), vsync, "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]);
        let mut child = spawn(command, &self.ffmpeg, Stdio::null(), Stdio::piped())?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = drain_stderr(&mut child);
        Ok(FrameReader {
            child,
            stdout,
            stderr: Some(stderr),
            frame_bytes: info.width as usize * info.height as usize * 3,
            path: path.to_path_buf(),
        })
    }

    /// Start encoding frames of `width` x `height` at `rate` into `target`
    /// (a temporary file beside it until [`FrameWriter::finish`]), with the
    /// audio of `audio_from` if it has any.
    pub fn write(&self, target: &Path, format: VideoFormat, size: (u32, u32), rate: Rate, crf: u8, audio_from: Option<(&Path, &str)>) -> Result<FrameWriter> {
        let (width, height) = size;
        let (dir, prefix) = crate::fs::temporary_beside(target);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".part");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // A new file's permissions (narrowed by the umask), not a temporary file's private 0600.
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let temp = builder
            .tempfile_in(&dir)
            .map_err(|e| Error::io(target, e))?
            .into_temp_path();
        let mut command = Command::new(&self.ffmpeg);
        command.args(["-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24"]);
        command.args(["-s", &format!("{width}x{height}"), "-framerate", &rate.to_string(), "-i", "-"]);
        if let Some((source, _)) = audio_from {
            command.arg("-i").arg(source);
            command.args(["-map", "0:v", "-map", "1:a:0?"]);
        }
        command.args(format.video_args(crf));
        if let Some((_, codec)) = audio_from {
            command.args(["-c:a", format.audio_codec(codec)]);
        }
        command.args(["-f", format.muxer()]).arg(&*temp);
        let mut child = spawn(command, &self.ffmpeg, Stdio::piped(), Stdio::null())?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stderr = drain_stderr(&mut child);
        Ok(FrameWriter {
            child,
            stdin: Some(stdin),
            stderr: Some(stderr),
            frame_bytes: width as usize * height as usize * 3,
            temp: Some(temp),
            target: target.to_path_buf(),
        })
    }
}

/// What [`Ffmpeg::probe`] found in a video.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    pub rate: Rate,
    /// Frames in the video stream (its packets).
    pub frames: u64,
    /// The codec of its first audio stream, if it has one.
    pub audio: Option<String>,
    stream: usize,
}

/// A frame rate as ffmpeg writes it, `30000/1001`: kept exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub num: u32,
    pub den: u32,
}

impl Rate {
    pub fn parse(text: &str) -> Option<Self> {
        let (num, den) = text.split_once('/').unwrap_or((text, "1"));
        let (num, den) = (num.trim().parse().ok()?, den.trim().parse().ok()?);
        (num > 0 && den > 0).then_some(Self { num, den })
    }

    pub fn per_second(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.den == 1 { write!(f, "{}", self.num) } else { write!(f, "{}/{}", self.num, self.den) }
    }
}

/// The shortest and longest gaps between frames if they differ by more than
/// a quarter of the usual gap (timestamps are rounded to the stream's time
/// base, so a constant rate still jitters by a tick).
fn frame_interval_spread(sorted_pts: &[f64]) -> Option<(f64, f64)> {
    let mut gaps: Vec<f64> = sorted_pts.windows(2).map(|w| w[1] - w[0]).collect();
    if gaps.len() < 2 {
        return None;
    }
    gaps.sort_by(f64::total_cmp);
    let median = gaps[gaps.len() / 2];
    let (shortest, longest) = (gaps[0], gaps[gaps.len() - 1]);
    (median > 0.0 && (longest - median > 0.25 * median || median - shortest > 0.25 * median)).then_some((shortest, longest))
}

/// The container and codecs an output video's extension asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoFormat {
    /// `.mp4`, `.m4v`: H.264, yuv420p.
    Mp4,
    /// `.mov`: H.264, yuv420p.
    Mov,
    /// `.mkv`: H.264, yuv420p; any audio copied.
    Mkv,
    /// `.webm`: VP9, yuv420p; Opus or Vorbis audio.
    Webm,
}

impl VideoFormat {
    /// The default `--crf`: visually lossless for H.264 (libx264's scale,
    /// 0-51), about the same quality for VP9 (0-63).
    pub const DEFAULT_CRF: u8 = 18;

    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "mp4" | "m4v" => Self::Mp4,
            "mov" => Self::Mov,
            "mkv" => Self::Mkv,
            "webm" => Self::Webm,
            _ => return None,
        })
    }

    fn muxer(self) -> &'static str {
        match self {
            Self::Mp4 => "mp4",
            Self::Mov => "mov",
            Self::Mkv => "matroska",
            Self::Webm => "webm",
        }
    }

    fn video_args(self, crf: u8) -> Vec<String> {
        let crf = crf.to_string();
        let mut args: Vec<&str> = match self {
            Self::Webm => vec!["-c:v", "libvpx-vp9", "-b:v", "0", "-row-mt", "1", "-crf", &crf],
            _ => vec!["-c:v", "libx264", "-preset", "medium", "-crf", &crf],
        };
        args.extend(["-pix_fmt", "yuv420p"]);
        if matches!(self, Self::Mp4 | Self::Mov) {
            args.extend(["-movflags", "+faststart"]);
        }
        args.into_iter().map(String::from).collect()
    }

    /// Copy the audio where the container takes its codec, else re-encode it.
    fn audio_codec(self, codec: &str) -> &'static str {
        match self {
            Self::Mkv => "copy",
            Self::Webm if matches!(codec, "opus" | "vorbis") => "copy",
            Self::Webm => "libopus",
            Self::Mp4 | Self::Mov if matches!(codec, "aac" | "mp3" | "ac3" | "eac3" | "alac" | "opus") => "copy",
            Self::Mp4 | Self::Mov => "aac",
        }
    }

    /// Whether `crf` is on this format's encoder's scale (H.264 0-51, VP9 0-63).
    pub fn check_crf(self, crf: u8) -> Result<()> {
        let most = if self == Self::Webm { 63 } else { 51 };
        if crf > most {
            return Err(Error::Usage(format!("--crf {crf}: {} takes 0 to {most}", if self == Self::Webm { "VP9" } else { "H.264" })));
        }
        Ok(())
    }

    /// Whether this format stores `width` x `height` (yuv420p halves the
    /// colour planes, so both must be even).
    pub fn check_size(self, path: &Path, width: u32, height: u32) -> Result<()> {
        if width % 2 == 1 || height % 2 == 1 {
            return Err(Error::video(
                path,
                format!("frames of {width}x{height} cannot be stored: H.264 and VP9 in yuv420p need even sizes; write PNG frames to a folder instead, or give a --load-size that makes both sides even"),
            ));
        }
        Ok(())
    }
}

/// Decoded frames of one video, in order.
pub struct FrameReader {
    child: Child,
    stdout: ChildStdout,
    stderr: Option<JoinHandle<String>>,
    frame_bytes: usize,
    path: PathBuf,
}

impl FrameReader {
    /// The next frame as `width * height * 3` RGB bytes, `None` after the last.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>> {
        let mut frame = vec![0u8; self.frame_bytes];
        let mut filled = 0;
        while filled < frame.len() {
            match self.stdout.read(&mut frame[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(&self.path, e)),
            }
        }
        if filled == frame.len() {
            return Ok(Some(frame));
        }
        let status = self.child.wait().map_err(|e| Error::io(&self.path, e))?;
        let stderr = self.stderr.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default();
        if !status.success() {
            return Err(Error::video(&self.path, format!("ffmpeg could not decode it: {}", last_line(&stderr, status))));
        }
        if filled > 0 {
            return Err(Error::video(&self.path, "ended in the middle of a frame"));
        }
        Ok(None)
    }
}

impl Drop for FrameReader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An encoder taking frames, writing a temporary file beside its target.
pub struct FrameWriter {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Option<JoinHandle<String>>,
    frame_bytes: usize,
    /// Removed when dropped, unless [`FrameWriter::finish`] renamed it into place.
    temp: Option<tempfile::TempPath>,
    target: PathBuf,
}

impl FrameWriter {
    /// Encode one frame of RGB bytes.
    pub fn write_frame(&mut self, rgb: &[u8]) -> Result<()> {
        assert_eq!(rgb.len(), self.frame_bytes, "frame of the size the encoder was started with");
        let stdin = self.stdin.as_mut().expect("open until finish");
        if let Err(e) = stdin.write_all(rgb) {
            if e.kind() == ErrorKind::BrokenPipe {
                return Err(self.failure());
            }
            return Err(Error::io(&self.target, e));
        }
        Ok(())
    }

    /// Close the stream, wait for ffmpeg, and rename the file into place.
    pub fn finish(mut self) -> Result<()> {
        drop(self.stdin.take());
        let status = self.child.wait().map_err(|e| Error::io(&self.target, e))?;
        if !status.success() {
            return Err(self.failure());
        }
        let temp = self.temp.take().expect("kept until finish");
        temp.persist(&self.target).map_err(|e| Error::io(&self.target, e.error))?;
        Ok(())
    }

    fn failure(&mut self) -> Error {
        drop(self.stdin.take());
        let status = self.child.wait();
        let stderr = self.stderr.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default();
        let why = match status {
            Ok(status) => last_line(&stderr, status),
            Err(e) => e.to_string(),
        };
        Error::video(&self.target, format!("ffmpeg could not write it: {why}"))
    }
}

impl Drop for FrameWriter {
    fn drop(&mut self) {
        if self.temp.is_some() {
            drop(self.stdin.take());
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    streams: Vec<ProbeStream>,
}

#[derive(Deserialize)]
struct ProbeStream {
    index: usize,
    #[serde(default)]
    codec_type: String,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    #[serde(default)]
    r_frame_rate: String,
    #[serde(default)]
    avg_frame_rate: String,
    disposition: Option<Disposition>,
}

#[derive(Deserialize)]
struct Disposition {
    #[serde(default)]
    attached_pic: u8,
}

fn spawn(mut command: Command, program: &Path, stdin: Stdio, stdout: Stdio) -> Result<Child> {
    command.stdin(stdin).stdout(stdout).stderr(Stdio::piped());
    command.spawn().map_err(|e| Error::Usage(format!("{}: could not be started ({e}); {INSTALL_HINT}", program.display())))
}

/// Run ffprobe on `path`, returning its stdout, or an error naming `path`
/// with ffprobe's last line.
fn run_capture(program: &Path, args: &[&str], path: &Path) -> Result<Vec<u8>> {
    let mut command = Command::new(program);
    command.args(args).arg(path);
    let child = spawn(command, program, Stdio::null(), Stdio::piped())?;
    let out = child.wait_with_output().map_err(|e| Error::io(path, e))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = last_line(&stderr, out.status);
        if why == "End of file" {
            // A container whose video stream ends before its first frame.
            return Err(Error::video(path, "has no frames (it ends before the first)"));
        }
        return Err(Error::video(path, format!("not a video ffmpeg can read ({why})")));
    }
    Ok(out.stdout)
}

fn drain_stderr(child: &mut Child) -> JoinHandle<String> {
    let mut stderr = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The last line a child wrote to stderr, without the file name ffmpeg
/// puts first (the error names the file already), or its exit status.
fn last_line(stderr: &str, status: std::process::ExitStatus) -> String {
    match stderr.lines().map(str::trim).rfind(|l| !l.is_empty()) {
        Some(line) => line.rsplit_once(": ").filter(|(head, _)| head.contains('/') || head.contains('.')).map_or(line, |(_, tail)| tail).to_string(),
        None => format!("it exited with {status}"),
    }
}

/// ffmpeg's release (major, minor) from `ffmpeg -version`'s first line
/// (`ffmpeg version 5.1.9-0+deb12u1 ...`, `ffmpeg version n6.0 ...`); `None`
/// for builds from git (`N-112345-g...`), which are newer than any release.
fn version(ffmpeg: &Path) -> Option<(u32, u32)> {
    let out = Command::new(ffmpeg).arg("-version").stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    parse_version(String::from_utf8_lossy(&out.stdout).lines().next()?)
}

fn parse_version(line: &str) -> Option<(u32, u32)> {
    let word = line.strip_prefix("ffmpeg version ")?.split_whitespace().next()?;
    let digits = word.trim_start_matches('n');
    let mut parts = digits.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

fn on_path(name: &str) -> Option<PathBuf> {
    let paths: OsString = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print_exactly() {
        assert_eq!(Rate::parse("30000/1001"), Some(Rate { num: 30000, den: 1001 }));
        assert_eq!(Rate::parse("25/1").map(|r| r.to_string()), Some("25".into()));
        assert_eq!(Rate::parse("0/0"), None);
        assert!((Rate::parse("30000/1001").unwrap().per_second() - 29.97).abs() < 1e-2);
    }

    #[test]
    fn a_constant_rate_with_rounded_timestamps_is_constant_and_a_skipped_run_is_not() {
        let cfr: Vec<f64> = (0..50).map(|i| (i as f64 * 1001.0 / 30000.0 * 1000.0).round() / 1000.0).collect();
        assert_eq!(frame_interval_spread(&cfr), None);
        let mut vfr = cfr.clone();
        vfr.extend((0..10).map(|i| cfr[49] + 0.1 * (i + 1) as f64));
        assert!(frame_interval_spread(&vfr).is_some());
    }

    #[test]
    fn versions_are_read_from_releases_and_distribution_builds() {
        assert_eq!(parse_version("ffmpeg version 5.1.9-0+deb12u1 Copyright (c) 2000-2026"), Some((5, 1)));
        assert_eq!(parse_version("ffmpeg version 4.4.2-0ubuntu0.22.04.1 Copyright"), Some((4, 4)));
        assert_eq!(parse_version("ffmpeg version n6.0 Copyright"), Some((6, 0)));
        assert_eq!(parse_version("ffmpeg version N-112345-gabcdef Copyright"), None);
    }

    #[test]
    fn crf_is_checked_on_each_encoder_s_scale() {
        assert!(VideoFormat::Mp4.check_crf(51).is_ok());
        assert!(VideoFormat::Webm.check_crf(63).is_ok());
        let err = VideoFormat::Mkv.check_crf(52).unwrap_err().to_string();
        assert_eq!(err, "--crf 52: H.264 takes 0 to 51");
    }

    #[test]
    fn odd_sizes_are_refused_for_yuv420p() {
        assert!(VideoFormat::Mp4.check_size(Path::new("o.mp4"), 64, 48).is_ok());
        let err = VideoFormat::Webm.check_size(Path::new("o.webm"), 45, 48).unwrap_err().to_string();
        assert!(err.contains("45x48") && err.contains("even"), "{err}");
    }
}
