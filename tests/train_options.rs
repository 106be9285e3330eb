//! Every `cyclegan train` option shows its effect (tiny networks and images).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use cyclegan::checkpoint;
use serde_json::Value;

use crate::util::{assert_refused, bin, dataset, fixture, losses, run, tmp};

/// `train` on `data` (a dataroot) into `out` with tiny networks, plus `extra`.
fn train_tiny(data: &Path, out: &Path, extra: &[&str]) -> (bool, String, String) {
    let mut args = vec![
        "train", "--dataroot", data.to_str().unwrap(), "--output", out.to_str().unwrap(),
        "--netG", "resnet_6blocks", "--ngf", "2", "--ndf", "2", "--load-size", "36", "--crop-size", "32",
        "--print-freq", "1",
    ];
    args.extend_from_slice(extra);
    run(&args)
}

fn column(rows: &[Value], key: &str) -> Vec<f64> {
    rows.iter().map(|r| r[key].as_f64().unwrap()).collect()
}

fn metadata(path: &Path) -> std::collections::HashMap<String, String> {
    checkpoint::read_safetensors(path).unwrap().1
}

#[test]
fn bad_options_fail_with_one_line_before_any_work() {
    let dir = tmp();
    let data = dir.path().join("data");
    dataset(&data, 2);
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(empty.join("trainA")).unwrap();
    std::fs::create_dir_all(empty.join("trainB")).unwrap();
    let out = dir.path().join("run");
    let train_a = data.join("trainA");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--dataroot", data.to_str().unwrap(), "--netG", "resnet_5blocks"], "invalid value 'resnet_5blocks' for '--netG"),
        (vec!["--dataroot", data.to_str().unwrap(), "--load-size", "64", "--crop-size", "128"], "--crop-size 128 is larger than --load-size 64"),
        (vec!["--dataroot", empty.to_str().unwrap()], "no images found"),
        (vec!["--data-a", train_a.to_str().unwrap()], "give both --data-a and --data-b, or --dataroot"),
        (vec!["--dataroot", data.to_str().unwrap(), "--output-nc", "1"], "--lambda-identity needs --input-nc equal to --output-nc"),
        (vec!["--dataroot", data.to_str().unwrap(), "--netG", "unet_256", "--crop-size", "300", "--load-size", "320"], "multiples of 256"),
        (vec!["--dataroot", data.to_str().unwrap(), "--device", "cuda"], "needs a build with `--features cuda`"),
        (vec!["--dataroot", data.to_str().unwrap(), "--batch-size", "0"], "--batch-size must be at least 1"),
        (vec!["--dataroot", data.to_str().unwrap(), "--input-nc", "2", "--lambda-identity", "0"], "--input-nc: input_nc is 2: images have 1 (gray), 3 (RGB) or 4 (RGBA)"),
        (vec!["--dataroot", data.to_str().unwrap(), "--ngf", "0"], "--ngf: ngf is 0: it must be 1 to 256"),
        (vec!["--dataroot", data.to_str().unwrap(), "--ndf", "5000"], "--ndf: ndf is 5000"),
        (vec!["--dataroot", data.to_str().unwrap(), "--n-layers-d", "0"], "--n-layers-d: n_layers is 0"),
        (vec!["--dataroot", data.to_str().unwrap(), "--max-iters", "0"], "--max-iters must be at least 1"),
        (vec!["--dataroot", data.to_str().unwrap(), "--max-dataset-size", "0"], "--max-dataset-size must be at least 1"),
        (vec!["--dataroot", data.to_str().unwrap(), "--netG", "resnet_6blocks", "--netD", "pixel", "--load-size", "4", "--crop-size", "4"], "the resnet_6blocks generator needs images of at least 8 px"),
        // a PatchGAN's layers would get nothing below 24 px: refused before any image is read
        (vec!["--dataroot", data.to_str().unwrap(), "--netG", "resnet_6blocks", "--load-size", "16", "--crop-size", "16"], "the basic discriminator needs images of at least 24 px; --crop-size is 16"),
        (vec!["--dataroot", data.to_str().unwrap(), "--netD", "n_layers", "--n-layers-d", "5", "--load-size", "64", "--crop-size", "64"], "the n_layers (5) discriminator needs images of at least 96 px"),
        // issue 20: NaN passed every comparison and failed later with advice about --lr
        (vec!["--dataroot", data.to_str().unwrap(), "--lambda-a=nan"], "--lambda-a NaN is not a finite number"),
        (vec!["--dataroot", data.to_str().unwrap(), "--lr=inf"], "--lr inf is not a finite number"),
        (vec!["--dataroot", data.to_str().unwrap(), "--lambda-identity=-inf"], "--lambda-identity -inf is not a finite number"),
        (vec!["--dataroot", data.to_str().unwrap(), "--beta1=nan"], "--beta1 NaN is not a finite number"),
        (vec!["--dataroot", data.to_str().unwrap(), "--init-gain=inf"], "--init-gain inf is not a finite number"),
        (vec!["--dataroot", data.to_str().unwrap(), "--model", "cut", "--nce-T=nan"], "--nce-T NaN is not a finite number"),
        (vec!["--dataroot", data.to_str().unwrap(), "--model", "fastcut", "--lambda-nce=inf"], "--lambda-nce inf is not a finite number"),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["train", "--output", out.to_str().unwrap()];
        args.extend(extra);
        let (ok, _, err) = run(&args);
        assert_refused(&args, ok, &err, expected);
        assert!(!out.exists(), "{args:?}: created the run folder");
    }
    // A learning rate that makes the losses blow up stops training in one line, nothing saved past it.
    let diverged = dir.path().join("diverged");
    let (ok, _, err) = train_tiny(&data, &diverged, &["--lr", "1e30", "--max-iters", "20"]);
    assert!(!ok && err.contains("training diverged at iteration") && err.contains("try a lower --lr"), "{err}");
    assert_eq!(err.trim().lines().filter(|l| l.starts_with("error")).count(), 1, "{err}");
    // A folder that already holds a run is not overwritten.
    assert!(train_tiny(&data, &out, &["--max-iters", "1"]).0);
    let (ok, _, err) = train_tiny(&data, &out, &["--max-iters", "1"]);
    assert!(!ok && err.contains("already holds a training run; pass --resume"), "{err}");
}

