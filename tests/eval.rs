//! `cyclegan eval` (issue 9): pytorch-fid's Inception, FID and KID against the
//! reference packages' numbers (tests/fixtures/eval_*, made by
//! scripts/make_eval_fixtures.py), paired measures, and the command end to end.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::tensor::{Device, TensorData};
use cyclegan::checkpoint::{self, StateDict};
use cyclegan::evaluate::features::extract_files;
use cyclegan::evaluate::fid::{Gaussian, fid, frechet_distance};
use cyclegan::evaluate::inception::Inception;
use cyclegan::evaluate::kid::{KidOptions, kid};
use cyclegan::evaluate::paired::{l1_u8, psnr_u8, ssim};
use serde_json::Value;

use crate::util::{Fixture, assert_refused, fixture, floats, rel_l2, run, tmp};

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("eval_expected.json")).unwrap()).unwrap()
}

/// The fixture script's `formula_value`: splitmix64 of FNV-1a-64(key) + i, as n values in [-1, 1).
fn formula_value(key: &str, n: usize) -> Vec<f64> {
    let base = key.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01B3));
    (0..n as u64)
        .map(|i| {
            let mut z = base.wrapping_add(i).wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            2.0 * ((z >> 11) as f64 * 2f64.powi(-53)) - 1.0
        })
        .collect()
}

/// The fixture script's `formula_tensor`.
fn formula_tensor(key: &str, shape: &[usize]) -> Vec<f32> {
    let v = formula_value(key, shape.iter().product());
    let map = |f: &dyn Fn(f64) -> f64| v.iter().map(|x| f(*x) as f32).collect();
    if key.ends_with("conv.weight") {
        let scale = (6.0 / (shape[1] * shape[2] * shape[3]) as f64).sqrt();
        map(&|x| x * scale)
    } else if key.ends_with("bn.weight") {
        map(&|x| 1.0 + 0.2 * x)
    } else if key.ends_with("bn.running_var") {
        map(&|x| 1.0 + 0.25 * (x + 1.0))
    } else {
        map(&|x| 0.2 * x) // bn.bias, bn.running_mean
    }
}

fn formula_inception(device: &Device) -> Inception {
    Inception::build(&mut |key, shape| Ok(formula_tensor(key, shape)), device).unwrap()
}

/// The formula network as a weights file in pytorch-fid's layout (written once per test run).
fn formula_weights_file() -> &'static Path {
    static FILE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = FILE.get_or_init(|| {
        let dir = tmp();
        let path = dir.path().join("inception_formula.safetensors");
        let mut dict = StateDict::default();
        Inception::build(
            &mut |key, shape| {
                dict.insert(key.to_string(), TensorData::new(formula_tensor(key, shape), shape.to_vec()));
                Ok(formula_tensor(key, shape))
            },
            &Device::flex(),
        )
        .unwrap();
        checkpoint::save_dict(&path, &dict, Default::default()).unwrap();
        (dir, path)
    });
    path
}

#[test]
fn inception_features_match_pytorch_fid_on_odd_sizes_and_alpha() {
    let net = formula_inception(&Device::flex());
    let files: Vec<PathBuf> = ["img_odd.png", "img_square.png", "eval_rgba.png"].iter().map(|n| fixture(n)).collect();
    // batches of two: one full batch of different sizes, one partial
    let out = extract_files(&net, &files, 2, &mut |_| {});
    assert!(out.skipped.is_empty());
    let want = floats(&Fixture::open("eval_inception").data("features"));
    for (i, name) in ["45x37", "64x64", "33x21 RGBA"].iter().enumerate() {
        let (got, want) = (&out.set.features[i * 2048..(i + 1) * 2048], &want[i * 2048..(i + 1) * 2048]);
        let err = rel_l2(got, want);
        assert!(err < 1e-4, "{name}: pool3 features {err:.2e} from pytorch-fid's");
    }
}

