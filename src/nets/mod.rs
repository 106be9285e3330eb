//! The networks of the official CycleGAN code, with its parameter names.
//!
//! Zhu, Park, Isola, Efros, "Unpaired Image-to-Image Translation using
//! Cycle-Consistent Adversarial Networks", ICCV 2017. The official PyTorch
//! code names the networks G_A (the paper's G: A -> B), G_B (F: B -> A),
//! D_A (D_Y, judges domain B) and D_B (D_X, judges domain A).
//!
//! Every network is described by a small typed config ([`GeneratorConfig`],
//! [`DiscriminatorConfig`]); that config is also what a checkpoint's metadata
//! records, so a file rebuilds its own network.

mod blur;
mod config;
mod discriminator;
mod init;
mod layers;
mod named;
pub mod patch_sample;
mod resnet;
mod unet;

pub use discriminator::{NLayerDiscriminator, PixelDiscriminator};
pub use init::{InitType, Initializer};
pub use blur::{BlurDown, BlurUp};
pub use layers::{Conv2d, ConvTranspose2d, Dropout, Linear, Norm, NormStats};
pub use named::{NamedTensors, Slot, SlotRole};
pub use patch_sample::{PatchFeatures, PatchSampler, PatchSamplerConfig};
pub use resnet::{ResnetBlock, ResnetGenerator, UpConv};
pub use unet::{Level as UnetLevel, UnetBlock, UnetGenerator};
pub use config::{
    ConfigError, DiscriminatorArch, DiscriminatorConfig, GeneratorArch, GeneratorConfig, MAX_FILTERS, MAX_LAYERS, NormKind,
};

use burn::module::Module;
use burn::tensor::Tensor;

/// A generator of any architecture.
#[derive(Module, Debug)]
pub enum Generator {
    Resnet(ResnetGenerator),
    Unet(UnetGenerator),
}

impl Generator {
    /// Images in `[-1, 1]`, shape `[N, input_nc, H, W]`, to `[N, output_nc, H, W]`.
    /// H and W must be multiples of the architecture's [`GeneratorArch::size_multiple`].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_with(x, &mut NormStats::PerImage)
    }

    /// The outputs of the official `nn.Sequential` at `layers` (CUT's
    /// `netG(x, layers, encode_only=True)`). Only the ResNet generators have
    /// such a sequence; CUT's options refuse the U-Nets before any is built.
    pub fn features(&self, x: Tensor<4>, layers: &[usize]) -> Vec<Tensor<4>> {
        match self {
            Self::Resnet(g) => g.features(x, layers),
            Self::Unet(_) => panic!("CUT's features come from a ResNet generator (TrainOptions::validate refuses U-Nets)"),
        }
    }

    /// The forward pass with instance-norm statistics taken from `stats`.
    pub fn forward_with(&self, x: Tensor<4>, stats: &mut NormStats) -> Tensor<4> {
        match self {
            Self::Resnet(g) => g.forward(x, stats),
            Self::Unet(g) => g.forward(x, stats),
        }
    }
}

impl NamedTensors for Generator {
    fn visit_named(&mut self, prefix: &str, f: &mut dyn FnMut(String, Slot<'_>)) {
        match self {
            Self::Resnet(g) => g.visit_named(prefix, f),
            Self::Unet(g) => g.visit_named(prefix, f),
        }
    }
}

/// A discriminator of any architecture.
#[derive(Module, Debug)]
pub enum Discriminator {
    NLayer(NLayerDiscriminator),
    Pixel(PixelDiscriminator),
}

impl Discriminator {
    /// Images `[N, input_nc, H, W]` to a map of real/fake logits `[N, 1, h, w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Self::NLayer(d) => d.forward(x),
            Self::Pixel(d) => d.forward(x),
        }
    }

    /// The output and its directional derivative along `dx` (a forward-mode
    /// derivative; burn's autodiff then differentiates both with respect to
    /// the weights, which is what the WGAN-GP penalty's gradient needs).
    /// LeakyReLU's slope counts as constant, as in PyTorch's double backward.
    pub fn forward_tangent(&self, x: Tensor<4>, dx: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        match self {
            Self::NLayer(d) => d.forward_tangent(x, dx),
            Self::Pixel(d) => d.forward_tangent(x, dx),
        }
    }
}

impl NamedTensors for Discriminator {
    fn visit_named(&mut self, prefix: &str, f: &mut dyn FnMut(String, Slot<'_>)) {
        match self {
            Self::NLayer(d) => d.visit_named(prefix, f),
            Self::Pixel(d) => d.visit_named(prefix, f),
        }
    }
}

/// Join a key prefix and a name the way PyTorch's `state_dict` does.
pub(crate) fn key(prefix: &str, name: impl std::fmt::Display) -> String {
    if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") }
}
