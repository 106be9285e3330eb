//! Checkpoints: self-description, PyTorch import (zip, legacy, and what real
//! checkpoints carry), and files that must be refused.

use std::path::Path;

use burn::tensor::Device;
use cyclegan::checkpoint::{self, Direction, NetConfig};
use cyclegan::nets::{GeneratorArch, NormKind};

use crate::util::{assert_refused, fixture, run, tmp};

/// Largest per-channel difference between two 8-bit images of the same size.
pub fn max_pixel_diff(a: &Path, b: &Path) -> u8 {
    let a = image::open(a).unwrap().to_rgb8();
    let b = image::open(b).unwrap().to_rgb8();
    assert_eq!(a.dimensions(), b.dimensions(), "image sizes differ");
    a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| x.abs_diff(*y)).max().unwrap()
}

#[test]
fn imported_pth_translates_like_pytorch() {
    let dir = tmp();
    let g = dir.path().join("g.safetensors");
    let (ok, out, err) = run(&["import", fixture("g_resnet9.pth").to_str().unwrap(), "-o", g.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("resnet_9blocks generator (ngf 8, instance norm, 3 -> 3 channels)"), "{out}");

    let loaded = checkpoint::load_generator(&g, &Device::flex()).unwrap();
    let cfg = loaded.config;
    assert_eq!((cfg.arch, cfg.ngf, cfg.norm), (GeneratorArch::Resnet9Blocks, 8, NormKind::Instance));

    for case in ["square", "odd"] {
        let input = fixture(&format!("img_{case}.png"));
        let ours = dir.path().join(format!("{case}.png"));
        let (ok, _, err) = run(&["translate", "--model", g.to_str().unwrap(), input.to_str().unwrap(), "-o", ours.to_str().unwrap()]);
        assert!(ok, "{err}");
        let reference = fixture(&format!("ref_g_resnet9_{case}.png"));
        let diff = max_pixel_diff(&ours, &reference);
        assert!(diff <= 1, "{case}: differs from PyTorch by {diff} levels");
    }
}

#[test]
fn pth_translates_directly_and_legacy_wild_checkpoint_matches_clean_one() {
    let dir = tmp();
    let input = fixture("img_odd.png");
    let mut outputs = Vec::new();
    for model in ["g_resnet9.pth", "g_resnet9_wild_legacy.pth"] {
        let out = dir.path().join(format!("{model}.png"));
        let (ok, _, err) =
            run(&["translate", "--model", fixture(model).to_str().unwrap(), input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert!(ok, "{model}: {err}");
        outputs.push(image::open(&out).unwrap().to_rgb8());
    }
    assert_eq!(outputs[0], outputs[1], "the legacy DataParallel checkpoint must load to the same weights");
}

#[test]
fn legacy_quirks_are_normalized() {
    let (tensors, info) = checkpoint::read(&fixture("g_resnet9_wild_legacy.pth"), None).unwrap();
    assert!(tensors.contains("model.10.conv_block.1.weight"), "block renamed back to conv_block");
    assert!(!tensors.keys().any(|k| k.starts_with("module.") || k.contains("running_")), "prefix and stats dropped");
    let NetConfig::Generator(cfg) = info.config else { panic!() };
    assert_eq!(cfg.arch, GeneratorArch::Resnet9Blocks);
}

#[test]
fn hostile_pickle_is_refused_without_running_it() {
    let marker = Path::new("/tmp/cyclegan_pwned");
    let _ = std::fs::remove_file(marker);
    let dir = tmp();
    let out = dir.path().join("g.safetensors");
    let (ok, _, err) = run(&["import", fixture("hostile.pth").to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("hostile.pth") && err.contains("refused") && err.contains("posix.system"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
    assert!(!out.exists(), "no output on failure");
    assert!(!marker.exists(), "the payload ran");
}

#[test]
fn wrong_architecture_lists_missing_and_unexpected_keys() {
    let dir = tmp();
    let out = dir.path().join("g.safetensors");
    let (ok, _, err) =
        run(&["import", fixture("g_resnet9.pth").to_str().unwrap(), "--arch", "resnet_6blocks", "-o", out.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("does not fit a resnet_6blocks generator"), "{err}");
    assert!(err.contains("unexpected keys: model.16.conv_block.1.bias [32]"), "{err}");
    assert!(err.contains("missing keys: model.16.weight [32, 16, 3, 3]"), "{err}");
    assert!(err.contains("model.23.weight [3, 8, 7, 7]"), "{err}");
    assert!(!out.exists());

    // A discriminator is not a generator.
    let (mut tensors, _) = checkpoint::read_safetensors(&fixture("d_basic.safetensors")).unwrap();
    let d = dir.path().join("d.safetensors");
    checkpoint::save_dict(&d, &tensors.take_prefix("w"), Default::default()).unwrap();
    let (ok, _, err) = run(&["translate", "--model", d.to_str().unwrap(),
        fixture("img_square.png").to_str().unwrap(), "-o", dir.path().join("x.png").to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("d.safetensors: holds a discriminator, not a generator"), "{err}");
}

#[test]
fn truncated_and_empty_checkpoints_are_refused() {
    let dir = tmp();
    let img = fixture("img_square.png");
    let g = dir.path().join("g.safetensors");
    assert!(run(&["import", fixture("g_resnet9.pth").to_str().unwrap(), "-o", g.to_str().unwrap()]).0);
    let cases = [
        ("cut.safetensors", std::fs::read(&g).unwrap()[..300_000].to_vec(), "truncated"),
        ("cut.pth", std::fs::read(fixture("g_resnet9.pth")).unwrap()[..300_000].to_vec(), "truncated"),
        ("cut_legacy.pth", std::fs::read(fixture("g_resnet9_wild_legacy.pth")).unwrap()[..300_000].to_vec(), "truncated"),
        ("empty.safetensors", Vec::new(), "file is empty"),
        ("noise.pth", vec![7u8; 5000], "neither a safetensors nor a PyTorch checkpoint"),
    ];
    for (name, bytes, expected) in cases {
        let model = dir.path().join(name);
        std::fs::write(&model, bytes).unwrap();
        let out = dir.path().join(format!("{name}.png"));
        let (ok, _, err) = run(&["translate", "--model", model.to_str().unwrap(), img.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert_refused(&name, ok, &err, expected);
        assert!(err.contains(name), "{name}: {err}");
        assert!(!out.exists(), "{name}: output written");
    }
}

#[test]
fn saved_checkpoint_describes_itself_and_round_trips() {
    let dir = tmp();
    let g = dir.path().join("g.safetensors");
    let (ok, _, err) = run(&["import", fixture("g_unet256_gray.safetensors").to_str().unwrap(), "-o", g.to_str().unwrap()]);
    // A fixture file holds more than one network's tensors: it must not import.
    assert!(!ok && err.contains("g_unet256_gray.safetensors: the keys match no CycleGAN network"), "{err}");

    // A plain safetensors state dict (no metadata) imports with inference, and records the direction.
    let (tensors, _) = checkpoint::read_safetensors(&fixture("g_unet256_gray.safetensors")).unwrap();
    let mut tensors = tensors;
    let weights = tensors.take_prefix("w");
    let plain = dir.path().join("plain.safetensors");
    checkpoint::save_dict(&plain, &weights, Default::default()).unwrap();
    let (ok, out, err) = run(&["import", plain.to_str().unwrap(), "--direction", "b2a", "-o", g.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("unet_256 generator (ngf 2, instance norm, 1 -> 1 channels)"), "{out}");
    let loaded = checkpoint::load_generator(&g, &Device::flex()).unwrap();
    assert_eq!(loaded.direction, Some(Direction::B2A));
    let again = checkpoint::StateDict::from_net(&loaded.net, "");
    assert_eq!(again.len(), weights.len());
    for (k, v) in weights.iter() {
        assert_eq!(again.get(k).unwrap(), v, "{k} changed on the way");
    }
}
