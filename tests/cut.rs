//! CUT and FastCUT (issue 10) against the official code
//! (taesungp/contrastive-unpaired-translation), on the fixtures of
//! scripts/make_cut_fixtures.py: the anti-aliased networks, netF, the
//! PatchNCE loss and its gradient, and the first three training steps of
//! both modes with the official code's random draws replayed.

use std::collections::VecDeque;

use burn::tensor::{Device, Tensor};
use cyclegan::checkpoint::{self, NetConfig};
use cyclegan::nets::{
    DiscriminatorArch, DiscriminatorConfig, GeneratorArch, Initializer, NamedTensors, PatchFeatures,
    PatchSamplerConfig, Slot,
};
use cyclegan::rng::Rng;
use cyclegan::train::cut::{Draws, patch_nce};
use cyclegan::train::method::Method;
use cyclegan::train::options::TrainOptions;
use cyclegan::train::trainer::Trainer;
use serde_json::Value;

use crate::util::{Fixture, assert_close, assert_param_grad, fixture, floats, generator_config, rel_l2};

const LAYERS: [usize; 5] = [0, 4, 8, 12, 16];

#[test]
fn generators_match_the_official_code_with_and_without_antialiasing() {
    let device = Device::flex();
    for case in ["aa", "noaa", "aa_noup"] {
        let fx = Fixture::open(&format!("cut_g_{case}"));
        let cfg = generator_config(&fx);
        let weights = fx.tensors.clone().take_prefix("w");
        // the keys alone say which variant it is (the filt buffers)
        match checkpoint::infer(&weights).unwrap() {
            NetConfig::Generator(inferred) => assert_eq!(inferred, cfg, "{case}: inferred from the keys"),
            other => panic!("{case}: inferred {other:?}"),
        }
        let mut g = cfg.init(&Initializer::ForLoading, &mut Rng::seed_from(0), &device);
        weights.load_into(&mut g).unwrap();
        let x: Tensor<4> = fx.tensor("input", &device);
        assert_close(&format!("{case}: output"), &g.forward(x.clone()).into_data(), &fx.data("output"), 1e-5);
        let feats = g.features(x, &LAYERS);
        assert_eq!(feats.len(), LAYERS.len());
        for (layer, f) in LAYERS.iter().zip(feats) {
            assert_close(&format!("{case}: feature {layer}"), &f.into_data(), &fx.data(&format!("feat.{layer}")), 1e-5);
        }
    }
}

/// The blurs' backward passes, through the whole anti-aliased generator.
#[test]
fn antialiased_generator_gradients_match() {
    let device = Device::flex().autodiff();
    let fx = Fixture::open("cut_g_aa");
    let mut g = generator_config(&fx).init(&Initializer::ForLoading, &mut Rng::seed_from(0), &device);
    fx.tensors.clone().take_prefix("w").load_into(&mut g).unwrap();
    let x = fx.tensor::<4>("input", &device).require_grad();
    let grads = (g.forward(x.clone()) * fx.tensor::<4>("probe", &device)).sum().backward();
    assert_close("input gradient", &x.grad(&grads).unwrap().into_data(), &fx.data("grad.input"), 1e-4);
    let mut compared = 0;
    g.visit_named("", &mut |key, slot| {
        let got = match slot {
            Slot::Weight(p) => p.val().grad(&grads).map(|g| g.into_data()),
            Slot::Vector(p, _) => p.val().grad(&grads).map(|g| g.into_data()),
            _ => return,
        };
        assert_param_grad(&key, &fx, &key, &got.unwrap_or_else(|| panic!("{key}: no gradient")), 1e-4);
        compared += 1;
    });
    assert!(compared > 20, "{compared} parameters compared");
}

#[test]
fn antialiased_patchgan_matches_with_gradients() {
    let device = Device::flex().autodiff();
    let fx = Fixture::open("cut_d_aa");
    let weights = fx.tensors.clone().take_prefix("w");
    let cfg = DiscriminatorConfig { ndf: 4, antialias: true, ..DiscriminatorConfig::new(DiscriminatorArch::Basic) };
    assert_eq!(checkpoint::infer(&weights).unwrap(), NetConfig::Discriminator(cfg.clone()));
    let mut d = cfg.init(&Initializer::ForLoading, &mut Rng::seed_from(0), &device);
    weights.load_into(&mut d).unwrap();
    let x = fx.tensor::<4>("input", &device).require_grad();
    let y = d.forward(x.clone());
    assert_close("output", &y.clone().into_data(), &fx.data("output"), 1e-5);
    let grads = (y * fx.tensor::<4>("probe", &device)).sum().backward();
    assert_close("input gradient", &x.grad(&grads).unwrap().into_data(), &fx.data("grad.input"), 1e-4);
    d.visit_named("", &mut |key, slot| {
        if let Slot::Weight(p) = slot {
            assert_close(&key, &p.val().grad(&grads).unwrap().into_data(), &fx.data(&format!("grad.{key}")), 1e-4);
        }
    });
}

