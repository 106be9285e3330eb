//! The ResNet generator (Johnson et al. 2016, as adapted by the CycleGAN
//! paper): a 7x7 stem, two stride-2 downsamplings, `n_blocks` residual
//! blocks, two transposed-conv upsamplings and a 7x7 head with tanh.
//!
//! Official keys: `model.{i}` indexes the `nn.Sequential`, in which padding,
//! activations and norms without parameters still take an index. For
//! `resnet_9blocks` the convs are `model.1`, `model.4`, `model.7`, the blocks
//! `model.10`..`model.18`, the transposed convs `model.19`, `model.22` and the
//! head `model.26`.

use burn::module::Module;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::init::Initializer;
use super::layers::{Conv2d, ConvTranspose2d, Dropout, Norm, NormStats, reflect_pad};
use super::named::{NamedTensors, Slot};
use super::{GeneratorConfig, key};
use crate::rng::Rng;

/// Sequential indices taken by the stem (pad, conv, norm, relu) and by each
/// down/upsampling stage (conv, norm, relu).
const STEM_LEN: usize = 4;
const STAGE_LEN: usize = 3;
const N_SAMPLING: usize = 2;

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
        let y = relu(self.norm1.forward_with(self.conv1.forward(reflect_pad(x.clone(), 1)), stats));
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

/// A convolution (or transposed one), its norm and a ReLU.
#[derive(Module, Debug)]
pub struct DownStage {
    pub conv: Conv2d,
    pub norm: Norm,
}

#[derive(Module, Debug)]
pub struct UpStage {
    pub conv: ConvTranspose2d,
    pub norm: Norm,
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

impl ResnetGenerator {
    pub fn new(cfg: &GeneratorConfig, n_blocks: usize, init: &Initializer, rng: &mut Rng, device: &Device) -> Self {
        let ngf = cfg.ngf;
        let bias = cfg.norm.conv_bias();
        let stem = Conv2d::new([cfg.input_nc, ngf], 7, 1, 0, bias, init, rng, device);
        let stem_norm = Norm::new(cfg.norm, ngf, init, rng, device);
        let down = (0..N_SAMPLING)
            .map(|i| {
                let c = ngf << i;
                DownStage {
                    conv: Conv2d::new([c, 2 * c], 3, 2, 1, bias, init, rng, device),
                    norm: Norm::new(cfg.norm, 2 * c, init, rng, device),
                }
            })
            .collect();
        let dim = ngf << N_SAMPLING;
        let blocks = (0..n_blocks).map(|_| ResnetBlock::new(dim, cfg, init, rng, device)).collect();
        let up = (0..N_SAMPLING)
            .map(|i| {
                let c = ngf << (N_SAMPLING - i);
                UpStage {
                    conv: ConvTranspose2d::new([c, c / 2], 3, 2, 1, 1, bias, init, rng, device),
                    norm: Norm::new(cfg.norm, c / 2, init, rng, device),
                }
            })
            .collect();
        let head = Conv2d::new([ngf, cfg.output_nc], 7, 1, 0, true, init, rng, device);
        Self { stem, stem_norm, down, blocks, up, head }
    }

    pub fn forward(&self, x: Tensor<4>, stats: &mut NormStats) -> Tensor<4> {
        let mut x = relu(self.stem_norm.forward_with(self.stem.forward(reflect_pad(x, 3)), stats));
        for stage in &self.down {
            x = relu(stage.norm.forward_with(stage.conv.forward(x), stats));
        }
        for block in &self.blocks {
            x = block.forward(x, stats);
        }
        for stage in &self.up {
            x = relu(stage.norm.forward_with(stage.conv.forward(x), stats));
        }
        self.head.forward(reflect_pad(x, 3)).tanh()
    }
}

impl NamedTensors for ResnetGenerator {
    fn visit_named(&mut self, prefix: &str, f: &mut dyn FnMut(String, Slot<'_>)) {
        let m = key(prefix, "model");
        self.stem.visit_named(&key(&m, 1), f);
        self.stem_norm.visit_named(&key(&m, 2), f);
        let mut i = STEM_LEN;
        for stage in &mut self.down {
            stage.conv.visit_named(&key(&m, i), f);
            stage.norm.visit_named(&key(&m, i + 1), f);
            i += STAGE_LEN;
        }
        for block in &mut self.blocks {
            block.visit_named(&key(&m, i), f);
            i += 1;
        }
        for stage in &mut self.up {
            stage.conv.visit_named(&key(&m, i), f);
            stage.norm.visit_named(&key(&m, i + 1), f);
            i += STAGE_LEN;
        }
        // reflection pad at i, head conv at i + 1, tanh at i + 2
        self.head.visit_named(&key(&m, i + 1), f);
    }
}
