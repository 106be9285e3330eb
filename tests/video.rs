//! Video (issue 19): videos through `translate` and `eval --video`, made and
//! checked with Debian's ffmpeg and ffprobe (which `.ci/run` installs), with
//! the fixture generator (resnet_9blocks, ngf 8).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::checkpoints::max_pixel_diff;
use crate::util::{bin, fixture, run, tmp};

fn model() -> String {
    fixture("g_resnet9.pth").to_str().unwrap().to_string()
}

/// Run ffmpeg with `args` (quiet, overwriting), panicking with its stderr if it fails.
fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg is installed (apt install ffmpeg; .ci/run does)");
    assert!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// ffprobe's `key=value` entries of a file's streams.
fn probe(path: &Path) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries", "stream=codec_type,width,height,r_frame_rate,nb_read_frames", "-of", "default=nw=1"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect()
}

/// A still scene to pan over: a softened Mandelbrot set (texture at every scale).
fn scene(dir: &Path) -> PathBuf {
    let path = dir.join("scene.png");
    ffmpeg(&["-f", "lavfi", "-i", "mandelbrot=size=192x160:maxiter=96", "-vf", "gblur=sigma=1.2", "-frames:v", "1", path.to_str().unwrap()]);
    path
}

/// `frames` frames panning over the scene by (1.6, 0.5) px a frame, with a
/// box moving 3 px a frame and per-frame sensor noise, losslessly (FFV1).
pub fn panning_clip(dir: &Path, name: &str, size: (u32, u32), frames: u32, noise: u32) -> PathBuf {
    let scene = scene(dir);
    let path = dir.join(name);
    let filter = format!(
        "[0]crop={}:{}:x='8+1.6*n':y='6+0.5*n'[bg];color=c=orange:s=18x14:r=10[box];[bg][box]overlay=x='10+3*n':y=30,noise=alls={noise}:allf=t,format=rgb24",
        size.0, size.1
    );
    ffmpeg(&["-loop", "1", "-r", "10", "-i", scene.to_str().unwrap(), "-filter_complex", &filter, "-frames:v", &frames.to_string(), "-c:v", "ffv1", path.to_str().unwrap()]);
    path
}

fn translate(args: &[&str]) -> (bool, String, String) {
    translate_with(&model(), args)
}

fn translate_with(m: &str, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["translate", "--model"];
    all.push(m);
    all.extend_from_slice(args);
    run(&all)
}

pub fn pngs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// Only `expected` (and no temporary `.part` file or folder) is in `dir`.
fn assert_only(dir: &Path, expected: &[&str]) {
    let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(names, want, "files in {}", dir.display());
}

fn psnr(a: &Path, b: &Path) -> f64 {
    let a = image::open(a).unwrap().to_rgb8();
    let b = image::open(b).unwrap().to_rgb8();
    let mse = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum::<f64>() / a.as_raw().len() as f64;
    10.0 * (255.0f64.powi(2) / mse.max(1e-12)).log10()
}