/// A file whose blur filter is not the official one is refused, naming the key.
#[test]
fn a_changed_blur_filter_is_refused() {
    let fx = Fixture::open("cut_d_aa");
    let mut weights = fx.tensors.clone().take_prefix("w");
    let filt = weights.get("model.2.filt").unwrap().clone();
    let changed: Vec<f32> = floats(&filt).iter().map(|v| v * 2.0).collect();
    weights.insert("model.2.filt".into(), burn::tensor::TensorData::new(changed, filt.shape().to_vec()));
    let cfg = DiscriminatorConfig { ndf: 4, antialias: true, ..DiscriminatorConfig::new(DiscriminatorArch::Basic) };
    let mut d = cfg.init(&Initializer::ForLoading, &mut Rng::seed_from(0), &Device::flex());
    let err = weights.load_into(&mut d).unwrap_err();
    assert_eq!(err.wrong, vec!["model.2.filt: not the fixed filter this architecture uses".to_string()], "{err}");
    assert!(err.missing.is_empty() && err.unexpected.is_empty(), "{err}");
}

#[test]
fn netf_projections_match() {
    let device = Device::flex();
    let fx = Fixture::open("cut_netf");
    let feats: Vec<Tensor<4>> = LAYERS.iter().map(|l| fx.tensor(&format!("feat.{l}"), &device)).collect();
    let channels = feats.iter().map(|f| f.dims()[1]).collect();
    let cfg = PatchSamplerConfig { kind: PatchFeatures::MlpSample, channels, nc: fx.num("nc").unwrap() };
    let mut f = cfg.init(&Initializer::ForLoading, &mut Rng::seed_from(0), &device);
    fx.tensors.clone().take_prefix("w").load_into(&mut f).unwrap();
    let ids: Vec<Vec<usize>> = LAYERS
        .iter()
        .map(|l| fx.data(&format!("ids.{l}")).convert::<i64>().try_to_vec::<i64>().unwrap().into_iter().map(|i| i as usize).collect())
        .collect();
    for ((layer, got), want) in LAYERS.iter().zip(f.forward(&feats, &ids)).zip(LAYERS.map(|l| fx.data(&format!("out.{l}")))) {
        assert_close(&format!("netF layer {layer}"), &got.into_data(), &want, 1e-5);
    }
}

#[test]
fn patch_nce_loss_and_gradient_match() {
    let device = Device::flex().autodiff();
    let fx = Fixture::open("cut_nce");
    let images = fx.num("images").unwrap();
    for (name, groups) in [("same", images), ("all", 1)] {
        let q = fx.tensor::<2>("q", &device).require_grad();
        let loss = patch_nce(q.clone(), fx.tensor("k", &device), groups, 0.07);
        assert_close(&format!("{name}: per-patch loss"), &loss.clone().into_data(), &fx.data(&format!("{name}.loss")), 1e-5);
        let grads = loss.mean().backward();
        assert_close(&format!("{name}: gradient"), &q.grad(&grads).unwrap().into_data(), &fx.data(&format!("{name}.grad_q")), 1e-5);
    }
}

/// The official code's draws, replayed in order.
struct Replay(VecDeque<Value>);

impl Draws for Replay {
    fn flip(&mut self) -> bool {
        let d = self.0.pop_front().expect("a recorded draw");
        assert_eq!(d[0], "rand", "the next recorded draw is {d}");
        d[1].as_f64().unwrap() < 0.5
    }

    fn patch_ids(&mut self, positions: usize, count: usize) -> Vec<usize> {
        let d = self.0.pop_front().expect("a recorded draw");
        assert_eq!(d[0], "perm", "the next recorded draw is {d:.40}");
        let ids: Vec<usize> = d[1].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        assert_eq!(ids.len(), count.min(positions), "patches drawn from {positions} positions");
        ids
    }

    fn uniform(&mut self) -> f64 {
        panic!("the fixtures train with LSGAN: no penalty draws")
    }
}

fn check_parity(method: Method) {
    check_parity_on(method, &Device::flex(), "cpu", 1e-4, 1e-4);
}

