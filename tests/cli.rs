//! `cyclegan translate` end to end: what users feed it, good and bad.

use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageBuffer};

use crate::util::{assert_refused, fixture, floats, rel_l2, run, tmp};

/// A small generator to translate with (imported once per test; cheap).
fn generator(dir: &Path) -> PathBuf {
    let g = dir.join("g.safetensors");
    let (ok, _, err) = run(&["import", fixture("g_resnet9.pth").to_str().unwrap(), "--direction", "a2b", "-o", g.to_str().unwrap()]);
    assert!(ok, "{err}");
    g
}

fn translate(g: &Path, inputs: &[&Path], out: &Path) -> (bool, String, String) {
    let mut args = vec!["translate", "--model", g.to_str().unwrap()];
    args.extend(inputs.iter().map(|p| p.to_str().unwrap()));
    args.extend(["-o", out.to_str().unwrap()]);
    run(&args)
}

#[test]
fn gray_rgba_and_16_bit_inputs_give_8_bit_rgb_of_the_same_size() {
    let dir = tmp();
    let g = generator(dir.path());
    let inputs = [
        ("gray.png", DynamicImage::ImageLuma8(ImageBuffer::from_fn(21, 13, |x, y| image::Luma([(x * 9 + y) as u8])))),
        ("rgba.png", DynamicImage::ImageRgba8(ImageBuffer::from_fn(17, 30, |x, y| image::Rgba([x as u8 * 15, y as u8 * 8, 90, (x * 15) as u8])))),
        ("deep.png", DynamicImage::ImageRgb16(ImageBuffer::from_fn(9, 7, |x, y| image::Rgb([x as u16 * 7000, y as u16 * 9000, 40000])))),
        ("photo.jpg", DynamicImage::ImageRgb8(ImageBuffer::from_fn(33, 18, |x, y| image::Rgb([x as u8 * 7, y as u8 * 13, 128])))),
        ("tiny.png", DynamicImage::ImageRgb8(ImageBuffer::from_fn(2, 1, |x, _| image::Rgb([x as u8 * 200, 30, 60])))),
    ];
    for (name, img) in &inputs {
        let path = dir.path().join(name);
        img.save(&path).unwrap();
        let out = dir.path().join(format!("out_{name}"));
        let (ok, stdout, err) = translate(&g, &[&path], &out);
        assert!(ok, "{name}: {err}");
        assert!(stdout.contains("translated 1 image"), "{stdout}");
        let result = image::open(&out).unwrap();
        assert_eq!((result.width(), result.height()), (img.width(), img.height()), "{name}");
        assert!(matches!(result, DynamicImage::ImageRgb8(_)), "{name}: output is not 8-bit RGB");
    }
}