pub fn consistency(video: &Path, translated: &Path) -> serde_json::Value {
    let (ok, out, err) = run(&["eval", "--video", video.to_str().unwrap(), "--translated", translated.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn frames_without_temporal_blending_equal_the_frames_translated_as_images() {
    let dir = tmp();
    let clip = panning_clip(dir.path(), "clip.mkv", (64, 48), 7, 4);
    let out = dir.path().join("video_frames");
    let (ok, stdout, err) = translate(&[clip.to_str().unwrap(), "-o", out.to_str().unwrap(), "--temporal", "none"]);
    assert!(ok, "{err}");
    assert!(stdout.contains("translated 7 frames (64x48, 10 fps, temporal none)"), "{stdout}");
    // The same frames, taken out by ffmpeg and translated as images.
    let stills = dir.path().join("stills");
    std::fs::create_dir(&stills).unwrap();
    ffmpeg(&["-i", clip.to_str().unwrap(), stills.join("%06d.png").to_str().unwrap()]);
    let translated_stills = dir.path().join("translated_stills");
    let (ok, _, err) = translate(&[stills.to_str().unwrap(), "-o", translated_stills.to_str().unwrap()]);
    assert!(ok, "{err}");
    let (video_frames, image_frames) = (pngs(&out), pngs(&translated_stills));
    assert_eq!(video_frames.len(), 7);
    assert_eq!(image_frames.len(), 7);
    for (v, i) in video_frames.iter().zip(&image_frames) {
        assert_eq!(v.file_name(), i.file_name());
        assert!(max_pixel_diff(v, i) <= 1, "{}: differs from the image translation by {} levels", v.display(), max_pixel_diff(v, i));
    }
    // Tiled too: the same tiles as for the images.
    let (tiled_video, tiled_stills) = (dir.path().join("tiled_video"), dir.path().join("tiled_stills"));
    let tiling = ["--tile", "32", "--overlap", "8"];
    let (ok, _, err) = translate(&[&[clip.to_str().unwrap(), "-o", tiled_video.to_str().unwrap(), "--temporal", "none"][..], &tiling[..]].concat());
    assert!(ok, "{err}");
    let (ok, _, err) = translate(&[&[stills.to_str().unwrap(), "-o", tiled_stills.to_str().unwrap()][..], &tiling[..]].concat());
    assert!(ok, "{err}");
    let mut tiles_differ = false;
    for ((v, i), untiled) in pngs(&tiled_video).iter().zip(pngs(&tiled_stills)).zip(&video_frames) {
        assert!(max_pixel_diff(v, &i) <= 1, "{}: tiled, differs from the tiled image translation by {} levels", v.display(), max_pixel_diff(v, &i));
        tiles_differ |= max_pixel_diff(v, untiled) > 1;
    }
    assert!(tiles_differ, "--tile made no difference: the video was not tiled");
}

#[test]
fn an_mp4_keeps_frame_count_size_rate_and_audio() {
    let dir = tmp();
    let clip = dir.path().join("in.mp4");
    // 30000/1001 fps, 11 frames, with a sine tone (AAC).
    ffmpeg(&[
        "-f", "lavfi", "-i", "testsrc2=size=80x64:rate=30000/1001", "-f", "lavfi", "-i", "sine=frequency=330",
        "-frames:v", "11", "-t", "0.367", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", clip.to_str().unwrap(),
    ]);
    for name in ["out.mp4", "out.mkv", "out.webm"] {
        let out = dir.path().join(name);
        let (ok, stdout, err) = translate(&[clip.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert!(ok, "{name}: {err}");
        assert!(stdout.contains("translated 11 frames (80x64, 30000/1001 fps, temporal flow)"), "{stdout}");
        let streams = probe(&out);
        for want in ["codec_type=video", "width=80", "height=64", "r_frame_rate=30000/1001", "nb_read_frames=11", "codec_type=audio"] {
            assert!(streams.iter().any(|s| s == want), "{name}: no {want} in {streams:?}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
            assert_ne!(mode & 0o044, 0, "{name} is private to its owner ({mode:o}) like a temporary file");
        }
    }
    assert_only(dir.path(), &["in.mp4", "out.mkv", "out.mp4", "out.webm"]);
}

#[test]
fn a_sequence_folder_becomes_a_video_at_the_given_rate() {
    let dir = tmp();
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    for i in 0..5 {
        std::fs::copy(fixture("img_square.png"), frames.join(format!("f{i:02}.png"))).unwrap();
    }
    let out = dir.path().join("seq.mp4");
    let (ok, stdout, err) = translate(&["--sequence", frames.to_str().unwrap(), "-o", out.to_str().unwrap(), "--fps", "12", "--temporal", "ema"]);
    assert!(ok, "{err}");
    assert!(stdout.contains("translated 5 frames (64x64, 12 fps, temporal ema)"), "{stdout}");
    let streams = probe(&out);
    for want in ["width=64", "height=64", "r_frame_rate=12/1", "nb_read_frames=5"] {
        assert!(streams.iter().any(|s| s == want), "no {want} in {streams:?}");
    }
}

#[test]
fn flow_halves_the_warping_error_and_stays_close_to_the_per_frame_output() {
    let dir = tmp();
    let clip = panning_clip(dir.path(), "clip.mkv", (128, 96), 16, 2);
    let trained = std::env::var("VIDEO_MODEL").unwrap_or_else(|_| fixture("g_video_emoji.safetensors").to_str().unwrap().to_string());
    let mut outputs = Vec::new();
    for temporal in ["none", "flow"] {
        let out = dir.path().join(temporal);
        let (ok, _, err) = translate_with(&trained, &[clip.to_str().unwrap(), "-o", out.to_str().unwrap(), "--temporal", temporal]);
        assert!(ok, "{err}");
        outputs.push(out);
    }
    let per_frame = consistency(&clip, &outputs[0]);
    let steadied = consistency(&clip, &outputs[1]);
    let (before, after) = (per_frame["warping_error"].as_f64().unwrap(), steadied["warping_error"].as_f64().unwrap());
    eprintln!("warping error: per frame {before:.6}, flow {after:.6}; input {}", per_frame["input_warping_error"]);
    assert!(after <= 0.5 * before, "flow: warping error {after} against {before} frame by frame");
    assert_eq!(per_frame["pairs"], 15);
    // Not frozen, no ghost of the moving box: every frame stays close to its own translation.
    let worst = pngs(&outputs[0]).iter().zip(pngs(&outputs[1])).map(|(a, b)| psnr(a, &b)).fold(f64::INFINITY, f64::min);
    eprintln!("lowest PSNR of a flow frame against its per-frame translation: {worst:.1} dB");
    assert!(worst >= 30.0, "a flow frame is {worst:.1} dB from its per-frame translation");
}

#[test]
fn eval_video_refuses_translations_of_another_length_or_size() {
    let dir = tmp();
    let clip = panning_clip(dir.path(), "clip.mkv", (64, 48), 5, 2);
    let short = panning_clip(dir.path(), "short.mkv", (64, 48), 4, 2);
    let (ok, _, err) = run(&["eval", "--video", clip.to_str().unwrap(), "--translated", short.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("short.mkv: has 4 frames, fewer than") && err.lines().count() == 1, "{err}");
    let small = panning_clip(dir.path(), "small.mkv", (32, 48), 5, 2);
    let (ok, _, err) = run(&["eval", "--video", clip.to_str().unwrap(), "--translated", small.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("small.mkv: is 32x48, but") && err.lines().count() == 1, "{err}");
}

#[test]
fn bad_videos_fail_in_one_line_and_leave_nothing() {
    let dir = tmp();
    let d = dir.path();
    let out = d.join("out.mp4");
    let check = |args: &[&str], expected: &str| {
        let (ok, _, err) = translate(args);
        assert!(!ok, "{args:?} succeeded");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    };
    // Not a video.
    std::fs::write(d.join("notes.mp4"), "not a video at all\n").unwrap();
    check(&[d.join("notes.mp4").to_str().unwrap(), "-o", out.to_str().unwrap()], "notes.mp4: not a video ffmpeg can read");
    // Sound only: no video stream.
    ffmpeg(&["-f", "lavfi", "-i", "sine", "-t", "0.2", d.join("tone.m4a").to_str().unwrap()]);
    check(&[d.join("tone.m4a").to_str().unwrap(), "-o", out.to_str().unwrap()], "tone.m4a: has no video stream");
    // A video stream without frames.
    ffmpeg(&["-f", "lavfi", "-i", "testsrc=size=64x48", "-frames:v", "0", "-c:v", "ffv1", d.join("empty.mkv").to_str().unwrap()]);
    check(&[d.join("empty.mkv").to_str().unwrap(), "-o", out.to_str().unwrap()], "empty.mkv: has no frames");
    // Odd sizes cannot be H.264 yuv420p; a folder of frames takes them.
    let odd = panning_clip(d, "odd.mkv", (45, 37), 3, 2);
    check(&[odd.to_str().unwrap(), "-o", out.to_str().unwrap()], "45x37 cannot be stored");
    let (ok, _, err) = translate(&[odd.to_str().unwrap(), "-o", d.join("odd_frames").to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(pngs(&d.join("odd_frames")).len(), 3);
    // A variable frame rate: frames 0.1 s apart, then 0.3 s.
    ffmpeg(&[
        "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-frames:v", "12", "-vf", "setpts='if(lt(N,6),N,3*N-12)/10/TB'",
        "-fps_mode", "vfr", "-c:v", "libx264", d.join("vfr.mp4").to_str().unwrap(),
    ]);
    check(&[d.join("vfr.mp4").to_str().unwrap(), "-o", out.to_str().unwrap()], "vfr.mp4: has a variable frame rate");
    // No ffmpeg where it is named, and none on PATH.
    let clip = panning_clip(d, "clip.mkv", (64, 48), 3, 2);
    check(&[clip.to_str().unwrap(), "-o", out.to_str().unwrap(), "--ffmpeg", "/nonexistent/ffmpeg"], "/nonexistent/ffmpeg: no ffmpeg program there");
    let m = model();
    let no_path = bin().env("PATH", d).env_remove("CYCLEGAN_FFMPEG").args(["translate", "--model", &m, clip.to_str().unwrap(), "-o", out.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&no_path.stderr);
    assert!(!no_path.status.success() && err.contains("ffmpeg was not found on PATH") && err.contains("apt install ffmpeg"), "{err}");
    // Video options for images, and an image name for a video.
    let (ok, _, err) = translate(&[fixture("img_square.png").to_str().unwrap(), "-o", d.join("x.png").to_str().unwrap(), "--temporal", "flow"]);
    assert!(!ok && err.contains("--temporal apply to a video input"), "{err}");
    check(&[clip.to_str().unwrap(), "-o", d.join("frame.png").to_str().unwrap()], "not one image");
    check(&[clip.to_str().unwrap(), "-o", d.join("out.avi").to_str().unwrap()], "out.avi: videos are written as .mp4");
    check(&[clip.to_str().unwrap(), "-o", out.to_str().unwrap(), "--crf", "52"], "--crf 52: H.264 takes 0 to 51");
    check(&[clip.to_str().unwrap(), "-o", d.join("frames_crf").to_str().unwrap(), "--crf", "20"], "--crf sets the quality of a video file output");
    // An encoder that fails mid-way (frames too large for the level asked) leaves no file.
    check(&[clip.to_str().unwrap(), "-o", out.to_str().unwrap(), "--ffmpeg", fake_ffmpeg(d).to_str().unwrap()], "out.mp4: ffmpeg could not write it");
    // Nothing was written but the inputs, the fake ffmpeg and the odd clip's frames.
    let mut expected = vec!["notes.mp4", "tone.m4a", "empty.mkv", "odd.mkv", "odd_frames", "vfr.mp4", "clip.mkv", "scene.png", "bin"];
    expected.sort();
    assert_only(d, &expected);
}

/// A folder `bin` with an `ffmpeg` that reads like the real one (it runs
/// it) but whose encoder exits with an error after the first frame, and the
/// real ffprobe beside it.
fn fake_ffmpeg(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("ffmpeg");
    std::fs::write(
        &script,
        "#!/bin/sh\ncase \" $* \" in\n  *' -f rawvideo -pix_fmt rgb24 -s '*) head -c 100 >/dev/null; echo 'Error: the encoder gave up' >&2; exit 1 ;;\nesac\nexec ffmpeg \"$@\"\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let real = Command::new("sh").args(["-c", "command -v ffprobe"]).output().unwrap();
    std::os::unix::fs::symlink(String::from_utf8_lossy(&real.stdout).trim(), bin.join("ffprobe")).unwrap();
    script
}

#[test]
fn ctrl_c_stops_a_video_and_leaves_no_unfinished_file() {
    let dir = tmp();
    let clip = panning_clip(dir.path(), "long.mkv", (128, 96), 400, 2);
    let out = dir.path().join("out.mp4");
    let m = model();
    let mut child = bin()
        .args(["translate", "--model", &m, clip.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the encoder's temporary file exists: frames are flowing.
    let started = std::time::Instant::now();
    while !std::fs::read_dir(dir.path()).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".part")) {
        assert!(started.elapsed().as_secs() < 30, "no temporary output appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    // The shell's own kill: a machine without procps has no kill program.
    let killed = Command::new("sh").args(["-c", &format!("kill -INT {}", child.id())]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted: removing the unfinished output"), "{err}");
    assert_only(dir.path(), &["long.mkv", "scene.png"]);
}