#[test]
fn fid_and_kid_equal_pytorch_fid_and_torch_fidelity() {
    let fx = Fixture::open("eval_sets");
    for (name, case) in expected()["sets"].as_object().unwrap() {
        let dims = case["dims"].as_u64().unwrap() as usize;
        let (a, b) = (floats(&fx.data(&format!("{name}.a"))), floats(&fx.data(&format!("{name}.b"))));
        let close = |what: &str, got: f64, want: &Value| {
            let want = want.as_f64().unwrap();
            let rel = (got - want).abs() / want.abs();
            assert!(rel < 1e-6, "{name} {what}: ours {got}, reference {want} (relative {rel:.1e})");
        };
        close("FID (covariances)", frechet_distance(&Gaussian::of(&a, dims), &Gaussian::of(&b, dims)), &case["fid"]);
        close("FID", fid(&a, &b, dims), &case["fid"]);
        let subsets = case["kid_subsets"].as_u64().unwrap() as usize;
        let size = case["kid_subset_size"].as_u64().unwrap() as usize;
        let k = kid(&a, &b, dims, KidOptions { subsets, subset_size: size });
        close("KID", k.mean, &case["kid"]);
        close("KID std", k.std, &case["kid_std"]);
        // a subset size over the smaller set is capped to it
        let k = kid(&a, &b, dims, KidOptions { subsets, subset_size: 100_000 });
        close("capped KID", k.mean, &case["kid_capped"]);
        close("capped KID std", k.std, &case["kid_capped_std"]);
    }
    // the deficient case really is rank-deficient: 60 and 50 vectors in 256 dimensions
    assert_eq!(expected()["sets"]["deficient"]["dims"], 256);
}

#[test]
fn paired_measures_equal_scikit_image() {
    for (pair, want) in expected()["paired"].as_object().unwrap() {
        let (a, b) = pair.split_once(' ').unwrap();
        let a = image::open(fixture(a)).unwrap().to_rgb8();
        let b = image::open(fixture(b)).unwrap().to_rgb8();
        let close = |what: &str, got: f64| {
            let want = want[what].as_f64().unwrap();
            assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{pair} {what}: ours {got}, reference {want}");
        };
        close("l1", l1_u8(a.as_raw(), b.as_raw()));
        close("psnr", psnr_u8(a.as_raw(), b.as_raw()));
        close("ssim", ssim(&a, &b));
    }
}

/// A folder holding copies of the named fixture images.
pub fn folder(dir: &Path, name: &str, images: &[&str]) -> PathBuf {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    for img in images {
        std::fs::copy(fixture(img), out.join(img)).unwrap();
    }
    out
}

pub fn eval(args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["eval", "--inception", formula_weights_file().to_str().unwrap(), "--kid-subsets", "4"];
    all.extend_from_slice(args);
    run(&all)
}

#[test]
fn eval_command_scores_folders_saves_stats_and_reuses_them() {
    let dir = tmp();
    let real = folder(dir.path(), "real", &["img_square.png", "train_a0.png"]);
    let fake = folder(dir.path(), "fake", &["img_odd.png", "train_b0.png"]);
    std::fs::write(fake.join("broken.png"), b"not a png").unwrap();
    let stats = dir.path().join("real_stats.safetensors");
    let (ok, out, err) =
        eval(&["--real", real.to_str().unwrap(), "--fake", fake.to_str().unwrap(), "--json", "--save-stats", stats.to_str().unwrap()]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["n_real"].as_u64(), v["n_fake"].as_u64()), (Some(2), Some(2)), "{v}");
    assert!(err.contains("broken.png"), "the unreadable file is named: {err}");
    assert_eq!(v["skipped"].as_array().unwrap().len(), 1);

    // the command computes what the library computes on the same files
    let net = formula_inception(&Device::flex());
    let files = |d: &Path| cyclegan::data::folder::images_in(d).unwrap();
    let (r, f) = (extract_files(&net, &files(&real), 50, &mut |_| {}), extract_files(&net, &files(&fake), 50, &mut |_| {}));
    let want = cyclegan::evaluate::report::scores(&r.set, &f.set, KidOptions { subsets: 4, subset_size: 1000 });
    let fid = v["fid"].as_f64().unwrap();
    assert!(fid > 0.0 && (fid - want.fid).abs() <= 1e-6 * want.fid, "FID {fid} vs {}", want.fid);
    assert!((v["kid"].as_f64().unwrap() - want.kid).abs() <= 1e-6 * want.kid.abs(), "KID {v}");
    assert_eq!(v["kid_subset_size"], 2, "capped at the smaller set");

    // the saved statistics stand in for the folder, and the text line says the same
    let (ok, out, err) = eval(&["--real", stats.to_str().unwrap(), "--fake", fake.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.starts_with(&format!("FID {fid:.2}  KID ")), "{out}");
    assert!(out.contains("(2 real, 2 fake; 1 unreadable skipped)"), "{out}");
}