#[test]
fn network_options_are_what_the_checkpoints_record() {
    let dir = tmp();
    let data = dir.path().join("data");
    dataset(&data, 2);
    let out = dir.path().join("run");
    let (ok, _, err) = train_tiny(&data, &out, &[
        "--netG", "unet_128", "--netD", "n_layers", "--n-layers-d", "2", "--ngf", "3", "--ndf", "5",
        "--norm", "batch", "--input-nc", "1", "--output-nc", "3", "--lambda-identity", "0", "--dropout",
        "--load-size", "128", "--crop-size", "128", "--max-iters", "1",
    ]);
    assert!(ok, "{err}");
    let latest = out.join("checkpoints/latest");
    let g_a = metadata(&latest.join("G_A.safetensors"));
    assert_eq!(
        [&g_a["arch"], &g_a["ngf"], &g_a["norm"], &g_a["input_nc"], &g_a["output_nc"], &g_a["dropout"], &g_a["direction"]],
        ["unet_128", "3", "batch", "1", "3", "true", "a2b"]
    );
    let g_b = metadata(&latest.join("G_B.safetensors"));
    assert_eq!([&g_b["input_nc"], &g_b["output_nc"], &g_b["direction"]], ["3", "1", "b2a"]);
    let d_a = metadata(&latest.join("D_A.safetensors"));
    assert_eq!([&d_a["arch"], &d_a["n_layers"], &d_a["ndf"], &d_a["input_nc"]], ["n_layers", "2", "5", "3"]);
    assert_eq!(metadata(&latest.join("D_B.safetensors"))["input_nc"], "1", "D_B judges domain A");
    let rows = losses(&out);
    assert_eq!((rows[0]["idt_A"].as_f64(), rows[0]["idt_B"].as_f64()), (Some(0.0), Some(0.0)), "identity off");

    // The run folder translates with the networks it trained (gray A -> RGB B).
    let img = dir.path().join("x.png");
    let (ok, _, err) = run(&["translate", "--model", out.to_str().unwrap(), fixture("img_odd.png").to_str().unwrap(), "-o", img.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(image::image_dimensions(&img).unwrap(), (45, 37));
}

#[test]
fn tensorflow_tutorial_setup_is_expressible() {
    let dir = tmp();
    let data = dir.path().join("data");
    dataset(&data, 2);
    let out = dir.path().join("run");
    let (ok, _, err) = train_tiny(&data, &out, &[
        "--netG", "unet_256", "--gan-mode", "vanilla", "--norm", "instance_affine", "--pool-size", "0",
        "--resize-filter", "nearest", "--load-size", "286", "--crop-size", "256", "--max-iters", "1",
    ]);
    assert!(ok, "{err}");
    let g = metadata(&out.join("checkpoints/latest/G_A.safetensors"));
    assert_eq!([&g["arch"], &g["norm"]], ["unet_256", "instance_affine"]);
    let (pool, _) = checkpoint::read_safetensors(&out.join("checkpoints/latest/pool.safetensors")).unwrap();
    assert!(pool.is_empty(), "--pool-size 0 keeps nothing");
    // --resize-filter reaches the loader (what each filter does: data::transforms' tests):
    // the same run with bicubic resizing sees other pixels, so other cycle losses.
    let bicubic = dir.path().join("bicubic");
    let (ok, _, err) = train_tiny(&data, &bicubic, &[
        "--netG", "unet_256", "--gan-mode", "vanilla", "--norm", "instance_affine", "--pool-size", "0",
        "--resize-filter", "bicubic", "--load-size", "286", "--crop-size", "256", "--max-iters", "1",
    ]);
    assert!(ok, "{err}");
    let (n, b) = (column(&losses(&out), "cycle_A")[0], column(&losses(&bicubic), "cycle_A")[0]);
    assert!((n - b).abs() > 1e-4 * b.abs(), "nearest {n} and bicubic {b} resizing gave the same cycle loss");
}

#[test]
fn schedule_options_shape_the_learning_rate() {
    let dir = tmp();
    let data = dir.path().join("data");
    dataset(&data, 2); // two iterations per epoch
    let lrs = |extra: &[&str]| {
        let out = dir.path().join(format!("run{}", extra.join("_").replace('-', "")));
        let mut args = vec!["--n-epochs", "2", "--n-epochs-decay", "2", "--lr", "0.001", "--save-epoch-freq", "2"];
        args.extend_from_slice(extra);
        let (ok, _, err) = train_tiny(&data, &out, &args);
        assert!(ok, "{err}");
        (column(&losses(&out), "lr"), out)
    };
    let close = |got: &[f64], want: &[f64]| {
        assert_eq!(got.len(), want.len(), "{got:?}");
        assert!(got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-12), "{got:?} vs {want:?}");
    };
    let (linear, out) = lrs(&[]);
    let third = 0.001 * (1.0 - 1.0 / 3.0);
    let fourth = 0.001 * (1.0 - 2.0 / 3.0);
    close(&linear, &[0.001, 0.001, 0.001, 0.001, third, third, fourth, fourth]);
    assert!(out.join("checkpoints/epoch_2/G_A.safetensors").exists() && out.join("checkpoints/epoch_4").exists());
    assert!(!out.join("checkpoints/epoch_1").exists() && !out.join("checkpoints/epoch_3").exists(), "--save-epoch-freq 2");
    let epochs = column(&losses(&out), "epoch");
    assert_eq!(epochs, vec![1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0]);

    let (step, _) = lrs(&["--lr-policy", "step", "--lr-decay-iters", "2"]);
    close(&step, &[0.001, 0.001, 0.001, 0.001, 1e-4, 1e-4, 1e-4, 1e-4]);
    let (cosine, _) = lrs(&["--lr-policy", "cosine", "--n-epochs", "4", "--n-epochs-decay", "0"]);
    let c = |e: f64| 0.001 * (1.0 + (std::f64::consts::PI * e / 4.0).cos()) / 2.0;
    close(&cosine, &[c(0.0), c(0.0), c(1.0), c(1.0), c(2.0), c(2.0), c(3.0), c(3.0)]);
    let (plateau, _) = lrs(&["--lr-policy", "plateau"]);
    close(&plateau, &[0.001; 8]); // five epochs of patience first
}

#[test]
fn logging_and_sample_options() {
    let dir = tmp();
    let data = dir.path().join("data");
    dataset(&data, 3);
    let out = dir.path().join("run");
    let (ok, stdout, err) = train_tiny(&data, &out, &["--print-freq", "2", "--display-freq", "3", "--max-iters", "6"]);
    assert!(ok, "{err}");
    assert!(stdout.contains("stopped at --max-iters after 6 iterations"), "{stdout}");
    assert!(stdout.contains("report.html"), "{stdout}");
    assert_eq!(column(&losses(&out), "iter"), vec![2.0, 4.0, 6.0]);
    for name in ["iter_0000003.png", "iter_0000006.png", "latest.png"] {
        let (w, h) = image::image_dimensions(out.join("samples").join(name)).unwrap();
        // 4 panels of the 32 px crops across, 2 rows, 2 px gaps
        assert_eq!((w, h), (4 * 32 + 5 * 2, 2 * 32 + 3 * 2), "{name}");
    }
    assert!(!out.join("samples/iter_0000002.png").exists());
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("<polyline") && report.contains("samples/iter_0000006.png"), "report lacks curves or samples");
    assert!(report.contains("stopped at --max-iters"));
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("checkpoints/latest/state.json")).unwrap()).unwrap();
    assert_eq!(state["iteration"], 6);
}