#[test]
fn folders_are_mirrored_recursively_with_a_summary() {
    let dir = tmp();
    let g = generator(dir.path());
    let src = dir.path().join("in");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::copy(fixture("img_square.png"), src.join("a.png")).unwrap();
    std::fs::copy(fixture("img_odd.png"), src.join("sub/b.png")).unwrap();
    std::fs::copy(fixture("img_odd.png"), src.join("sub/deeper/c.png")).unwrap();
    std::fs::write(src.join("notes.txt"), "not an image").unwrap();
    let out = dir.path().join("out");
    let (ok, stdout, err) = translate(&g, &[&src], &out);
    assert!(ok, "{err}");
    assert!(stdout.contains("translated 3 images in"), "{stdout}");
    assert!(stdout.contains("images/s"), "{stdout}");
    for rel in ["a.png", "sub/b.png", "sub/deeper/c.png"] {
        let want = image::open(src.join(rel)).unwrap();
        let got = image::open(out.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!((got.width(), got.height()), (want.width(), want.height()));
    }
    assert!(!out.join("notes.txt").exists());
}

#[test]
fn direction_recorded_in_the_checkpoint_is_enforced() {
    let dir = tmp();
    let g = generator(dir.path());
    let out = dir.path().join("x.png");
    let (ok, _, err) = run(&["translate", "--model", g.to_str().unwrap(), "--direction", "b2a",
        fixture("img_square.png").to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("translates a2b, not b2a"), "{err}");
    assert!(!out.exists());
}

#[test]
fn load_size_rescales_keeping_aspect() {
    let dir = tmp();
    let g = generator(dir.path());
    let out = dir.path().join("x.png");
    let (ok, _, err) = run(&["translate", "--model", g.to_str().unwrap(), "--load-size", "32",
        fixture("img_odd.png").to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    let img = image::open(&out).unwrap();
    // 45x37 scaled to width 32: height round(37 * 32 / 45) = 26
    assert_eq!((img.width(), img.height()), (32, 26));
}

/// A PNG whose header claims `w` x `h` pixels (with a valid CRC) and no data worth decoding.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    DynamicImage::ImageRgb8(ImageBuffer::new(1, 1)).write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    // IHDR data starts at byte 16: width, height; its CRC covers "IHDR" + 13 data bytes.
    bytes[16..20].copy_from_slice(&w.to_be_bytes());
    bytes[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32fast::hash(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

#[test]
fn bad_images_give_one_line_errors_and_no_output() {
    let dir = tmp();
    let g = generator(dir.path());
    let mut truncated = std::fs::read(fixture("img_square.png")).unwrap();
    truncated.truncate(truncated.len() / 2);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("corrupt.png", b"\x89PNG\r\n\x1a\nthis is not really a png at all".to_vec(), "corrupt"),
        ("truncated.png", truncated, "corrupt or truncated"),
        ("empty.png", Vec::new(), "file is empty"),
        ("huge.png", png_claiming(100_000, 100_000), "100000x100000 pixels, over the 16384-pixel limit"),
        ("text.jpg", b"hello".to_vec(), "not an image in a supported format"),
    ];
    for (name, bytes, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = dir.path().join(format!("out_{name}.png"));
        let (ok, _, err) = translate(&g, &[&path], &out);
        assert!(!ok, "{name} accepted");
        let first = err.lines().next().unwrap_or_default();
        assert!(first.contains(name) && first.contains(expected), "{name}: {err}");
        assert!(!out.exists(), "{name}: output written");
        // nothing half-written left beside it either
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{name}: temporary files left");
    }
}

#[test]
fn empty_folder_and_missing_input_are_errors() {
    let dir = tmp();
    let g = generator(dir.path());
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (ok, _, err) = translate(&g, &[&empty], &dir.path().join("out"));
    assert!(!ok);
    assert!(err.contains("empty") && err.contains("no images found"), "{err}");
    let (ok, _, err) = translate(&g, &[&dir.path().join("nope.png")], &dir.path().join("o.png"));
    assert!(!ok);
    assert!(err.contains("nope.png") && err.contains("No such file"), "{err}");
    assert!(!dir.path().join("out").exists());
}

/// Option values that would leave nothing to compute are refused in one line
/// (a zero tile looped forever, a zero load size panicked).
#[test]
fn degenerate_option_values_are_refused() {
    let dir = tmp();
    let g = generator(dir.path());
    let input = fixture("img_odd.png");
    let out = dir.path().join("o.png");
    for (extra, expected) in [
        (&["--tile", "0", "--overlap", "0"][..], "--tile must be at least 1 px"),
        (&["--tile", "32"][..], "--overlap 64 must be at most half the tile (32 px)"),
        (&["--load-size", "0"][..], "invalid value '0' for '--load-size"),
    ] {
        let mut args = vec!["translate", "--model", g.to_str().unwrap(), input.to_str().unwrap(), "-o", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (ok, _, err) = run(&args);
        assert_refused(&extra, ok, &err, expected);
        assert!(!out.exists(), "{extra:?}: wrote output");
    }
    for (case, expected) in [
        ("forward0", "case forward0: the size must be a multiple of 4 and at least 8"),
        ("train16-cut", "case train16-cut: the size must be a multiple of 4 and at least 24"),
        ("inception0", "case inception0: the batch must be at least 1"),
        ("forward64x0", "case forward64x0: the batch must be at least 1"),
        ("sideways", "unknown case sideways (forwardSIZE[xBATCH][-bf16|-f16], trainSIZE[-cut|-fastcut][-small], inceptionBATCH, peak-f32-avx2, peak-f32-avx512, peak-bf16)"),
    ] {
        let (ok, _, err) = run(&["bench", "--cases", case]);
        assert!(!ok, "{case}: accepted");
        assert_eq!(err.trim(), format!("error: {expected}"), "{case}");
    }
}

#[test]
fn one_bad_file_in_a_folder_does_not_stop_the_others() {
    let dir = tmp();
    let g = generator(dir.path());
    let src = dir.path().join("in");
    std::fs::create_dir(&src).unwrap();
    std::fs::copy(fixture("img_square.png"), src.join("good.png")).unwrap();
    std::fs::write(src.join("bad.png"), b"garbage").unwrap();
    let out = dir.path().join("out");
    let (ok, stdout, err) = translate(&g, &[&src], &out);
    assert!(!ok, "a failure must show in the exit code");
    assert!(out.join("good.png").exists());
    assert!(!out.join("bad.png").exists());
    assert!(err.contains("bad.png") && err.contains("1 of 2 images could not be translated"), "{err}");
    assert!(stdout.contains("translated 1 image"), "{stdout}");
}

/// PSNR of two 8-bit RGB image files of the same size (infinite when identical).
fn psnr(a: &Path, b: &Path) -> f64 {
    let (a, b) = (image::open(a).unwrap().to_rgb8(), image::open(b).unwrap().to_rgb8());
    assert_eq!(a.dimensions(), b.dimensions());
    cyclegan::evaluate::psnr_u8(a.as_raw(), b.as_raw())
}

#[test]
fn tiled_translation_matches_untiled() {
    let dir = tmp();
    let g = generator(dir.path());
    // a 300 x 212 mosaic of the fixture images, larger than the 128 px tiles
    let tiles = [image::open(fixture("img_square.png")).unwrap().to_rgb8(), image::open(fixture("img_odd.png")).unwrap().to_rgb8()];
    let big = image::RgbImage::from_fn(300, 212, |x, y| {
        let src = &tiles[(((x / 64) + (y / 64)) % 2) as usize];
        *src.get_pixel(x % src.width(), y % src.height())
    });
    let input = dir.path().join("big.png");
    big.save(&input).unwrap();
    let whole = dir.path().join("whole.png");
    let tiled = dir.path().join("tiled.png");
    assert!(translate(&g, &[&input], &whole).0);
    let (ok, _, err) = run(&["translate", "--model", g.to_str().unwrap(), input.to_str().unwrap(), "-o", tiled.to_str().unwrap(),
        "--tile", "128", "--overlap", "32"]);
    assert!(ok, "{err}");
    let p = psnr(&whole, &tiled);
    assert!(p >= 35.0, "tiled vs untiled: {p:.1} dB");
    // tiles meet in cross-faded seams computed in another order: identical
    // output would mean tiling was not exercised
    assert!(p.is_finite(), "tiled output is identical to untiled: --tile was ignored");
}

/// Whether this CPU has AVX512_BF16 (what `--precision bf16` computes with on the CPU).
fn cpu_has_bf16_dot() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `--precision bf16` on the CPU (issue 16): with AVX512_BF16 the
/// convolutions' products are bf16 (the output differs from f32, at 40 dB
/// or better); without it, or with `CYCLEGAN_SIMD=avx2`, one warning and
/// the f32 output. f16: a warning and f32. The cast networks GPUs run stay
/// close to f32 too.
#[test]
fn reduced_precision_stays_close_to_f32() {
    let dir = tmp();
    let g = generator(dir.path());
    let input = fixture("img_square.png");
    let full = dir.path().join("f32.png");
    assert!(translate(&g, &[&input], &full).0);
    let args = |out: &Path, precision: &str| -> Vec<String> {
        ["translate", "--model", g.to_str().unwrap(), input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--precision", precision]
            .map(String::from)
            .to_vec()
    };
    let run_env = |args: Vec<String>, simd: Option<&str>| {
        let mut cmd = crate::util::bin();
        match simd {
            Some(v) => cmd.env("CYCLEGAN_SIMD", v),
            None => cmd.env_remove("CYCLEGAN_SIMD"),
        };
        let out = cmd.args(&args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).to_string()
    };

    let bf16 = dir.path().join("bf16.png");
    let err = run_env(args(&bf16, "bf16"), None);
    if cpu_has_bf16_dot() {
        assert!(!err.contains("warning"), "{err}");
        let p = psnr(&full, &bf16);
        assert!(p.is_finite() && p >= 40.0, "bf16 products against f32: {p:.1} dB");
    } else {
        assert!(err.contains("warning: --precision bf16: this CPU has no bf16 dot products (AVX512_BF16)"), "{err}");
        assert!(psnr(&full, &bf16).is_infinite(), "bf16 without AVX512_BF16: the f32 output");
    }
    let capped = dir.path().join("capped.png");
    let err = run_env(args(&capped, "bf16"), Some("avx2"));
    let why = if cpu_has_bf16_dot() { "CYCLEGAN_SIMD keeps the CPU's bf16 dot products off" } else { "this CPU has no bf16 dot products" };
    assert!(err.starts_with(&format!("warning: --precision bf16: {why}")) && err.trim_end().ends_with("running in f32"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(psnr(&full, &capped).is_infinite(), "bf16 capped to AVX2: the f32 output");
    let half = dir.path().join("f16.png");
    let err = run_env(args(&half, "f16"), None);
    assert!(err.contains("warning: --precision f16: the CPU kernels compute in f32 and bf16 only"), "{err}");
    assert!(psnr(&full, &half).is_infinite(), "f16 on the CPU: the f32 output");

    for p in [cyclegan::translate::Precision::Bf16, cyclegan::translate::Precision::F16] {
        // the cast network itself (what GPUs run) stays close to f32, and rounds somewhere
        let device = burn::tensor::Device::flex();
        let net = cyclegan::checkpoint::load_generator(&g, &device).unwrap().net;
        let img = cyclegan::image_io::to_data(&image::open(&input).unwrap(), 3);
        let x = img.to_tensor(&device);
        let want = floats(&net.clone().forward(x.clone()).into_data());
        let reduced = p.cast(net).forward(x.cast(p.dtype())).cast(burn::tensor::FloatDType::F32);
        let got = floats(&reduced.into_data());
        let err = rel_l2(&got, &want);
        assert!(err < 0.05 && err > 0.0, "{p:?}: relative error {err:.2e} against f32");
    }
}

/// `CYCLEGAN_SIMD` (issue 16): `devices` says which kernels run and that
/// they are capped; an unknown value is refused in one line before any work.
#[test]
fn simd_cap_is_reported_and_checked() {
    let devices = |simd: &str| {
        let out = crate::util::bin().env("CYCLEGAN_SIMD", simd).args(["devices"]).output().unwrap();
        // (an empty value is no cap)
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (code, out, _) = devices("avx2");
    assert_eq!(code, Some(0));
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        assert!(out.contains("kernels (AVX2, capped by CYCLEGAN_SIMD)"), "{out}");
        let (_, uncapped, _) = devices("");
        assert!(uncapped.contains("kernels (AVX-512)"), "{uncapped}");
    } else if std::arch::is_x86_feature_detected!("avx2") {
        assert!(out.contains("kernels (AVX2)"), "{out}");
    }
    let (code, out, err) = devices("sse9");
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(err, "error: CYCLEGAN_SIMD=sse9: expected avx2 or avx512\n");
}

/// Atomic writes go through a private temporary file; what lands must still be
/// readable as any new file would be (teams share checkpoints and outputs), and
/// a replaced file keeps its mode.
#[cfg(unix)]
#[test]
fn written_files_get_ordinary_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmp();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let plain = dir.path().join("plain");
    std::fs::File::create(&plain).unwrap();
    let g = generator(dir.path());
    let out = dir.path().join("out.png");
    let (ok, _, err) = translate(&g, &[&fixture("img_odd.png")], &out);
    assert!(ok, "{err}");
    assert_eq!(mode(&g), mode(&plain), "import's checkpoint");
    assert_eq!(mode(&out), mode(&plain), "translate's image");
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (ok, _, err) = translate(&g, &[&fixture("img_odd.png")], &out);
    assert!(ok, "{err}");
    assert_eq!(mode(&out), 0o640, "a replaced file keeps its mode");
}

/// `cyclegan devices` (issue 17): the CPU is always there and usable, with
/// what it offers; every cubecl device of this build is listed with fusion on
/// and autotune as built (the `autotune` feature); the JSON says the same.
#[test]
fn devices_lists_what_this_binary_was_built_with() {
    let (ok, out, err) = run(&["devices"]);
    assert!(ok, "{err}");
    let cpu = out.lines().find(|l| l.starts_with("cpu ")).unwrap_or_else(|| panic!("{out}"));
    assert!(cpu.contains("usable") && cpu.contains("threads") && cpu.ends_with("fusion off, autotune off"), "{cpu}");
    let (ok, json, err) = run(&["devices", "--json"]);
    assert!(ok, "{err}");
    let devices: serde_json::Value = serde_json::from_str(&json).unwrap();
    let devices = devices.as_array().unwrap();
    assert_eq!(devices.len(), out.lines().count(), "one entry per line");
    assert_eq!(devices[0]["device"], "cpu");
    assert_eq!(devices[0]["usable"], true);
    let names: Vec<&str> = devices.iter().map(|d| d["device"].as_str().unwrap()).collect();
    assert_eq!(names.contains(&"jit"), cfg!(feature = "jit"));
    assert_eq!(names.contains(&"cuda"), cfg!(feature = "cuda"));
    assert_eq!(names.contains(&"wgpu"), cfg!(feature = "wgpu"));
    // fusion on the cubecl devices (with the patched burn-cubecl-fusion), never on flex; autotune as built
    let autotune = |d: &serde_json::Value| cfg!(feature = "autotune") && d["device"] != "cpu";
    assert!(devices.iter().all(|d| d["fusion"] == (d["device"] != "cpu") && d["autotune"] == autotune(d)), "{json}");
}

/// The peak cases run the instructions the CPU has (one core's GFLOP/s in
/// the JSON) and refuse the ones it lacks by name.
#[test]
fn bench_peak_cases_report_gflops_or_say_what_the_cpu_lacks() {
    for case in ["peak-f32-avx2", "peak-f32-avx512", "peak-bf16"] {
        let (ok, stdout, err) = run(&["bench", "--json", "--cases", case, "--repeats", "1"]);
        if ok {
            let m: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
            let gflops = m["gflops"].as_f64().unwrap();
            // The slowest x86 core of the last decade does over 10 with AVX2.
            assert!(gflops > 10.0 && gflops < 2000.0, "{case}: {gflops} GFLOP/s");
            assert_eq!(m["threads"], 1, "{case}");
        } else {
            assert!(err.starts_with(&format!("error: case {case}: this CPU has no ")), "{case}: {err}");
        }
    }
}
