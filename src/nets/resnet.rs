//! The ResNet generator (Johnson et al. 2016, as adapted by the CycleGAN
//! paper): a 7x7 stem, two stride-2 downsamplings, `n_blocks` residual
//! blocks, two transposed-conv upsamplings and a 7x7 head with tanh.
//!
//! Official keys: `model.{i}` indexes the `nn.Sequential`, in which padding,
//! activations and norms without parameters still take an index. For
//! `resnet_9blocks` the convs are `model.1`, `model.4`, `model.7`, the blocks
//! `model.10`..`model.18`, the transposed convs `model.19`, `model.22` and the
//! head `model.26`.
//!
//! CUT's variant (Park et al. 2020) is anti-aliased: each downsampling conv
//! has stride 1 and a blur with stride 2 after its ReLU, each upsampling
//! stage is a blur to twice the size and then a 3x3 conv. The blurs take
//! indices too (`model.7.filt`, `model.11.filt`, `model.21.filt`,
//! `model.25.filt` for 9 blocks), and CUT reads features at indices of this
//! sequence ([`ResnetGenerator::features`]).

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::blur::{BlurDown, BlurUp};
use super::init::Initializer;
use super::layers::{Conv2d, ConvTranspose2d, Dropout, Norm, NormStats, reflect_pad};
use super::named::{NamedTensors, Slot};
use super::{GeneratorConfig, key};
use crate::rng::Rng;

/// Sequential indices taken by the stem (pad, conv, norm, relu), by each
/// down/upsampling stage (conv, norm, relu; one more for an anti-aliasing
/// blur) and by the head (pad, conv, tanh).
const STEM_LEN: usize = 4;
const STAGE_LEN: usize = 3;
const HEAD_LEN: usize = 3;
const N_SAMPLING: usize = 2;

/// How many indices the official `nn.Sequential` of this generator has (the
/// largest index CUT's `nce_layers` may name is one less).
pub fn sequential_len(cfg: &GeneratorConfig, n_blocks: usize) -> usize {
    let down = STAGE_LEN + usize::from(cfg.antialias);
    let up = STAGE_LEN + usize::from(cfg.antialias_up);
    STEM_LEN + N_SAMPLING * down + n_blocks + N_SAMPLING * up + HEAD_LEN
}

/// `x + conv_block(x)`, where `conv_block` is
/// `[pad, conv, norm, relu, (dropout), pad, conv, norm]`.
#[derive(Module, Debug)]
pub struct ResnetBlock {
    pub conv1: Conv2d,
    pub norm1: Norm,
    pub dropout: Dropout,
    pub conv2: Conv2d,
    pub norm2: Norm,
}

impl ResnetBlock {
    fn new(dim: usize, cfg: &GeneratorConfig, init: &Initializer, rng: &mut Rng, device: &Device) -> Self {
        let bias = cfg.norm.conv_bias();
        Self {
            conv1: Conv2d::new([dim, dim], 3, 1, 0, bias, init, rng, device),
            norm1: Norm::new(cfg.norm, dim, init, rng, device),
            dropout: Dropout { enabled: cfg.dropout },
            conv2: Conv2d::new([dim, dim], 3, 1, 0, bias, init, rng, device),
            norm2: Norm::new(cfg.norm, dim, init, rng, device),
        }
    }

    pub fn forward(&self, x: Tensor<4>, stats: &mut NormStats) -> Tensor<4> {
        let y = self.norm1.forward_relu_with(self.conv1.forward(reflect_pad(x.clone(), 1)), stats);
        let y = self.dropout.forward(y);
        let y = self.norm2.forward_with(self.conv2.forward(reflect_pad(y, 1)), stats);
        x + y
    }
}