#[test]
fn seed_gives_the_same_run_and_workers_do_not_change_it() {
    let dir = tmp();
    let data = dir.path().join("data");
    dataset(&data, 3);
    let go = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec!["--max-iters", "4", "--pool-size", "2"];
        args.extend_from_slice(extra);
        let (ok, _, err) = train_tiny(&data, &out, &args);
        assert!(ok, "{err}");
        losses(&out).into_iter().map(|mut r| {
            r.as_object_mut().unwrap().remove("seconds");
            r
        }).collect::<Vec<_>>()
    };
    let a = go("a", &["--seed", "1", "--workers", "1"]);
    let b = go("b", &["--seed", "1", "--workers", "3"]);
    let c = go("c", &["--seed", "2"]);
    assert_eq!(a, b, "same seed, other worker count: same run");
    assert_ne!(a, c, "another seed: another run");
}

#[test]
fn serial_batches_and_no_flip_make_the_data_order_fixed() {
    let dir = tmp();
    let data = dir.path().join("data");
    dataset(&data, 3);
    // Weights from --init, so the seed only drives data order, flips and crops.
    let (init_tensors, _) = checkpoint::read_safetensors(&fixture("train_init.safetensors")).unwrap();
    let init = dir.path().join("init.safetensors");
    checkpoint::save_dict(&init, &init_tensors, Default::default()).unwrap();
    let go = |name: &str, seed: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec![
            "--init", init.to_str().unwrap(), "--ngf", "4", "--ndf", "8", "--pool-size", "0", "--preprocess", "none",
            "--max-iters", "3", "--seed", seed,
        ];
        args.extend_from_slice(extra);
        let (ok, _, err) = train_tiny(&data, &out, &args);
        assert!(ok, "{err}");
        column(&losses(&out), "G_A")
    };
    let fixed = ["--serial-batches", "--no-flip"];
    assert_eq!(go("s1", "1", &fixed), go("s2", "2", &fixed), "serial, unflipped: the seed changes nothing");
    assert_ne!(go("r1", "1", &[]), go("r2", "2", &[]), "shuffled and flipped: the seed matters");
}

