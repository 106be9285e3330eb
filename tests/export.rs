//! `cyclegan export` (issue 12): every generator variant written as ONNX
//! and run by an independent runtime (tract) on odd-sized images padded to
//! the stride, against the project's own forward pass; the onnxruntime
//! check of scripts/check_onnx.py (its results committed as fixtures); bad
//! input.

use burn::tensor::{Device, Tensor, TensorData};
use cyclegan::checkpoint::{self, Direction, NetConfig, NetInfo};
use cyclegan::export::{ExportOptions, Format, export};
use cyclegan::nets::{DiscriminatorArch, DiscriminatorConfig, GeneratorArch, GeneratorConfig, Initializer, NormKind};
use cyclegan::rng::Rng;
use cyclegan::translate::{Translator, pad_to_fit};
use serde_json::Value;
use tract_onnx::prelude::{DatumExt, Framework, InferenceModelExt, tract_ndarray, tvec};

use crate::util::{Fixture, assert_refused, fixture, floats, generator_config, rel_l2, run, tmp};

const OPTIONS: ExportOptions = ExportOptions { format: Format::Onnx, opset: 17, fixed_size: None };

/// Run an ONNX file with tract on one `[1, C, H, W]` input.
fn tract_run(onnx: &[u8], input: &TensorData) -> Vec<f32> {
    let dims: Vec<usize> = input.shape().to_vec();
    let model = tract_onnx::onnx()
        .model_for_read(&mut &onnx[..])
        .unwrap()
        .with_input_fact(0, f32::fact(dims.clone()).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let x = tract_ndarray::ArrayD::from_shape_vec(dims, floats(input)).unwrap();
    let out = model.run(tvec!(tract_onnx::prelude::Tensor::from(x).into())).unwrap();
    out[0].to_array_view::<f32>().unwrap().iter().copied().collect()
}

/// An image-like input of `channels` at an odd size, padded to what the generator takes.
fn odd_input(cfg: &GeneratorConfig, device: &Device) -> Tensor<4> {
    let (h, w) = match cfg.arch {
        GeneratorArch::Unet256 => (250, 203),
        GeneratorArch::Unet128 => (121, 97),
        _ => (45, 37),
    };
    let values: Vec<f32> = (0..cfg.input_nc * h * w).map(|i| (((i * 7919) % 509) as f32 / 254.5 - 1.0) * 0.9).collect();
    let x = Tensor::<4>::from_data(TensorData::new(values, [1, cfg.input_nc, h, w]), device);
    pad_to_fit(x, cfg.arch).0
}

/// Export `cfg` with the fixture's (or random) weights, run it with tract, compare with our forward.
fn check(what: &str, translator: Translator) {
    let device = translator.device().clone();
    let x = odd_input(&translator.config, &device);
    let ours = translator.net.forward(x.clone()).into_data();
    let onnx = export(&translator, &OPTIONS).unwrap();
    let theirs = tract_run(&onnx, &x.into_data());
    let err = rel_l2(&theirs, &floats(&ours));
    assert!(err < 1e-4, "{what}: tract's output differs from ours by {err:.2e} relative L2");
}

fn from_fixture(name: &str) -> Translator {
    let device = Device::flex();
    let fx = Fixture::open(name);
    let cfg = generator_config(&fx);
    let mut g = cfg.init(&Initializer::ForLoading, &mut Rng::seed_from(0), &device);
    fx.tensors.clone().take_prefix("w").load_into(&mut g).unwrap();
    Translator::from_generator(g, cfg, Direction::A2B, &device)
}

/// Every architecture, norm and channel count the project runs, with
/// weights PyTorch made (fixtures) where they exist.
#[test]
fn every_generator_variant_runs_in_tract_as_in_our_forward() {
    for name in [
        "g_resnet9", "g_resnet6_affine", "g_resnet6_batch", "g_resnet6_none", "g_resnet6_rgba_to_gray", "g_resnet6_dropout",
        "g_unet128", "g_unet128_affine", "g_unet128_batch", "g_unet128_none", "g_unet256_gray",
        "cut_g_aa", "cut_g_noaa", "cut_g_aa_noup",
    ] {
        check(name, from_fixture(name));
    }
    // what the fixtures do not cover: gray in, RGBA out; a U-Net with 4 channels; CUT's down-only anti-aliasing
    let device = Device::flex();
    let init = Initializer::new(cyclegan::nets::InitType::Kaiming, 0.02);
    let made = [
        GeneratorConfig { input_nc: 1, output_nc: 4, ngf: 3, norm: NormKind::InstanceAffine, ..GeneratorConfig::new(GeneratorArch::Resnet6Blocks) },
        GeneratorConfig { input_nc: 4, output_nc: 4, ngf: 2, ..GeneratorConfig::new(GeneratorArch::Unet128) },
        GeneratorConfig { ngf: 3, antialias: true, ..GeneratorConfig::new(GeneratorArch::Resnet9Blocks) },
    ];
    for (i, cfg) in made.into_iter().enumerate() {
        let g = cfg.init(&init, &mut Rng::seed_from(i as u64), &device);
        check(&format!("{cfg:?}"), Translator::from_generator(g, cfg.clone(), Direction::B2A, &device));
    }
}

/// A fixed size is what the graph declares; the metadata says what the file is and how to feed it.
#[test]
fn fixed_size_and_metadata() {
    let t = from_fixture("g_resnet6_affine");
    let onnx = export(&t, &ExportOptions { fixed_size: Some((48, 40)), ..OPTIONS }).unwrap();
    let model = tract_onnx::onnx().model_for_read(&mut &onnx[..]).unwrap();
    let fact = format!("{:?}", model.input_fact(0).unwrap());
    assert!(fact.contains("48") && fact.contains("40"), "{fact}");
    let proto = tract_onnx::onnx().proto_model_for_read(&mut &onnx[..]).unwrap();
    let meta: std::collections::HashMap<String, String> = proto.metadata_props.iter().map(|p| (p.key.clone(), p.value.clone())).collect();
    assert_eq!(meta["arch"], "resnet_6blocks");
    assert_eq!(meta["norm"], "instance_affine");
    assert_eq!(meta["direction"], "a2b");
    assert_eq!(meta["size_multiple"], "4");
    assert!(meta["preprocessing"].contains("x / 127.5 - 1") && meta["preprocessing"].contains("reflect-pad bottom and right"), "{meta:?}");
    let ops: Vec<&str> = proto.graph.as_ref().unwrap().node.iter().map(|n| n.op_type.as_str()).collect();
    for op in ["Pad", "Conv", "InstanceNormalization", "Relu", "ConvTranspose", "Add", "Tanh"] {
        assert!(ops.contains(&op), "{op} in {ops:?}");
    }
    assert!(!ops.contains(&"Dropout"));
    let err = export(&from_fixture("g_resnet9"), &ExportOptions { fixed_size: Some((45, 40)), ..OPTIONS }).unwrap_err().to_string();
    assert!(err.contains("--fixed-size 45x40: resnet_9blocks takes sides that are multiples of 4"), "{err}");
}

/// scripts/check_onnx.py ran files `cyclegan export` wrote through onnxruntime
/// and onnx.checker; its outputs must be within one 8-bit level of `translate`,
/// and what `cyclegan export` writes now, run by tract on the same image, within
/// one level of them (so the committed outputs speak for today's exporter).
#[test]
fn onnxruntime_outputs_match_translate() {
    let results: Value = serde_json::from_str(&std::fs::read_to_string(fixture("onnx_check.json")).unwrap()).unwrap();
    let cases = results["cases"].as_array().unwrap();
    assert!(cases.len() >= 3, "{results}");
    let dir = tmp();
    for case in cases {
        let name = case["model"].as_str().unwrap();
        assert_eq!(case["checker"], "ok", "{name}: onnx.checker");
        for out in case["outputs"].as_array().unwrap() {
            let image = out["image"].as_str().unwrap();
            let ours = dir.path().join(format!("{name}_{image}"));
            let (ok, _, err) = run(&[
                "translate", "--model", fixture(name).to_str().unwrap(), fixture(image).to_str().unwrap(), "-o", ours.to_str().unwrap(),
            ]);
            assert!(ok, "{err}");
            let (a, b) = (image::open(&ours).unwrap().to_rgba8(), image::open(fixture(out["onnxruntime"].as_str().unwrap())).unwrap().to_rgba8());
            assert_eq!(a.dimensions(), b.dimensions(), "{name} {image}");
            let diff = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
            assert!(diff <= 1, "{name} {image}: onnxruntime and translate differ by {diff} levels");

            let onnx = dir.path().join(format!("{name}.onnx"));
            let (ok, _, err) = run(&["export", "--model", fixture(name).to_str().unwrap(), "-o", onnx.to_str().unwrap()]);
            assert!(ok, "{err}");
            let img = image::open(fixture(image)).unwrap();
            let data = cyclegan::image_io::to_data(&img, 3);
            let (h, w) = (data.height, data.width);
            let (x, _, _) = pad_to_fit(data.to_tensor(&Device::flex()), GeneratorArch::from_name(case["arch"].as_str().unwrap()).unwrap());
            let [_, _, ph, pw] = x.dims();
            let y = tract_run(&std::fs::read(&onnx).unwrap(), &x.into_data());
            let y = Tensor::<4>::from_data(TensorData::new(y, [1, 3, ph, pw]), &Device::flex()).slice([0..1, 0..3, 0..h, 0..w]);
            let exported = cyclegan::image_io::ImageData::from_tensor(y).to_image().to_rgba8();
            let diff = exported.as_raw().iter().zip(b.as_raw()).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
            assert!(diff <= 1, "{name} {image}: today's export (tract) and onnxruntime's output differ by {diff} levels");
        }
    }
}

#[test]
fn bad_input_gives_one_line_errors_and_no_file() {
    let dir = tmp();
    let out = dir.path().join("g.onnx");
    let g = fixture("g_resnet9.pth");
    // a discriminator file
    let disc = dir.path().join("d.safetensors");
    let cfg = DiscriminatorConfig { ndf: 4, ..DiscriminatorConfig::new(DiscriminatorArch::Basic) };
    let d = cfg.init(&Initializer::default(), &mut Rng::seed_from(0), &Device::flex());
    checkpoint::save(&disc, &d, &NetInfo { config: NetConfig::Discriminator(cfg), direction: None, model: None }).unwrap();
    let d_arg = disc.to_str().unwrap().to_string();
    let missing = dir.path().join("missing.pth");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--model", g.to_str().unwrap(), "--format", "coreml", "-o", out.to_str().unwrap()], "invalid value 'coreml' for '--format"),
        (vec!["--model", &d_arg, "-o", out.to_str().unwrap()], "holds a discriminator, not a generator"),
        (vec!["--model", g.to_str().unwrap(), "-o", "/nonexistent-dir/g.onnx"], "error: /nonexistent-dir/g.onnx: No such file or directory (os error 2)\n"),
        (vec!["--model", g.to_str().unwrap(), "--opset", "9", "-o", out.to_str().unwrap()], "--opset 9: the graph needs opset 13 to 21"),
        (vec!["--model", g.to_str().unwrap(), "--fixed-size", "big", "-o", out.to_str().unwrap()], "'big' is not HxW"),
        (vec!["--model", missing.to_str().unwrap(), "-o", out.to_str().unwrap()], "no such file or folder"),
    ];
    for (args, expected) in cases {
        let mut all = vec!["export"];
        all.extend(&args);
        let (ok, _, err) = run(&all);
        assert_refused(&args, ok, &err, expected);
        assert!(!out.exists(), "{args:?}: left a file");
    }
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains(".tmp")), "no partial file");
    let (ok, stdout, err) = run(&["export", "--model", g.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(ok && out.is_file(), "{err}");
    assert!(stdout.contains("exported resnet_9blocks"), "{stdout}");
}
