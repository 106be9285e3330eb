//! `cyclegan train --model cut|fastcut` from the command line (issue 10):
//! each mode's official defaults, every CUT option's effect, options of the
//! other method refused, the run folder, and official CUT checkpoints
//! imported and translated.

use std::collections::HashMap;
use std::path::Path;

use cyclegan::checkpoint;
use serde_json::Value;

use crate::util::{assert_refused, dataset, fixture, losses, run, tmp};

/// `train` with tiny networks on two images per domain, plus `extra` (with
/// `--model cut|fastcut` there, a small netF and few patches too).
fn train_tiny(dir: &Path, name: &str, extra: &[&str]) -> (bool, String, String, std::path::PathBuf) {
    let data = dir.join("data");
    if !data.exists() {
        dataset(&data, 2);
    }
    let out = dir.join(name);
    let mut args = vec![
        "train", "--dataroot", data.to_str().unwrap(), "--output", out.to_str().unwrap(),
        "--netG", "resnet_6blocks", "--ngf", "2", "--ndf", "2", "--load-size", "36", "--crop-size", "32",
        "--print-freq", "1",
    ];
    if extra.windows(2).any(|w| w[0] == "--model" && w[1] != "cyclegan") {
        args.extend_from_slice(&["--netF-nc", "8", "--num-patches", "16"]);
    }
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = run(&args);
    (ok, stdout, stderr, out)
}

/// [`train_tiny`] that must succeed: `--model cut` for `iters` iterations, plus `extra`; the run folder.
fn train_cut(dir: &Path, name: &str, iters: &str, extra: &[&str]) -> std::path::PathBuf {
    let mut args = vec!["--model", "cut", "--max-iters", iters];
    args.extend_from_slice(extra);
    let (ok, _, err, out) = train_tiny(dir, name, &args);
    assert!(ok, "{name}: {err}");
    out
}

fn first_losses(out: &Path) -> Value {
    losses(out).into_iter().next().expect("a logged iteration")
}

fn options_toml(out: &Path) -> toml::Table {
    toml::from_str(&std::fs::read_to_string(out.join("options.toml")).unwrap()).unwrap()
}

fn metadata(path: &Path) -> HashMap<String, String> {
    checkpoint::read_safetensors(path).unwrap().1
}

fn keys(path: &Path) -> Vec<String> {
    checkpoint::read_safetensors(path).unwrap().0.keys().cloned().collect()
}

#[test]
fn options_of_the_other_method_and_impossible_ones_are_refused_in_one_line() {
    let dir = tmp();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--model", "cut", "--lambda-a", "5"], "--lambda-a weighs CycleGAN's cycle and identity losses; --model cut has neither"),
        (vec!["--model", "fastcut", "--lambda-identity", "0"], "--lambda-identity weighs CycleGAN's"),
        (vec!["--model", "cut", "--pool-size", "10"], "--pool-size: --model cut trains D on the current translations only"),
        (vec!["--lambda-nce", "2"], "--lambda-nce is an option of CUT and FastCUT; it does nothing with --model cyclegan"),
        (vec!["--no-antialias"], "--no-antialias is an option of CUT and FastCUT"),
        (vec!["--flip-equivariance"], "--flip-equivariance is an option of CUT and FastCUT"),
        (vec!["--model", "cut", "--netG", "unet_128", "--load-size", "128", "--crop-size", "128"], "compares features of the ResNet generator's layers"),
        (vec!["--model", "cut", "--nce-layers", "4,0"], "--nce-layers must list layer indices in ascending order"),
        (vec!["--model", "cut", "--nce-layers", "0,40"], "--nce-layers 40: the resnet_6blocks generator has layers 0 to 28"),
        (vec!["--model", "cut", "--no-antialias", "--no-antialias-up", "--nce-layers", "0,25"], "has layers 0 to 24"),
        (vec!["--model", "cut", "--num-patches", "0"], "--num-patches must be at least 1"),
        (vec!["--model", "cut", "--netF-nc", "0"], "--netF-nc must be at least 1"),
        (vec!["--model", "cut", "--netF-nc", "100000"], "--netF-nc 100000: at most 1024"),
        (vec!["--model", "cut", "--nce-T", "0"], "--nce-T must be positive"),
        (vec!["--model", "cut", "--lambda-nce=-1"], "loss weights must not be negative"),
        (vec!["--model", "fastcut", "--output-nc", "1"], "which needs --input-nc equal to --output-nc (got 3 and 1)"),
        (vec!["--model", "cut", "--nce-idt", "maybe"], "invalid value 'maybe' for '--nce-idt"),
        (vec!["--model", "mmd"], "invalid value 'mmd' for '--model"),
    ];
    for (extra, expected) in cases {
        let (ok, _, err, out) = train_tiny(dir.path(), "refused", &extra);
        assert_refused(&extra, ok, &err, expected);
        assert!(!out.exists(), "{extra:?}: created the run folder");
    }
    // gray to gray is fine
    let (ok, _, err, _) = train_tiny(dir.path(), "gray", &["--model", "fastcut", "--input-nc", "1", "--output-nc", "1", "--max-iters", "1"]);
    assert!(ok, "{err}");
}