#[test]
fn data_size_options() {
    let dir = tmp();
    let data = dir.path().join("data");
    dataset(&data, 4);
    let epochs_of = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec!["--max-iters", "4"];
        args.extend_from_slice(extra);
        let (ok, _, err) = train_tiny(&data, &out, &args);
        assert!(ok, "{err}");
        column(&losses(&out), "epoch")
    };
    assert_eq!(epochs_of("full", &[]), vec![1.0; 4], "4 images: one epoch");
    assert_eq!(epochs_of("max1", &["--max-dataset-size", "1"]), vec![1.0, 2.0, 3.0, 4.0], "one image per epoch");
    assert_eq!(epochs_of("batch2", &["--batch-size", "2"]), vec![1.0, 1.0, 2.0, 2.0], "two batches per epoch");
    // --load-size and --crop-size: the sample grid's panels are crop-size images
    let sized = dir.path().join("sized");
    let (ok, _, err) = train_tiny(&data, &sized, &["--max-iters", "1", "--load-size", "44", "--crop-size", "40", "--display-freq", "1"]);
    assert!(ok, "{err}");
    let grid = std::fs::read_dir(sized.join("samples")).unwrap().next().unwrap().unwrap().path();
    let (w, h) = image::image_dimensions(&grid).unwrap();
    assert_eq!((w, h), (4 * 40 + 5 * 2, 2 * 40 + 3 * 2), "two rows of four 40 px panels, 2 px apart");
    // --data-a/--data-b instead of --dataroot: the same images, the same run
    let full = column(&losses(&dir.path().join("full")), "G_A");
    let out = dir.path().join("ab");
    let (ok, _, err) = run(&[
        "train", "--data-a", data.join("trainA").to_str().unwrap(), "--data-b", data.join("trainB").to_str().unwrap(),
        "--output", out.to_str().unwrap(), "--netG", "resnet_6blocks", "--ngf", "2", "--ndf", "2",
        "--load-size", "36", "--crop-size", "32", "--max-iters", "4", "--print-freq", "1",
    ]);
    assert!(ok, "{err}");
    assert_eq!(column(&losses(&out), "G_A"), full, "--data-a/--data-b and --dataroot read the same images");
}

