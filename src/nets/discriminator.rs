//! The discriminators: the PatchGAN of pix2pix/CycleGAN (`basic` is the
//! 70x70 one, `n_layers` sets its depth) and the 1x1 PixelGAN.
//!
//! Official keys: `model.{i}` for the PatchGAN (convs at 0, then every third
//! index: `model.{0,2,5,8,11}` for `basic`; CUT's anti-aliased one
//! `model.{0,3,7,11,14}` with the blurs' `filt` at `model.{2,6,10}`),
//! `net.{0,2,3,5}` for the PixelGAN.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::blur::BlurDown;
use super::init::Initializer;
use super::layers::{Conv2d, Norm, leaky_relu_tangent};
use super::named::{NamedTensors, Slot};
use super::{DiscriminatorConfig, key};
use crate::ops;
use crate::rng::Rng;

const LEAKY_SLOPE: f64 = 0.2;
const KERNEL: usize = 4;
const PAD: usize = 1;

/// `leaky_relu(x, LEAKY_SLOPE)`: on the CPU one op each way
/// ([`ops::activation`]), not burn's comparison, product and selection.
fn leaky(x: Tensor<4>) -> Tensor<4> {
    ops::activation(x, ops::Activation::LeakyRelu(LEAKY_SLOPE as f32))
}

/// conv, norm, LeakyReLU(0.2), and in CUT's anti-aliased PatchGAN a blur with stride 2.
#[derive(Module, Debug)]
pub struct PatchStage {
    pub conv: Conv2d,
    pub norm: Norm,
    pub blur: Option<BlurDown>,
}

/// PatchGAN: a stride-2 conv and LeakyReLU, `n_layers - 1` more stride-2
/// stages, one stride-1 stage, and a 1-channel stride-1 conv; each output
/// value judges one receptive-field patch (70x70 with `n_layers = 3`).
/// Anti-aliased (CUT), every stride-2 conv becomes a stride-1 conv followed
/// by a blur with stride 2 after its LeakyReLU.
#[derive(Module, Debug)]
pub struct NLayerDiscriminator {
    pub first: Conv2d,
    pub first_blur: Option<BlurDown>,
    pub stages: Vec<PatchStage>,
    pub last: Conv2d,
}

impl NLayerDiscriminator {
    pub fn new(cfg: &DiscriminatorConfig, n_layers: usize, init: &Initializer, rng: &mut Rng, device: &Device) -> Self {
        let ndf = cfg.ndf;
        let bias = cfg.norm.conv_bias();
        let down = if cfg.antialias { 1 } else { 2 };
        let first = Conv2d::new([cfg.input_nc, ndf], KERNEL, down, PAD, true, init, rng, device);
        let first_blur = cfg.antialias.then_some(BlurDown { channels: ndf });
        let mut stages = Vec::new();
        let mut mult = 1;
        for n in 1..=n_layers {
            let prev = mult;
            mult = (1 << n).min(8);
            let downsamples = n < n_layers;
            stages.push(PatchStage {
                conv: Conv2d::new([ndf * prev, ndf * mult], KERNEL, if downsamples { down } else { 1 }, PAD, bias, init, rng, device),
                norm: Norm::new(cfg.norm, ndf * mult, init, rng, device),
                blur: (downsamples && cfg.antialias).then_some(BlurDown { channels: ndf * mult }),
            });
        }
        let last = Conv2d::new([ndf * mult, 1], KERNEL, 1, PAD, true, init, rng, device);
        Self { first, first_blur, stages, last }
    }

    /// The side of the output for an input of side `side`, or `None` where a
    /// layer would get less than it needs (a 4x4 convolution with padding 1
    /// needs 2 px, and so does a blur's reflection padding). Follows [`Self::new`].
    pub fn output_side(cfg: &DiscriminatorConfig, n_layers: usize, side: usize) -> Option<usize> {
        let conv = |s: usize, stride: usize| (s + 2 * PAD).checked_sub(KERNEL).map(|r| r / stride + 1);
        let blur = |s: usize| (s >= 2).then(|| (s - 1) / 2 + 1);
        let down = if cfg.antialias { 1 } else { 2 };
        let mut s = conv(side, down)?;
        if cfg.antialias {
            s = blur(s)?;
        }
        for n in 1..=n_layers {
            let downsamples = n < n_layers;
            s = conv(s, if downsamples { down } else { 1 })?;
            if downsamples && cfg.antialias {
                s = blur(s)?;
            }
        }
        conv(s, 1)
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = leaky(self.first.forward(x));
        if let Some(blur) = &self.first_blur {
            x = blur.forward(x);
        }
        for stage in &self.stages {
            x = stage.norm.forward_leaky_relu(stage.conv.forward(x), LEAKY_SLOPE);
            if let Some(blur) = &stage.blur {
                x = blur.forward(x);
            }
        }
        self.last.forward(x)
    }