impl NamedTensors for ResnetBlock {
    fn visit_named(&mut self, prefix: &str, f: &mut dyn FnMut(String, Slot<'_>)) {
        // Dropout, when present, sits at index 4 and shifts the second half by one.
        let second = if self.dropout.enabled { 6 } else { 5 };
        let p = key(prefix, "conv_block");
        self.conv1.visit_named(&key(&p, 1), f);
        self.norm1.visit_named(&key(&p, 2), f);
        self.conv2.visit_named(&key(&p, second), f);
        self.norm2.visit_named(&key(&p, second + 1), f);
    }
}

/// A downsampling stage: a 3x3 convolution (stride 2, or stride 1 followed by
/// the blur when anti-aliased), its norm and a ReLU.
#[derive(Module, Debug)]
pub struct DownStage {
    pub conv: Conv2d,
    pub norm: Norm,
    pub blur: Option<BlurDown>,
}

impl DownStage {
    /// Sequential indices it takes: conv, norm, relu (and the blur).
    fn len(&self) -> usize {
        STAGE_LEN + usize::from(self.blur.is_some())
    }
}

/// The convolution of an upsampling stage.
#[derive(Module, Debug)]
pub enum UpConv {
    /// CycleGAN: a 3x3 transposed convolution with stride 2.
    Transposed(ConvTranspose2d),
    /// CUT's anti-aliased stage: a 3x3 convolution after the blur to twice the size.
    AfterBlur(Conv2d),
}

/// An upsampling stage: (the blur,) the convolution, its norm and a ReLU.
#[derive(Module, Debug)]
pub struct UpStage {
    pub blur: Option<BlurUp>,
    pub conv: UpConv,
    pub norm: Norm,
}

impl UpStage {
    fn len(&self) -> usize {
        STAGE_LEN + usize::from(self.blur.is_some())
    }
}

#[derive(Module, Debug)]
pub struct ResnetGenerator {
    pub stem: Conv2d,
    pub stem_norm: Norm,
    pub down: Vec<DownStage>,
    pub blocks: Vec<ResnetBlock>,
    pub up: Vec<UpStage>,
    pub head: Conv2d,
}

/// Which outputs of the official `nn.Sequential` to keep (CUT's `nce_layers`),
/// and whether to stop after the last (`encode_only`).
struct Taps<'a> {
    layers: &'a [usize],
    feats: Vec<Tensor<4>>,
    encode_only: bool,
}

impl Taps<'_> {
    /// Keep `x` as the output of index `i` if asked for; true when the walk may stop.
    fn at(&mut self, i: usize, x: &Tensor<4>) -> bool {
        if self.layers.contains(&i) {
            self.feats.push(x.clone());
        }
        self.encode_only && self.layers.last() == Some(&i)
    }

    /// A norm at `i` and the in-place `ReLU(True)` after it at `i + 1`: the
    /// official code's features at the norm's index hold the ReLU's output,
    /// because the ReLU overwrites them.
    fn norm_relu(&mut self, i: usize, x: &Tensor<4>) -> bool {
        self.at(i, x) || self.at(i + 1, x)
    }
}

impl ResnetGenerator {
    pub fn new(cfg: &GeneratorConfig, n_blocks: usize, init: &Initializer, rng: &mut Rng, device: &Device) -> Self {
        let ngf = cfg.ngf;
        let bias = cfg.norm.conv_bias();
        let stem = Conv2d::new([cfg.input_nc, ngf], 7, 1, 0, bias, init, rng, device);
        let stem_norm = Norm::new(cfg.norm, ngf, init, rng, device);
        let down = (0..N_SAMPLING)
            .map(|i| {
                let c = ngf << i;
                let stride = if cfg.antialias { 1 } else { 2 };
                DownStage {
                    conv: Conv2d::new([c, 2 * c], 3, stride, 1, bias, init, rng, device),
                    norm: Norm::new(cfg.norm, 2 * c, init, rng, device),
                    blur: cfg.antialias.then_some(BlurDown { channels: 2 * c }),
                }
            })
            .collect();
        let dim = ngf << N_SAMPLING;
        let blocks = (0..n_blocks).map(|_| ResnetBlock::new(dim, cfg, init, rng, device)).collect();
        let up = (0..N_SAMPLING)
            .map(|i| {
                let c = ngf << (N_SAMPLING - i);
                let conv = if cfg.antialias_up {
                    UpConv::AfterBlur(Conv2d::new([c, c / 2], 3, 1, 1, bias, init, rng, device))
                } else {
                    UpConv::Transposed(ConvTranspose2d::new([c, c / 2], 3, 2, 1, 1, bias, init, rng, device))
                };
                UpStage {
                    blur: cfg.antialias_up.then_some(BlurUp { channels: c }),
                    conv,
                    norm: Norm::new(cfg.norm, c / 2, init, rng, device),
                }
            })
            .collect();
        let head = Conv2d::new([ngf, cfg.output_nc], 7, 1, 0, true, init, rng, device);
        Self { stem, stem_norm, down, blocks, up, head }
    }