#[test]
fn loss_weight_options_scale_the_losses() {
    let dir = tmp();
    let data = dir.path().join("data");
    dataset(&data, 2);
    let (init_tensors, _) = checkpoint::read_safetensors(&fixture("train_init.safetensors")).unwrap();
    let init = dir.path().join("init.safetensors");
    checkpoint::save_dict(&init, &init_tensors, Default::default()).unwrap();
    let first = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec![
            "--init", init.to_str().unwrap(), "--ngf", "4", "--ndf", "8", "--serial-batches", "--no-flip",
            "--preprocess", "none", "--max-iters", "3",
        ];
        args.extend_from_slice(extra);
        let (ok, _, err) = train_tiny(&data, &out, &args);
        assert!(ok, "{err}");
        losses(&out)
    };
    let base = first("base", &[]);
    let weighted = first("weighted", &["--lambda-a", "20", "--lambda-b", "5", "--lambda-identity", "0.25"]);
    let ratio = |k: &str| weighted[0][k].as_f64().unwrap() / base[0][k].as_f64().unwrap();
    assert!((ratio("cycle_A") - 2.0).abs() < 1e-5, "cycle_A x2: {}", ratio("cycle_A"));
    assert!((ratio("cycle_B") - 0.5).abs() < 1e-5, "cycle_B x0.5: {}", ratio("cycle_B"));
    assert!((ratio("idt_A") - 0.25).abs() < 1e-5, "idt_A = L1 * lambda_B * lambda_idt: {}", ratio("idt_A"));
    assert!((ratio("idt_B") - 1.0).abs() < 1e-5, "idt_B = L1 * lambda_A * lambda_idt: {}", ratio("idt_B"));
    let at = |run: &[Value], i: usize, k: &str| run[i][k].as_f64().unwrap();
    let differs = |a: f64, b: f64| (a - b).abs() > 1e-4 * b.abs();
    // --lr changes the first update: nothing before it, the second iteration's losses after it.
    let lr = first("lr", &["--lr", "0.001"]);
    for k in ["G_A", "G_B", "cycle_A", "D_A"] {
        assert_eq!(at(&lr, 0, k), at(&base, 0, k), "{k} before any update");
    }
    assert!(differs(at(&lr, 1, "cycle_A"), at(&base, 1, "cycle_A")), "--lr: {} vs {}", at(&lr, 1, "cycle_A"), at(&base, 1, "cycle_A"));
    // --beta1 shows only from the second update on: Adam's bias-corrected
    // first step is lr * g / |g| whatever beta1 is (equal up to rounding), so
    // iteration 3 is the first whose losses it changes.
    let beta = first("beta", &["--beta1", "0.9"]);
    assert!(!differs(at(&beta, 1, "cycle_A"), at(&base, 1, "cycle_A")), "the first Adam step does not depend on beta1");
    assert!(differs(at(&beta, 2, "cycle_A"), at(&base, 2, "cycle_A")), "--beta1: {} vs {}", at(&beta, 2, "cycle_A"), at(&base, 2, "cycle_A"));
    // --gan-mode: at the first iteration the generators are judged by the same
    // initial discriminator outputs x (G is updated before D), so the modes'
    // losses are tied: wgangp's G_A is -mean(x), lsgan's mean((x-1)^2) >= (mean(x)-1)^2
    // (Jensen), vanilla's mean(softplus(-x)) between softplus(-mean(x)) (Jensen)
    // and ln 2 - mean(x)/2 + mean(x^2)/8 (softplus'' <= 1/4). The cycle terms do not change.
    let wgan = first("wgan", &["--gan-mode", "wgangp"]);
    let vanilla = first("vanilla", &["--gan-mode", "vanilla"]);
    for k in ["cycle_A", "cycle_B", "idt_A", "idt_B"] {
        assert_eq!(at(&wgan, 0, k), at(&base, 0, k), "{k}");
        assert_eq!(at(&vanilla, 0, k), at(&base, 0, k), "{k}");
    }
    for g in ["G_A", "G_B"] {
        let mean_x = -at(&wgan, 0, g);
        let lsgan = at(&base, 0, g);
        let mean_x2 = lsgan - 1.0 + 2.0 * mean_x;
        assert!(mean_x2 >= mean_x * mean_x - 1e-6, "{g}: lsgan {lsgan} and wgangp {} are not of the same outputs", -mean_x);
        let v = at(&vanilla, 0, g);
        let softplus = |t: f64| (1.0 + t.exp()).ln();
        let (low, high) = (softplus(-mean_x), std::f64::consts::LN_2 - mean_x / 2.0 + mean_x2 / 8.0);
        assert!(low - 1e-6 <= v && v <= high + 1e-6, "{g}: vanilla {v} outside [{low}, {high}]");
        assert!(differs(v, lsgan), "{g}: vanilla and lsgan agree ({v})");
    }
}