    /// The output and its directional derivative along `dx` (the blurs are linear).
    pub fn forward_tangent(&self, x: Tensor<4>, dx: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let (x, dx) = self.first.forward_tangent(x, dx);
        let (mut x, mut dx) = leaky_relu_tangent(x, dx, LEAKY_SLOPE);
        if let Some(blur) = &self.first_blur {
            (x, dx) = (blur.forward(x), blur.forward(dx));
        }
        for stage in &self.stages {
            let (y, dy) = stage.conv.forward_tangent(x, dx);
            let (y, dy) = stage.norm.forward_tangent(y, dy);
            (x, dx) = leaky_relu_tangent(y, dy, LEAKY_SLOPE);
            if let Some(blur) = &stage.blur {
                (x, dx) = (blur.forward(x), blur.forward(dx));
            }
        }
        self.last.forward_tangent(x, dx)
    }
}

impl NamedTensors for NLayerDiscriminator {
    fn visit_named(&mut self, prefix: &str, f: &mut dyn FnMut(String, Slot<'_>)) {
        // conv, LeakyReLU (and blur), then conv, norm, LeakyReLU (and blur) per stage
        let m = key(prefix, "model");
        self.first.visit_named(&key(&m, 0), f);
        let mut i = 2;
        if let Some(blur) = &mut self.first_blur {
            blur.visit_named(&key(&m, i), f);
            i += 1;
        }
        for stage in &mut self.stages {
            stage.conv.visit_named(&key(&m, i), f);
            stage.norm.visit_named(&key(&m, i + 1), f);
            i += 3;
            if let Some(blur) = &mut stage.blur {
                blur.visit_named(&key(&m, i), f);
                i += 1;
            }
        }
        self.last.visit_named(&key(&m, i), f);
    }
}

/// PixelGAN: 1x1 convs only, judging each pixel on its own.
#[derive(Module, Debug)]
pub struct PixelDiscriminator {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub norm: Norm,
    pub conv3: Conv2d,
}

impl PixelDiscriminator {
    pub fn new(cfg: &DiscriminatorConfig, init: &Initializer, rng: &mut Rng, device: &Device) -> Self {
        let ndf = cfg.ndf;
        let bias = cfg.norm.conv_bias();
        Self {
            conv1: Conv2d::new([cfg.input_nc, ndf], 1, 1, 0, true, init, rng, device),
            conv2: Conv2d::new([ndf, 2 * ndf], 1, 1, 0, bias, init, rng, device),
            norm: Norm::new(cfg.norm, 2 * ndf, init, rng, device),
            conv3: Conv2d::new([2 * ndf, 1], 1, 1, 0, bias, init, rng, device),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = leaky(self.conv1.forward(x));
        let x = self.norm.forward_leaky_relu(self.conv2.forward(x), LEAKY_SLOPE);
        self.conv3.forward(x)
    }

    /// The output and its directional derivative along `dx`.
    pub fn forward_tangent(&self, x: Tensor<4>, dx: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let (x, dx) = self.conv1.forward_tangent(x, dx);
        let (x, dx) = leaky_relu_tangent(x, dx, LEAKY_SLOPE);
        let (x, dx) = self.conv2.forward_tangent(x, dx);
        let (x, dx) = self.norm.forward_tangent(x, dx);
        let (x, dx) = leaky_relu_tangent(x, dx, LEAKY_SLOPE);
        self.conv3.forward_tangent(x, dx)
    }
}

impl NamedTensors for PixelDiscriminator {
    fn visit_named(&mut self, prefix: &str, f: &mut dyn FnMut(String, Slot<'_>)) {
        let m = key(prefix, "net");
        self.conv1.visit_named(&key(&m, 0), f);
        self.conv2.visit_named(&key(&m, 2), f);
        self.norm.visit_named(&key(&m, 3), f);
        self.conv3.visit_named(&key(&m, 5), f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nets::{DiscriminatorArch, Initializer, InitType, NormKind};

    /// The size arithmetic agrees with the network: at the smallest size the
    /// output has the predicted side, one pixel less would leave a layer nothing.
    #[test]
    fn smallest_input_gives_the_predicted_output() {
        let device = Device::flex();
        let init = Initializer::new(InitType::Normal, 0.02);
        assert_eq!(DiscriminatorConfig::new(DiscriminatorArch::Basic).min_size(), 24);
        assert_eq!(DiscriminatorConfig::new(DiscriminatorArch::Pixel).min_size(), 1);
        for (n_layers, antialias) in [(1, false), (3, false), (5, false), (1, true), (3, true), (4, true)] {
            let cfg = DiscriminatorConfig {
                n_layers,
                antialias,
                ndf: 1,
                input_nc: 1,
                norm: NormKind::Instance,
                ..DiscriminatorConfig::new(DiscriminatorArch::NLayers)
            };
            let min = cfg.min_size();
            assert_eq!(NLayerDiscriminator::output_side(&cfg, n_layers, min - 1), None, "{n_layers} {antialias}");
            let net = NLayerDiscriminator::new(&cfg, n_layers, &init, &mut Rng::seed_from(0), &device);
            for side in [min, min + 3] {
                let y = net.forward(Tensor::zeros([1, 1, side, side + 1], &device));
                let expect = |s| NLayerDiscriminator::output_side(&cfg, n_layers, s).unwrap();
                assert_eq!(y.dims(), [1, 1, expect(side), expect(side + 1)], "{n_layers} layers, antialias {antialias}, side {side}");
            }
        }
    }
}
