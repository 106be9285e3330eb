//! Golden tests: every network variant against the PyTorch reference
//! (fixtures made by scripts/make_fixtures.py).

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use cyclegan::nets::{
    Discriminator, DiscriminatorArch, DiscriminatorConfig, Generator, Initializer,
    NamedTensors, NormKind, Slot,
};
use cyclegan::rng::Rng;

use crate::util::{Fixture, assert_close, assert_param_grad, device, generator_config, tolerance};


enum Net {
    G(Generator),
    D(Discriminator),
}

impl Net {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Net::G(g) => g.forward(x),
            Net::D(d) => d.forward(x),
        }
    }

    fn named(&mut self) -> &mut dyn NamedTensors {
        match self {
            Net::G(g) => g,
            Net::D(d) => d,
        }
    }
}

/// Build the fixture's network from its metadata and load the fixture's weights.
fn build(fx: &Fixture, device: &Device) -> Net {
    let norm = NormKind::from_name(fx.str("norm").unwrap_or("instance")).unwrap();
    let input_nc = fx.num("input_nc").unwrap_or(3);
    let mut rng = Rng::seed_from(0);
    let init = Initializer::ForLoading;
    let mut net = match fx.str("net").unwrap() {
        "generator" => Net::G(generator_config(fx).init(&init, &mut rng, device)),
        _ => Net::D(
            DiscriminatorConfig {
                arch: DiscriminatorArch::from_name(fx.str("arch").unwrap()).unwrap(),
                input_nc,
                ndf: fx.num("ndf").unwrap(),
                n_layers: fx.num("n_layers").unwrap_or(3),
                norm,
                antialias: false,
            }
            .init(&init, &mut rng, device),
        ),
    };
    let mut tensors = fx.tensors.clone();
    let weights = tensors.take_prefix("w");
    weights.load_into(net.named()).unwrap();
    net
}

/// Evaluation-mode output (and for batch norm, training-mode output and the
/// running statistics it leaves) against PyTorch.
fn check_forward(name: &str) {
    check_forward_on(name, &device(), tolerance());
}

/// [`check_forward`] on `device` within `tol`.
pub fn check_forward_on(name: &str, device: &Device, tol: f64) {
    let fx = Fixture::open(name);
    let net = build(&fx, device);
    let y = net.forward(fx.tensor(name_input(), device));
    assert_close(&format!("{name} output"), &y.into_data(), &fx.data("output"), tol);

    if fx.str("norm") == Some("batch") {
        let ad = device.clone().autodiff();
        let mut net = build(&fx, &ad);
        let y = net.forward(fx.tensor(name_input(), &ad));
        assert_close(&format!("{name} train-mode output"), &y.into_data(), &fx.data("output_train"), tol);
        let mut checked = 0;
        net.named().visit_named("", &mut |key, slot| {
            if let Slot::Running(r) = slot {
                assert_close(&key, &r.value_sync().into_data(), &fx.data(&format!("after_train.{key}")), tol);
                checked += 1;
            }
        });
        assert!(checked > 0, "{name}: no running statistics compared");
    }
}

fn name_input() -> &'static str {
    "input"
}

/// Gradients of `sum(output * probe)` with respect to the input and every parameter.
fn check_grads(name: &str) {
    check_grads_on(name, &device(), tolerance());
}

/// [`check_grads`] on `device` within `tol`.
pub fn check_grads_on(name: &str, device: &Device, tol: f64) {
    let fx = Fixture::open(name);
    let device = device.clone().autodiff();
    let mut net = build(&fx, &device);
    let x: Tensor<4> = fx.tensor::<4>("input", &device).require_grad();
    let y = net.forward(x.clone());
    let loss = (y * fx.tensor::<4>("probe", &device)).sum();
    let grads = loss.backward();
    assert_close(&format!("{name} d/dinput"), &x.grad(&grads).unwrap().into_data(), &fx.data("grad.input"), tol);
    let mut got = Vec::new();
    net.named().visit_named("", &mut |key, slot| {
        let grad = match slot {
            Slot::Weight(p) => p.val().grad(&grads).map(|g| g.into_data()),
            Slot::Vector(p, _) => p.val().grad(&grads).map(|g| g.into_data()),
            _ => return,
        };
        got.push((key.clone(), grad.unwrap_or_else(|| panic!("{name}: no gradient for {key}"))));
    });
    let mut checked = 0;
    for (key, grad) in &got {
        assert_param_grad(&format!("{name} d/d{key}"), &fx, key, grad, tol);
        checked += 1;
    }
    assert!(checked >= 10, "{name}: only {checked} parameter gradients compared");
}

macro_rules! forward_cases {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check_forward(stringify!($name));
            }
        )*
        /// Every network variant with a forward fixture (the GPU-path tests run them all).
        #[cfg_attr(not(any(feature = "jit", feature = "wgpu", feature = "cuda")), allow(dead_code))]
        pub const FORWARD_CASES: &[&str] = &[$(stringify!($name)),*];
    };
}

/// The fixtures with weight gradients.
pub const GRADIENT_CASES: &[&str] = &["g_resnet6_grads", "g_unet128_grads", "d_basic"];

forward_cases!(
    g_resnet9,
    g_resnet6_grads,
    g_unet128,
    g_unet256_gray,
    g_unet128_grads,
    g_resnet6_batch,
    g_resnet6_none,
    g_resnet6_affine,
    g_resnet6_dropout,
    g_resnet6_rgba_to_gray,
    g_unet128_batch,
    g_unet128_affine,
    g_unet128_none,
    d_basic,
    d_nlayers2,
    d_nlayers4_batch,
    d_basic_none,
    d_basic_affine,
    d_pixel,
    d_pixel_batch,
    d_basic_gray,
);

#[test]
fn gradients_resnet_generator() {
    check_grads(GRADIENT_CASES[0]);
}

#[test]
fn gradients_unet_generator() {
    check_grads(GRADIENT_CASES[1]);
}

#[test]
fn gradients_patchgan() {
    check_grads(GRADIENT_CASES[2]);
}

/// Dropout is part of the network in training mode only: the same weights
/// give different outputs on two training-mode passes and none in evaluation.
#[test]
fn dropout_acts_only_in_training() {
    let fx = Fixture::open("g_resnet6_dropout");
    let ad = device().autodiff();
    let Net::G(net) = build(&fx, &ad) else { unreachable!() };
    let x: Tensor<4> = fx.tensor("input", &ad);
    let a = net.forward(x.clone()).into_data();
    let b = net.forward(x.clone()).into_data();
    assert_ne!(a, b, "two training passes drew the same dropout mask");
    let eval = net.valid();
    let plain = device();
    let c = eval.forward(fx.tensor("input", &plain)).into_data();
    assert_close("dropout eval", &c, &fx.data("output"), tolerance());
}