#[test]
fn init_options_set_the_weight_statistics() {
    let dir = tmp();
    let data = dir.path().join("data");
    dataset(&data, 2);
    let std_of_stem = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec!["--max-iters", "1", "--ngf", "16", "--lr", "1e-9"];
        args.extend_from_slice(extra);
        let (ok, _, err) = train_tiny(&data, &out, &args);
        assert!(ok, "{err}");
        let (t, _) = checkpoint::read_safetensors(&out.join("checkpoints/latest/G_A.safetensors")).unwrap();
        let w = crate::util::floats(t.get("model.1.weight").unwrap());
        let mean = w.iter().map(|v| *v as f64).sum::<f64>() / w.len() as f64;
        (w.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / w.len() as f64).sqrt()
    };
    // model.1.weight is [16, 3, 7, 7]: fan_in 147, fan_out 784
    let normal = std_of_stem("normal", &["--init-gain", "0.05"]);
    assert!((normal - 0.05).abs() < 0.005, "normal, gain 0.05: std {normal}");
    let xavier = std_of_stem("xavier", &["--init-type", "xavier", "--init-gain", "1.0"]);
    let want = (2.0f64 / (147.0 + 784.0)).sqrt();
    assert!((xavier - want).abs() < 0.1 * want, "xavier: std {xavier}, want {want}");
    let kaiming = std_of_stem("kaiming", &["--init-type", "kaiming"]);
    let want = (2.0f64 / 147.0).sqrt();
    assert!((kaiming - want).abs() < 0.1 * want, "kaiming: std {kaiming}, want {want}");
    let orthogonal = std_of_stem("orthogonal", &["--init-type", "orthogonal", "--init-gain", "1.0"]);
    let want = (1.0f64 / 147.0).sqrt(); // 16 orthonormal rows of length 147
    assert!((orthogonal - want).abs() < 0.1 * want, "orthogonal: std {orthogonal}, want {want}");
}