    pub fn forward(&self, x: Tensor<4>, stats: &mut NormStats) -> Tensor<4> {
        let mut taps = Taps { layers: &[], feats: Vec::new(), encode_only: false };
        self.run(x, stats, &mut taps).expect("the whole network runs without taps")
    }

    /// The outputs of the official `nn.Sequential` at `layers` (ascending),
    /// as CUT's `netG(x, layers, encode_only=True)` returns them: the walk
    /// stops after the last one.
    pub fn features(&self, x: Tensor<4>, layers: &[usize]) -> Vec<Tensor<4>> {
        let mut taps = Taps { layers, feats: Vec::new(), encode_only: true };
        self.run(x, &mut NormStats::PerImage, &mut taps);
        taps.feats
    }

    /// The network module by module, in the official order, keeping the
    /// outputs `taps` asks for. `None` when the taps stopped the walk early.
    fn run(&self, x: Tensor<4>, stats: &mut NormStats, taps: &mut Taps) -> Option<Tensor<4>> {
        let x = reflect_pad(x, 3);
        if taps.at(0, &x) {
            return None;
        }
        let x = self.stem.forward(x);
        if taps.at(1, &x) {
            return None;
        }
        let mut x = self.stem_norm.forward_relu_with(x, stats);
        if taps.norm_relu(2, &x) {
            return None;
        }
        let mut i = STEM_LEN;
        for stage in &self.down {
            x = stage.conv.forward(x);
            if taps.at(i, &x) {
                return None;
            }
            x = stage.norm.forward_relu_with(x, stats);
            if taps.norm_relu(i + 1, &x) {
                return None;
            }
            if let Some(blur) = &stage.blur {
                x = blur.forward(x);
                if taps.at(i + 3, &x) {
                    return None;
                }
            }
            i += stage.len();
        }
        for block in &self.blocks {
            x = block.forward(x, stats);
            if taps.at(i, &x) {
                return None;
            }
            i += 1;
        }
        for stage in &self.up {
            let mut j = i;
            if let Some(blur) = &stage.blur {
                x = blur.forward(x);
                if taps.at(j, &x) {
                    return None;
                }
                j += 1;
            }
            x = match &stage.conv {
                UpConv::Transposed(conv) => conv.forward(x),
                UpConv::AfterBlur(conv) => conv.forward(x),
            };
            if taps.at(j, &x) {
                return None;
            }
            x = stage.norm.forward_relu_with(x, stats);
            if taps.norm_relu(j + 1, &x) {
                return None;
            }
            i += stage.len();
        }
        let x = reflect_pad(x, 3);
        if taps.at(i, &x) {
            return None;
        }
        let x = self.head.forward(x);
        if taps.at(i + 1, &x) {
            return None;
        }
        let x = x.tanh();
        if taps.at(i + 2, &x) {
            return None;
        }
        Some(x)
    }
}

impl NamedTensors for ResnetGenerator {
    fn visit_named(&mut self, prefix: &str, f: &mut dyn FnMut(String, Slot<'_>)) {
        let m = key(prefix, "model");
        self.stem.visit_named(&key(&m, 1), f);
        self.stem_norm.visit_named(&key(&m, 2), f);
        let mut i = STEM_LEN;
        for stage in &mut self.down {
            let len = stage.len();
            stage.conv.visit_named(&key(&m, i), f);
            stage.norm.visit_named(&key(&m, i + 1), f);
            if let Some(blur) = &mut stage.blur {
                blur.visit_named(&key(&m, i + 3), f);
            }
            i += len;
        }
        for block in &mut self.blocks {
            block.visit_named(&key(&m, i), f);
            i += 1;
        }
        for stage in &mut self.up {
            let len = stage.len();
            let mut j = i;
            if let Some(blur) = &mut stage.blur {
                blur.visit_named(&key(&m, j), f);
                j += 1;
            }
            match &mut stage.conv {
                UpConv::Transposed(conv) => conv.visit_named(&key(&m, j), f),
                UpConv::AfterBlur(conv) => conv.visit_named(&key(&m, j), f),
            }
            stage.norm.visit_named(&key(&m, j + 1), f);
            i += len;
        }
        // reflection pad at i, head conv at i + 1, tanh at i + 2
        self.head.visit_named(&key(&m, i + 1), f);
    }
}
