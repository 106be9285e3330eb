//! The U-Net generator of pix2pix (Isola et al. 2017), offered by CycleGAN as
//! `unet_256` / `unet_128`: `num_downs` stride-2 4x4 convs down to 1x1, the
//! mirror image up, and a skip connection around every level.
//!
//! The official code nests one `UnetSkipConnectionBlock` inside the next; we
//! keep the blocks in a flat list, outermost first, and recurse by index. The
//! keys still nest: the outermost block is `model.model`, its child
//! `model.model.1.model`, and each further child `....model.3.model`.
//!
//! One quirk is kept on purpose: the official `LeakyReLU(0.2, inplace=True)`
//! at the top of every inner block rewrites the block's input before it is
//! concatenated into the skip connection, so the skip carries
//! `leaky_relu(x)`, not `x`. Official checkpoints were trained that way.

use burn::module::Module;
use burn::tensor::activation::{leaky_relu, relu};
use burn::tensor::{Device, Tensor};

use super::init::Initializer;
use super::layers::{Conv2d, ConvTranspose2d, Dropout, Norm, NormStats};
use super::named::{NamedTensors, Slot};
use super::{GeneratorConfig, key};
use crate::rng::Rng;

const LEAKY_SLOPE: f64 = 0.2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Outermost,
    Middle,
    Innermost,
}

/// One level of the U-Net: down conv, (the next level), up conv.
#[derive(Module, Debug)]
pub struct UnetBlock {
    #[module(skip)]
    pub level: Level,
    pub down: Conv2d,
    /// Only on middle levels.
    pub down_norm: Option<Norm>,
    pub up: ConvTranspose2d,
    /// On every level but the outermost.
    pub up_norm: Option<Norm>,
    pub dropout: Dropout,
}

impl UnetBlock {
    #[allow(clippy::too_many_arguments)]
    fn new(
        level: Level,
        outer: usize,
        inner: usize,
        input: usize,
        dropout: bool,
        cfg: &GeneratorConfig,
        init: &Initializer,
        rng: &mut Rng,
        device: &Device,
    ) -> Self {
        let bias = cfg.norm.conv_bias();
        let down = Conv2d::new([input, inner], 4, 2, 1, bias, init, rng, device);
        let down_norm = (level == Level::Middle).then(|| Norm::new(cfg.norm, inner, init, rng, device));
        // The levels below the innermost return their input concatenated with their output.
        let up_in = if level == Level::Innermost { inner } else { 2 * inner };
        let up_bias = level == Level::Outermost || bias;
        let up = ConvTranspose2d::new([up_in, outer], 4, 2, 1, 0, up_bias, init, rng, device);
        let up_norm = (level != Level::Outermost).then(|| Norm::new(cfg.norm, outer, init, rng, device));
        Self { level, down, down_norm, up, up_norm, dropout: Dropout { enabled: dropout } }
    }

    /// Sequential indices of (down conv, down norm, child, up conv, up norm) in the official block.
    fn indices(&self) -> [usize; 5] {
        match self.level {
            Level::Outermost => [0, usize::MAX, 1, 3, usize::MAX],
            Level::Middle => [1, 2, 3, 5, 6],
            Level::Innermost => [1, usize::MAX, usize::MAX, 3, 4],
        }
    }
}

#[derive(Module, Debug)]
pub struct UnetGenerator {
    /// Outermost level first.
    pub blocks: Vec<UnetBlock>,
}

impl UnetGenerator {
    pub fn new(cfg: &GeneratorConfig, num_downs: usize, init: &Initializer, rng: &mut Rng, device: &Device) -> Self {
        assert!(num_downs >= 5, "a U-Net needs at least 5 levels");
        let ngf = cfg.ngf;
        let mut blocks = vec![
            UnetBlock::new(Level::Outermost, cfg.output_nc, ngf, cfg.input_nc, false, cfg, init, rng, device),
            UnetBlock::new(Level::Middle, ngf, 2 * ngf, ngf, false, cfg, init, rng, device),
            UnetBlock::new(Level::Middle, 2 * ngf, 4 * ngf, 2 * ngf, false, cfg, init, rng, device),
            UnetBlock::new(Level::Middle, 4 * ngf, 8 * ngf, 4 * ngf, false, cfg, init, rng, device),
        ];
        for _ in 0..num_downs - 5 {
            blocks.push(UnetBlock::new(Level::Middle, 8 * ngf, 8 * ngf, 8 * ngf, cfg.dropout, cfg, init, rng, device));
        }
        blocks.push(UnetBlock::new(Level::Innermost, 8 * ngf, 8 * ngf, 8 * ngf, false, cfg, init, rng, device));
        Self { blocks }
    }

    pub fn forward(&self, x: Tensor<4>, stats: &mut NormStats) -> Tensor<4> {
        self.forward_level(0, x, stats)
    }

    fn forward_level(&self, i: usize, x: Tensor<4>, stats: &mut NormStats) -> Tensor<4> {
        let b = &self.blocks[i];
        let x = match b.level {
            Level::Outermost => x,
            _ => leaky_relu(x, LEAKY_SLOPE),
        };
        let mut y = b.down.forward(x.clone());
        if let Some(norm) = &b.down_norm {
            y = norm.forward_with(y, stats);
        }
        if b.level != Level::Innermost {
            y = self.forward_level(i + 1, y, stats);
        }
        y = b.up.forward(relu(y));
        match &b.up_norm {
            None => y.tanh(),
            Some(norm) => {
                let y = b.dropout.forward(norm.forward_with(y, stats));
                Tensor::cat(vec![x, y], 1)
            }
        }
    }
}

impl NamedTensors for UnetGenerator {
    fn visit_named(&mut self, prefix: &str, f: &mut dyn FnMut(String, Slot<'_>)) {
        visit_levels(&mut self.blocks, &key(prefix, "model"), f);
    }
}

/// Visit a level and, between its down and up halves, the levels inside it.
fn visit_levels(blocks: &mut [UnetBlock], prefix: &str, f: &mut dyn FnMut(String, Slot<'_>)) {
    let Some((b, inner)) = blocks.split_first_mut() else { return };
    let seq = key(prefix, "model");
    let [down, down_norm, child, up, up_norm] = b.indices();
    b.down.visit_named(&key(&seq, down), f);
    if let Some(norm) = &mut b.down_norm {
        norm.visit_named(&key(&seq, down_norm), f);
    }
    visit_levels(inner, &key(&seq, child), f);
    b.up.visit_named(&key(&seq, up), f);
    if let Some(norm) = &mut b.up_norm {
        norm.visit_named(&key(&seq, up_norm), f);
    }
}