#[test]
fn config_file_and_command_line_overrides() {
    let dir = tmp();
    let data = dir.path().join("data");
    dataset(&data, 2);
    let out = dir.path().join("run");
    let config = dir.path().join("opts.toml");
    std::fs::write(
        &config,
        format!(
            "dataroot = {:?}\noutput = {:?}\nnetG = \"resnet_6blocks\"\nngf = 2\nndf = 3\nload-size = 36\ncrop-size = 32\nmax-iters = 1\nprint-freq = 1\n",
            data, out
        ),
    )
    .unwrap();
    let (ok, _, err) = run(&["train", "--config", config.to_str().unwrap(), "--ndf", "2"]);
    assert!(ok, "{err}");
    let saved = std::fs::read_to_string(out.join("options.toml")).unwrap();
    assert!(saved.contains("ngf = 2") && saved.contains("ndf = 2"), "{saved}");
    assert!(saved.lines().next().unwrap().contains("Changed from the defaults:"), "{saved}");
    std::fs::write(&config, "ngf = 2\nlearning-rate = 0.1\n").unwrap();
    let (ok, _, err) = run(&["train", "--config", config.to_str().unwrap()]);
    assert!(!ok && err.contains("opts.toml") && err.contains("learning-rate"), "{err}");

    // --resume continues with the run's own options, and flags given now win (more iterations).
    let (ok, _, err) = run(&["train", "--resume", "--output", out.to_str().unwrap(), "--max-iters", "3"]);
    assert!(ok, "{err}");
    assert_eq!(column(&losses(&out), "iter"), vec![1.0, 2.0, 3.0]);
}