/// Each mode's official defaults, as the run records them, and the init they draw.
#[test]
fn each_mode_has_its_official_defaults() {
    let dir = tmp();
    let want: [(&str, i64, i64, &str, f64, bool, bool); 3] = [
        ("cyclegan", 100, 100, "normal", 0.0, false, false),
        ("cut", 200, 200, "xavier", 1.0, true, false),
        ("fastcut", 150, 50, "xavier", 10.0, false, true),
    ];
    let mut stds = Vec::new();
    for (model, n_epochs, decay, init, lambda_nce, nce_idt, flip) in want {
        let extra: &[&str] = if model == "cyclegan" { &["--max-iters", "1"] } else { &["--model", model, "--max-iters", "1"] };
        let (ok, _, err, out) = train_tiny(dir.path(), model, extra);
        assert!(ok, "{model}: {err}");
        let o = options_toml(&out);
        assert_eq!(o["n-epochs"].as_integer(), Some(n_epochs), "{model}");
        assert_eq!(o["n-epochs-decay"].as_integer(), Some(decay), "{model}");
        assert_eq!(o["init-type"].as_str(), Some(init), "{model}");
        assert_eq!(o["gan-mode"].as_str(), Some("lsgan"), "{model}");
        if model == "cyclegan" {
            assert_eq!(o["pool-size"].as_integer(), Some(50));
            assert!(!o.contains_key("lambda-nce") && !o.contains_key("nce-idt"), "{o:?}");
            let g = checkpoint::read_safetensors(&out.join("checkpoints/latest/G_A.safetensors")).unwrap().0;
            stds.push(std(&g, "model.1.weight"));
        } else {
            assert!(!o.contains_key("pool-size") && !o.contains_key("lambda-a"), "{model}: {o:?}");
            assert_eq!(o["lambda-nce"].as_float(), Some(lambda_nce), "{model}");
            assert_eq!(o["lambda-gan"].as_float(), Some(1.0));
            assert_eq!(o["nce-idt"].as_bool(), Some(nce_idt), "{model}");
            assert_eq!(o["flip-equivariance"].as_bool(), Some(flip), "{model}");
            assert_eq!(o["nce-T"].as_float(), Some(0.07));
            assert_eq!(o["netF"].as_str(), Some("mlp_sample"));
            let layers: Vec<i64> = o["nce-layers"].as_array().unwrap().iter().map(|v| v.as_integer().unwrap()).collect();
            assert_eq!(layers, [0, 4, 8, 12, 16]);
            let header = std::fs::read_to_string(out.join("options.toml")).unwrap();
            assert!(header.lines().next().unwrap().contains("model"), "the method counts as changed");
            let g = checkpoint::read_safetensors(&out.join("checkpoints/latest/G.safetensors")).unwrap().0;
            stds.push(std(&g, "model.1.weight"));
        }
    }
    // N(0, 0.02) against xavier with gain 0.02 (std 0.02 * sqrt(2 / (147 + 98)) = 0.0018 for the 7x7 stem), one Adam step later
    assert!(stds[0] > 0.015 && stds[1] < 0.004 && stds[2] < 0.004, "stem weight std: {stds:?}");
}