/// The official code's first three steps on `device`: the first within
/// `first` relative, all within `all`.
pub fn check_parity_on(method: Method, device: &Device, device_name: &str, first: f64, all: f64) {
    let name = method.name();
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(fixture(&format!("cut_train_{name}.json"))).unwrap()).unwrap();
    let fx = Fixture::open(&format!("cut_train_init_{name}"));
    let opts = TrainOptions {
        model: method,
        net_g: GeneratorArch::Resnet6Blocks,
        ngf: 4,
        ndf: 8,
        net_f_nc: Some(32),
        ..TrainOptions::default()
    };
    // the options the fixture was made with are the mode's defaults
    let cut = opts.cut();
    let o = &reference["options"];
    assert_eq!((cut.lambda_nce, cut.nce_idt, cut.flip_equivariance), (o["lambda_NCE"].as_f64().unwrap(), o["nce_idt"].as_bool().unwrap(), o["flip_equivariance"].as_bool().unwrap()));
    assert_eq!((opts.n_epochs(), opts.n_epochs_decay()), (o["n_epochs"].as_u64().unwrap() as usize, o["n_epochs_decay"].as_u64().unwrap() as usize));
    assert_eq!(cyclegan::train::options::value_name(&opts.init_type()), o["init_type"].as_str().unwrap());
    let device = device.clone().autodiff();
    let Trainer::Cut(mut trainer) = Trainer::new(&opts.clone().check().unwrap(), &Initializer::ForLoading, &mut Rng::seed_from(0), &device) else {
        panic!("--model {name} makes a CUT trainer")
    };
    let mut tensors = fx.tensors.clone();
    tensors.take_prefix("G").load_into(&mut trainer.nets.g).unwrap();
    tensors.take_prefix("D").load_into(&mut trainer.nets.d).unwrap();
    tensors.take_prefix("F").load_into(&mut trainer.nets.f).unwrap();
    let steps = reference["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    for (i, step) in steps.iter().enumerate() {
        let a = fx.tensor::<4>(&format!("A{}", i % 2), &device);
        let b = fx.tensor::<4>(&format!("B{}", i % 2), &device);
        let mut replay = Replay(step["draws"].as_array().unwrap().iter().cloned().collect());
        let out = trainer.step_with(a, b, 2e-4, &mut replay);
        assert!(replay.0.is_empty(), "step {}: {} recorded draws left", i + 1, replay.0.len());
        let want = step["losses"].as_object().unwrap();
        let mut names: Vec<&str> = out.losses.names().collect();
        names.sort_unstable();
        assert_eq!(names, want.keys().map(String::as_str).collect::<Vec<_>>(), "loss names (sorted)");
        // each loss against the official one, the worst printed first (also when one fails)
        let differences: Vec<(&str, f64, f64, f64)> = want
            .iter()
            .map(|(loss, r)| {
                let (o, r) = (out.losses.get(loss).unwrap(), r.as_f64().unwrap());
                (loss.as_str(), o, r, (o - r).abs() / r.abs().max(1e-12))
            })
            .collect();
        let worst = differences.iter().map(|d| (d.3, d.0)).fold((0.0, ""), |w, c| if c.0 > w.0 { c } else { w });
        eprintln!("{name} on {device_name}, step {}: largest relative difference {worst:?}", i + 1);
        let tol = if i == 0 { first } else { all };
        for (loss, o, r, rel) in differences {
            assert!(rel < tol, "{name} on {device_name}, step {} {loss}: ours {o}, official {r} (relative {rel:.2e})", i + 1);
        }
    }
}

#[test]
fn cut_first_three_steps_match_the_official_code() {
    check_parity(Method::Cut);
}

#[test]
fn fastcut_first_three_steps_match_the_official_code() {
    check_parity(Method::Fastcut);
}

/// Draws that flip (or not) every step, and count how often they were asked.
struct FixedFlip {
    flip: bool,
    asked: usize,
}

impl Draws for FixedFlip {
    fn flip(&mut self) -> bool {
        self.asked += 1;
        self.flip
    }

    fn patch_ids(&mut self, positions: usize, count: usize) -> Vec<usize> {
        (0..count.min(positions)).collect()
    }

    fn uniform(&mut self) -> f64 {
        0.5
    }
}

/// `--flip-equivariance` (FastCUT's default) flips the step's inputs when
/// the draw says so: the translation shown is G of the mirrored input; with
/// the option off the draw is never made.
#[test]
fn flip_equivariance_translates_the_mirrored_input() {
    let device = Device::flex().autodiff();
    for (flip_equivariance, flip) in [(true, true), (true, false), (false, true)] {
        let opts = TrainOptions {
            model: Method::Fastcut,
            net_g: GeneratorArch::Resnet6Blocks,
            ngf: 4,
            ndf: 8,
            net_f_nc: Some(16),
            num_patches: Some(8),
            flip_equivariance: Some(flip_equivariance),
            ..TrainOptions::default()
        };
        let Trainer::Cut(mut trainer) = Trainer::new(&opts.check().unwrap(), &Initializer::default(), &mut Rng::seed_from(1), &device) else {
            panic!("a CUT trainer")
        };
        let fx = Fixture::open("cut_train_init_fastcut");
        let (a, b) = (fx.tensor::<4>("A0", &device), fx.tensor::<4>("B0", &device));
        let g0 = trainer.nets.g.clone();
        let mut draws = FixedFlip { flip, asked: 0 };
        let out = trainer.step_with(a.clone(), b, 2e-4, &mut draws);
        assert_eq!(draws.asked, usize::from(flip_equivariance), "flip draws with --flip-equivariance {flip_equivariance}");
        let shown = floats(&out.visuals.rows[0][1].clone().unwrap().into_data());
        let input = if flip_equivariance && flip { a.clone().flip([3]) } else { a.clone() };
        let want = floats(&g0.forward(input).detach().into_data());
        assert!(rel_l2(&shown, &want) < 1e-6, "flip {flip}: the translation is not G of the {} input", if flip { "mirrored" } else { "given" });
        let other = floats(&g0.forward(if flip_equivariance && flip { a } else { a.flip([3]) }).detach().into_data());
        assert!(rel_l2(&shown, &other) > 1e-2, "the input is not symmetric enough to tell a flip");
    }
}