#[test]
fn ctrl_c_saves_latest_and_exits() {
    let dir = tmp();
    let data = dir.path().join("data");
    dataset(&data, 3);
    let out = dir.path().join("run");
    let child = bin()
        .args([
            "train", "--dataroot", data.to_str().unwrap(), "--output", out.to_str().unwrap(), "--netG", "resnet_6blocks",
            "--ngf", "2", "--ndf", "2", "--load-size", "36", "--crop-size", "32", "--print-freq", "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::fs::read_to_string(out.join("losses.jsonl")).map_or(0, |s| s.lines().count()) < 2 {
        assert!(start.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", String::from_utf8_lossy(&output.stderr));
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("checkpoints/latest/state.json")).unwrap()).unwrap();
    assert!(state["iteration"].as_u64().unwrap() >= 2);
    assert!(std::fs::read_to_string(out.join("report.html")).unwrap().contains("interrupted"));
    assert!(String::from_utf8_lossy(&output.stdout).contains("interrupted after"));
}

#[test]
fn corrupt_training_image_is_reported_and_skipped() {
    let dir = tmp();
    let data = dir.path().join("data");
    dataset(&data, 2);
    std::fs::write(data.join("trainA/broken.png"), b"not a png").unwrap();
    let out = dir.path().join("run");
    let (ok, _, err) = train_tiny(&data, &out, &["--max-iters", "6", "--serial-batches"]);
    assert!(ok, "{err}");
    assert_eq!(err.matches("broken.png").count(), 1, "reported once by name: {err}");
    assert_eq!(losses(&out).len(), 6);
}

/// Images that decode but are too small for the networks (no crop to fix it)
/// are named with the reason; when none is left, the error says why.
#[test]
fn images_too_small_for_the_discriminator_are_refused_with_the_reason() {
    let dir = tmp();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for folder in [&a, &b] {
        std::fs::create_dir_all(folder).unwrap();
        for i in 0..2 {
            image::RgbImage::from_pixel(20, 20, image::Rgb([40 * i, 90, 30])).save(folder.join(format!("{i}.png"))).unwrap();
        }
    }
    let out = dir.path().join("run");
    let (ok, _, err) = run(&[
        "train", "--data-a", a.to_str().unwrap(), "--data-b", b.to_str().unwrap(), "--output", out.to_str().unwrap(),
        "--netG", "resnet_6blocks", "--ngf", "2", "--ndf", "2", "--preprocess", "none", "--max-iters", "1",
    ]);
    assert!(!ok, "trained on 20 px images with a 24 px PatchGAN");
    let last = err.trim().lines().last().unwrap();
    assert!(last.starts_with("error: ") && last.contains("no image in this folder could be used"), "{err}");
    assert!(last.contains("is 20x20 after preprocessing, smaller than the 24 px the networks need"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Issue 8: `--resume` never rewrites a loss log it cannot read; a torn last
/// line (a kill while appending) is dropped, anything else is an error.
#[test]
fn issue_8_resume_refuses_an_unreadable_loss_log_and_keeps_it() {
    let dir = tmp();
    let data = dir.path().join("data");
    dataset(&data, 2);
    let out = dir.path().join("run");
    let (ok, _, err) = train_tiny(&data, &out, &["--max-iters", "2"]);
    assert!(ok, "{err}");
    let log = out.join("losses.jsonl");
    let good = std::fs::read_to_string(&log).unwrap();
    assert_eq!(good.lines().count(), 2);

    // a damaged line in the middle: refused, file untouched
    let damaged = good.replacen('}', "} garbage", 1);
    std::fs::write(&log, &damaged).unwrap();
    let (ok, _, err) = run(&["train", "--resume", "--output", out.to_str().unwrap(), "--max-iters", "3"]);
    assert!(!ok, "resumed over a damaged log");
    assert!(err.contains("losses.jsonl") && err.contains("line 1 is not a record"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), damaged, "the log was rewritten");

    // a log that cannot be read at all (here: a folder): refused, left as it is
    std::fs::remove_file(&log).unwrap();
    std::fs::create_dir(&log).unwrap();
    let (ok, _, err) = run(&["train", "--resume", "--output", out.to_str().unwrap(), "--max-iters", "3"]);
    assert!(!ok && err.contains("losses.jsonl"), "{err}");
    assert!(log.is_dir());
    std::fs::remove_dir(&log).unwrap();

    // a torn last line: dropped, and training goes on from the checkpoint
    std::fs::write(&log, format!("{good}{{\"epoch\": 1, \"it")).unwrap();
    let (ok, _, err) = run(&["train", "--resume", "--output", out.to_str().unwrap(), "--max-iters", "3"]);
    assert!(ok, "{err}");
    let rows = losses(&out);
    assert_eq!(rows.iter().map(|r| r["iter"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(std::fs::read_to_string(&log).unwrap().starts_with(&good), "logged lines kept as written");
}