fn std(dict: &checkpoint::StateDict, key: &str) -> f64 {
    let v = crate::util::floats(dict.get(key).unwrap());
    let mean = v.iter().map(|x| *x as f64).sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

/// The run folder: G, D, F with metadata, the official loss names, one row of samples.
#[test]
fn a_cut_run_folder_describes_itself_and_translates() {
    let dir = tmp();
    let (ok, stdout, err, out) = train_tiny(dir.path(), "run", &["--model", "cut", "--max-iters", "2", "--display-freq", "2"]);
    assert!(ok, "{err}");
    assert!(stdout.contains("stopped at --max-iters after 2 iterations"), "{stdout}");
    let latest = out.join("checkpoints/latest");
    let g = metadata(&latest.join("G.safetensors"));
    assert_eq!((g["model"].as_str(), g["net"].as_str(), g["direction"].as_str()), ("cut", "generator", "a2b"));
    assert_eq!((g["antialias"].as_str(), g["antialias_up"].as_str()), ("true", "true"));
    let d = metadata(&latest.join("D.safetensors"));
    assert_eq!((d["model"].as_str(), d["net"].as_str(), d["antialias"].as_str()), ("cut", "discriminator", "true"));
    let f = metadata(&latest.join("F.safetensors"));
    assert_eq!((f["net"].as_str(), f["netF"].as_str(), f["nc"].as_str()), ("patch_sampler", "mlp_sample", "8"));
    assert_eq!(f["channels"], "3,4,8,8,8", "the channels of layers 0,4,8,12,16 for ngf 2");
    let names: Vec<String> = first_losses(&out).as_object().unwrap().keys().cloned().collect();
    for name in ["G_GAN", "D_real", "D_fake", "G", "NCE", "NCE_Y"] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("<h1>CUT training</h1>") && report.contains("NCE_Y"), "report");
    let grid = image::open(out.join("samples/latest.png")).unwrap();
    assert_eq!((grid.width(), grid.height()), (4 * 32 + 5 * 2, 32 + 2 * 2), "one row of four panels");

    // translate: the run folder gives its one generator, A to B only
    let input = fixture("img_odd.png");
    let result = dir.path().join("out.png");
    let (ok, _, err) = run(&["translate", "--model", out.to_str().unwrap(), input.to_str().unwrap(), "-o", result.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(image::image_dimensions(&result).unwrap(), (45, 37));
    let (ok, _, err) = run(&["translate", "--model", out.to_str().unwrap(), "--direction", "b2a", input.to_str().unwrap(), "-o", result.to_str().unwrap()]);
    assert!(!ok && err.contains("is a CUT run: its one generator translates A to B only"), "{err}");
}

/// Loss weights and the temperature change the first step's losses as the
/// objective says: the first forward pass does not depend on them.
#[test]
fn loss_weights_and_temperature_change_the_losses() {
    let dir = tmp();
    let step1 = |name: &str, extra: &[&str]| first_losses(&train_cut(dir.path(), name, "1", extra));
    let base = step1("base", &[]);
    let nce2 = step1("nce2", &["--lambda-nce", "2"]);
    let gan3 = step1("gan3", &["--lambda-gan", "3"]);
    let warm = step1("warm", &["--nce-T", "0.5"]);
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap();
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-5 * b.abs();
    assert!(close(f(&nce2, "NCE"), 2.0 * f(&base, "NCE")) && close(f(&nce2, "NCE_Y"), 2.0 * f(&base, "NCE_Y")), "{nce2} vs {base}");
    assert!(close(f(&gan3, "G_GAN"), 3.0 * f(&base, "G_GAN")), "{gan3} vs {base}");
    assert!(close(f(&gan3, "NCE"), f(&base, "NCE")), "--lambda-gan leaves NCE alone");
    // at T = 0.5 the logits are 7 times flatter: the loss moves towards log(1 + patches)
    let uniform = (1.0f64 + 16.0).ln();
    assert!((f(&warm, "NCE") - uniform).abs() < (f(&base, "NCE") - uniform).abs(), "{warm} vs {base}");
    let off = step1("off", &["--lambda-nce", "0"]);
    assert_eq!((f(&off, "NCE"), f(&off, "NCE_Y")), (0.0, 0.0));
}

#[test]
fn nce_idt_adds_the_identity_term_in_either_mode() {
    let dir = tmp();
    let names = |name: &str, extra: &[&str]| -> Vec<String> {
        let (ok, _, err, out) = train_tiny(dir.path(), name, extra);
        assert!(ok, "{name}: {err}");
        first_losses(&out).as_object().unwrap().keys().cloned().collect()
    };
    assert!(names("cut", &["--model", "cut", "--max-iters", "1"]).contains(&"NCE_Y".to_string()));
    assert!(!names("cut_off", &["--model", "cut", "--nce-idt", "false", "--max-iters", "1"]).contains(&"NCE_Y".to_string()));
    assert!(!names("fast", &["--model", "fastcut", "--max-iters", "1"]).contains(&"NCE_Y".to_string()));
    assert!(names("fast_on", &["--model", "fastcut", "--nce-idt", "--max-iters", "1"]).contains(&"NCE_Y".to_string()));
}

/// --nce-layers, --netF and --netF-nc shape netF; --num-patches and the
/// batch-wide negatives change what the loss compares.
#[test]
fn patch_options_shape_netf_and_the_loss() {
    let dir = tmp();
    let go = |name: &str, extra: &[&str]| train_cut(dir.path(), name, "1", extra);
    let two = go("two", &["--nce-layers", "0,4", "--netF-nc", "5"]);
    let f = two.join("checkpoints/latest/F.safetensors");
    assert_eq!(keys(&f), ["mlp_0.0.bias", "mlp_0.0.weight", "mlp_0.2.bias", "mlp_0.2.weight", "mlp_1.0.bias", "mlp_1.0.weight", "mlp_1.2.bias", "mlp_1.2.weight"]);
    let (dict, meta) = checkpoint::read_safetensors(&f).unwrap();
    assert_eq!(dict.shape("mlp_1.0.weight"), Some(&[5usize, 4][..]), "Linear(4 channels of layer 4, 5)");
    assert_eq!(meta["channels"], "3,4");
    let plain = go("plain", &["--netF", "sample"]);
    let f = plain.join("checkpoints/latest/F.safetensors");
    assert!(keys(&f).is_empty(), "sample has no MLPs");
    assert_eq!(metadata(&f)["netF"], "sample");

    let nce = |out: &Path| first_losses(out)["NCE"].as_f64().unwrap();
    let base = go("base", &[]);
    let fewer = go("fewer", &["--num-patches", "4"]);
    assert_ne!(nce(&base), nce(&fewer), "--num-patches");
    assert!(nce(&fewer) < nce(&base), "fewer negatives, an easier classification: {} vs {}", nce(&fewer), nce(&base));
    let batch = go("batch", &["--batch-size", "2"]);
    let all = go("all", &["--batch-size", "2", "--nce-includes-all-negatives-from-minibatch"]);
    assert!(nce(&all) > nce(&batch), "twice the negatives, a harder classification: {} vs {}", nce(&all), nce(&batch));
}

#[test]
fn flip_equivariance_and_antialiasing_options_take_effect() {
    let dir = tmp();
    let go = |name: &str, extra: &[&str]| train_cut(dir.path(), name, "3", &[&["--no-flip", "--seed", "3"], extra].concat());
    let plain = go("plain", &[]);
    let flipped = go("flipped", &["--flip-equivariance"]);
    let g = |out: &Path| losses(out).iter().map(|r| r["G"].as_f64().unwrap()).collect::<Vec<_>>();
    assert_ne!(g(&plain), g(&flipped), "some of the three inputs were flipped");

    let latest = |out: &Path, net: &str| out.join("checkpoints/latest").join(format!("{net}.safetensors"));
    assert!(keys(&latest(&plain, "G")).contains(&"model.7.filt".to_string()));
    assert!(keys(&latest(&plain, "D")).contains(&"model.2.filt".to_string()));
    let strided = go("strided", &["--no-antialias"]);
    let (g_keys, d_keys) = (keys(&latest(&strided, "G")), keys(&latest(&strided, "D")));
    assert!(!g_keys.contains(&"model.7.filt".to_string()) && g_keys.contains(&"model.16.filt".to_string()), "{g_keys:?}");
    assert!(!d_keys.iter().any(|k| k.ends_with(".filt")), "{d_keys:?}");
    assert_eq!(metadata(&latest(&strided, "G"))["antialias"], "false");
    assert_eq!(metadata(&latest(&strided, "D"))["antialias"], "false");
    assert_eq!(metadata(&latest(&strided, "G"))["antialias_up"], "true");
    let up = go("transposed", &["--no-antialias-up"]);
    let g_keys = keys(&latest(&up, "G"));
    assert!(g_keys.contains(&"model.7.filt".to_string()) && !g_keys.contains(&"model.21.filt".to_string()), "{g_keys:?}");
    assert_eq!(metadata(&latest(&up, "G"))["antialias_up"], "false");
}

/// An official CUT `latest_net_G.pth`: the keys say anti-aliased; import and
/// translate give the official code's pixels.
#[test]
fn official_cut_checkpoints_import_and_translate() {
    let dir = tmp();
    let pth = fixture("cut_latest_net_G.pth");
    let g = dir.path().join("G.safetensors");
    let (ok, out, err) = run(&["import", pth.to_str().unwrap(), "-o", g.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("resnet_6blocks generator (ngf 4, instance norm, 3 -> 3 channels, anti-aliased (CUT))"), "{out}");
    let m = metadata(&g);
    assert_eq!((m["antialias"].as_str(), m["antialias_up"].as_str()), ("true", "true"));
    for model in [&pth, &g] {
        let result = dir.path().join("odd.png");
        let (ok, _, err) = run(&["translate", "--model", model.to_str().unwrap(), fixture("img_odd.png").to_str().unwrap(), "-o", result.to_str().unwrap()]);
        assert!(ok, "{err}");
        let (ours, theirs) = (image::open(&result).unwrap().to_rgb8(), image::open(fixture("ref_cut_g_odd.png")).unwrap().to_rgb8());
        let diff = ours.as_raw().iter().zip(theirs.as_raw()).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
        assert!(diff <= 1, "{}: differs from the official code by {diff} levels", model.display());
    }
}