#[test]
fn eval_paired_measures_files_of_the_same_name() {
    let dir = tmp();
    let real = folder(dir.path(), "real", &["train_a0.png", "img_square.png"]);
    let fake = dir.path().join("fake");
    std::fs::create_dir_all(&fake).unwrap();
    // fake/train_a0.png is train_b0, fake/img_square.png is train_a0: the pairs the fixture script scored
    std::fs::copy(fixture("train_b0.png"), fake.join("train_a0.png")).unwrap();
    std::fs::copy(fixture("train_a0.png"), fake.join("img_square.png")).unwrap();
    std::fs::copy(fixture("img_odd.png"), fake.join("only_here.png")).unwrap();
    let (ok, out, err) = eval(&["--real", real.to_str().unwrap(), "--fake", fake.to_str().unwrap(), "--paired", "--json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let p = &v["paired"];
    let want = &expected()["paired"];
    let ssim = |k: &str| want[k]["ssim"].as_f64().unwrap();
    assert!((p["files"]["train_a0.png"]["ssim"].as_f64().unwrap() - ssim("train_a0.png train_b0.png")).abs() < 1e-9, "{p}");
    let mean = (ssim("train_a0.png train_b0.png") + ssim("img_square.png train_a0.png")) / 2.0;
    assert!((p["mean_ssim"].as_f64().unwrap() - mean).abs() < 1e-9, "{p}");
    assert_eq!(p["unmatched"], serde_json::json!(["only_here.png"]));
}

#[test]
fn eval_bad_input_gives_one_line_errors() {
    let dir = tmp();
    let two = folder(dir.path(), "two", &["img_square.png", "img_odd.png"]);
    let one = folder(dir.path(), "one", &["img_square.png"]);
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (two, one, empty) = (two.to_str().unwrap(), one.to_str().unwrap(), empty.to_str().unwrap());
    let generator = fixture("g_resnet9.pth");
    let cases: [(Vec<&str>, &str); 4] = [
        (vec!["--real", two, "--fake", empty], "no images found"),
        (vec!["--real", two, "--fake", one], "at least two readable images; 1 of 1"),
        (vec!["eval", "--inception", "/nonexistent/pt_inception.pth", "--real", two, "--fake", two], "/nonexistent/pt_inception.pth"),
        (vec!["eval", "--inception", generator.to_str().unwrap(), "--real", two, "--fake", two], "is not pytorch-fid's Inception v3"),
    ];
    for (args, expected) in cases {
        let (ok, _, err) = if args[0] == "eval" { run(&args) } else { eval(&args) };
        assert_refused(&args, ok, &err, expected);
    }
    // no weights anywhere and none to be fetched: says where to get them
    let home = dir.path().join("home");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cyclegan"))
        .args(["eval", "--real", two, "--fake", two])
        .env("HOME", &home)
        .env_remove("XDG_CACHE_HOME")
        .env_remove("TORCH_HOME")
        .env_remove("CYCLEGAN_INCEPTION")
        .env("CYCLEGAN_INCEPTION_URL", "http://127.0.0.1:9/pt_inception.pth")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no Inception weights") && err.contains("--inception FILE"), "{err}");
    assert!(!home.join(".cache/cyclegan/pt_inception-2015-12-05-6726825d.pth").exists(), "nothing half-written");

    // a server that sends something else: refused by its SHA-256, nothing kept in the cache
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/pt_inception.pth", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let _ = conn.read(&mut request).unwrap();
        let body = b"not the weights";
        write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).unwrap();
        conn.write_all(body).unwrap();
    });
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cyclegan"))
        .args(["eval", "--real", two, "--fake", two])
        .env("HOME", &home)
        .env_remove("XDG_CACHE_HOME")
        .env_remove("TORCH_HOME")
        .env_remove("CYCLEGAN_INCEPTION")
        .env("CYCLEGAN_INCEPTION_URL", &url)
        .output()
        .unwrap();
    server.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("SHA-256") && err.contains("nothing was kept") && err.trim().lines().count() == 1, "{err}");
    let cache = home.join(".cache/cyclegan");
    assert!(!cache.exists() || std::fs::read_dir(&cache).unwrap().next().is_none(), "the cache holds nothing");
}

/// Issue 9: `train --eval-a/--eval-b` logs FID and KID, keeps the best
/// checkpoint, plots both, and a run resumed half-way matches one that was not.
#[test]
fn training_with_evaluation_logs_metrics_keeps_the_best_and_resumes_exactly() {
    let dir = tmp();
    let (a, b) = crate::util::dataset(&dir.path().join("data"), 2);
    let eval_a = folder(dir.path(), "eval_a", &["train_a1.png", "img_square.png"]);
    let eval_b = folder(dir.path(), "eval_b", &["train_b1.png", "img_odd.png"]);
    let train = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "train", "--data-a", a.to_str().unwrap(), "--data-b", b.to_str().unwrap(), "--output", out.to_str().unwrap(),
            "--netG", "resnet_6blocks", "--ngf", "2", "--ndf", "2", "--load-size", "36", "--crop-size", "32",
            "--print-freq", "1", "--eval-a", eval_a.to_str().unwrap(), "--eval-b", eval_b.to_str().unwrap(),
            "--eval-freq", "2", "--inception", formula_weights_file().to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let (ok, _, err) = run(&args);
        assert!(ok, "{err}");
        err
    };
    let straight = dir.path().join("straight");
    let err = train(&straight, &["--max-iters", "4"]);
    assert!(err.contains("evaluation at iteration 2: FID a2b"), "{err}");
    let read = |run: &Path, file: &str| -> Vec<Value> {
        std::fs::read_to_string(run.join(file)).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let metrics = read(&straight, "metrics.jsonl");
    assert_eq!(metrics.iter().map(|m| m["iter"].as_u64().unwrap()).collect::<Vec<_>>(), [2, 4]);
    for m in &metrics {
        let (a2b, b2a) = (m["fid_a2b"].as_f64().unwrap(), m["fid_b2a"].as_f64().unwrap());
        assert!(a2b > 0.0 && b2a > 0.0 && (m["fid_mean"].as_f64().unwrap() - (a2b + b2a) / 2.0).abs() < 1e-12, "{m}");
    }
    // best/ holds the iteration with the lowest mean FID, and says so
    let best_iter = metrics.iter().min_by(|x, y| x["fid_mean"].as_f64().unwrap().total_cmp(&y["fid_mean"].as_f64().unwrap())).unwrap()["iter"].clone();
    let state: Value = serde_json::from_str(&std::fs::read_to_string(straight.join("checkpoints/best/state.json")).unwrap()).unwrap();
    assert_eq!(state["iteration"], best_iter);
    assert_eq!(state["best"]["iteration"], best_iter);
    assert!(straight.join("checkpoints/best/G_A.safetensors").is_file());
    let report = std::fs::read_to_string(straight.join("report.html")).unwrap();
    assert!(report.contains("FID a2b") && report.contains("KID b2a"), "the report plots the metrics");

    // `eval --model RUN` scores the run's latest generators as training's last evaluation did
    let (ok, out, err) = run(&[
        "eval", "--model", straight.to_str().unwrap(), "--test-a", eval_a.to_str().unwrap(), "--test-b", eval_b.to_str().unwrap(),
        "--inception", formula_weights_file().to_str().unwrap(), "--json",
    ]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    for (direction, key) in [("a2b", "fid_a2b"), ("b2a", "fid_b2a")] {
        let (got, want) = (v[direction]["fid"].as_f64().unwrap(), metrics[1][key].as_f64().unwrap());
        assert!((got - want).abs() <= 1e-9 * want, "{direction}: eval --model {got}, training {want}");
    }

    // stopped at 2, resumed to 4: the same losses and the same metrics
    let split = dir.path().join("split");
    train(&split, &["--max-iters", "2"]);
    let (ok, _, err) = run(&["train", "--resume", "--output", split.to_str().unwrap(), "--max-iters", "4"]);
    assert!(ok, "{err}");
    for file in ["losses.jsonl", "metrics.jsonl"] {
        let (want, got) = (read(&straight, file), read(&split, file));
        assert_eq!(want.len(), got.len(), "{file}");
        for (w, g) in want.iter().zip(&got) {
            for (key, wv) in w.as_object().unwrap() {
                if key == "seconds" {
                    continue;
                }
                let (wv, gv) = (wv.as_f64().unwrap(), g[key].as_f64().unwrap());
                assert!((wv - gv).abs() <= 1e-6 * wv.abs().max(1.0), "{file} iteration {}: {key} {gv} vs {wv}", w["iter"]);
            }
        }
    }
}

/// A CUT run evaluates its one direction: metrics.jsonl has a2b only, its
/// mean is that FID, and `eval --model RUN` scores a2b only.
#[test]
fn cut_training_evaluates_a_to_b() {
    let dir = tmp();
    let (a, b) = crate::util::dataset(&dir.path().join("data"), 2);
    let eval_a = folder(dir.path(), "eval_a", &["train_a1.png", "img_square.png"]);
    let eval_b = folder(dir.path(), "eval_b", &["train_b1.png", "img_odd.png"]);
    let out = dir.path().join("run");
    let (ok, _, err) = run(&[
        "train", "--model", "fastcut", "--data-a", a.to_str().unwrap(), "--data-b", b.to_str().unwrap(), "--output", out.to_str().unwrap(),
        "--netG", "resnet_6blocks", "--ngf", "2", "--ndf", "2", "--load-size", "36", "--crop-size", "32", "--netF-nc", "8",
        "--num-patches", "16", "--eval-a", eval_a.to_str().unwrap(), "--eval-b", eval_b.to_str().unwrap(),
        "--eval-freq", "2", "--max-iters", "2", "--inception", formula_weights_file().to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("evaluation at iteration 2: FID a2b") && !err.contains("b2a"), "{err}");
    let m: Value = serde_json::from_str(std::fs::read_to_string(out.join("metrics.jsonl")).unwrap().lines().next().unwrap()).unwrap();
    assert!(m.get("fid_b2a").is_none() && m["fid_mean"] == m["fid_a2b"], "{m}");
    assert!(out.join("checkpoints/best/G.safetensors").is_file());
    let (ok, stdout, err) = run(&[
        "eval", "--model", out.to_str().unwrap(), "--test-a", eval_a.to_str().unwrap(), "--test-b", eval_b.to_str().unwrap(),
        "--inception", formula_weights_file().to_str().unwrap(), "--json",
    ]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert!(v.get("a2b").is_some() && v.get("b2a").is_none(), "{v}");
    let (got, want) = (v["a2b"]["fid"].as_f64().unwrap(), m["fid_a2b"].as_f64().unwrap());
    assert!((got - want).abs() <= 1e-9 * want, "eval --model {got}, training {want}");
}
