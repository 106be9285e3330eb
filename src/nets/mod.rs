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

mod discriminator;
mod init;
mod layers;
mod named;
mod resnet;
mod unet;

pub use discriminator::{NLayerDiscriminator, PixelDiscriminator};
pub use init::{InitType, Initializer};
pub use layers::{Conv2d, ConvTranspose2d, Dropout, Norm, NormStats};
pub use named::{NamedTensors, Slot, SlotRole};
pub use resnet::{ResnetBlock, ResnetGenerator};
pub use unet::{UnetBlock, UnetGenerator};

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// Generator architectures (`--netG`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ValueEnum)]
pub enum GeneratorArch {
    /// ResNet generator with 9 residual blocks (the CycleGAN default, for 256 px).
    #[serde(rename = "resnet_9blocks")]
    #[value(name = "resnet_9blocks")]
    Resnet9Blocks,
    /// ResNet generator with 6 residual blocks (the paper's choice for 128 px).
    #[serde(rename = "resnet_6blocks")]
    #[value(name = "resnet_6blocks")]
    Resnet6Blocks,
    /// U-Net with 8 downsamplings (256 px becomes 1x1 at the bottleneck).
    #[serde(rename = "unet_256")]
    #[value(name = "unet_256")]
    Unet256,
    /// U-Net with 7 downsamplings (for 128 px).
    #[serde(rename = "unet_128")]
    #[value(name = "unet_128")]
    Unet128,
}

impl GeneratorArch {
    /// The official name, as `--netG` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Resnet9Blocks => "resnet_9blocks",
            Self::Resnet6Blocks => "resnet_6blocks",
            Self::Unet256 => "unet_256",
            Self::Unet128 => "unet_128",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::value_variants().iter().copied().find(|a| a.name() == name)
    }

    /// Height and width of an input must be multiples of this.
    ///
    /// The ResNet generator downsamples twice; the U-Net halves the image
    /// once per level down to 1x1.
    pub fn size_multiple(self) -> usize {
        match self {
            Self::Resnet9Blocks | Self::Resnet6Blocks => 4,
            Self::Unet256 => 256,
            Self::Unet128 => 128,
        }
    }

    /// The smallest height and width the network takes: the ResNet's residual
    /// blocks reflect-pad by 1 at a quarter of the input size, which needs 2 px there.
    pub fn min_size(self) -> usize {
        match self {
            Self::Resnet9Blocks | Self::Resnet6Blocks => 8,
            Self::Unet256 | Self::Unet128 => self.size_multiple(),
        }
    }
}

/// Discriminator architectures (`--netD`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DiscriminatorArch {
    /// 70x70 PatchGAN: `n_layers` fixed at 3.
    #[value(name = "basic")]
    Basic,
    /// PatchGAN with `--n-layers-d` strided layers.
    #[value(name = "n_layers")]
    NLayers,
    /// 1x1 PixelGAN.
    #[value(name = "pixel")]
    Pixel,
}

impl DiscriminatorArch {
    pub fn name(self) -> &'static str {
        match self {
            Self::Basic => "basic",
            Self::NLayers => "n_layers",
            Self::Pixel => "pixel",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::value_variants().iter().copied().find(|a| a.name() == name)
    }
}

/// Normalisation layers (`--norm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    /// Instance norm without affine parameters or running statistics (the CycleGAN default).
    #[value(name = "instance")]
    Instance,
    /// Instance norm with a learned scale and shift (the TensorFlow tutorial's generator).
    #[value(name = "instance_affine")]
    InstanceAffine,
    /// Batch norm with affine parameters and running statistics.
    #[value(name = "batch")]
    Batch,
    /// No normalisation.
    #[value(name = "none")]
    None,
}

impl NormKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Instance => "instance",
            Self::InstanceAffine => "instance_affine",
            Self::Batch => "batch",
            Self::None => "none",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::value_variants().iter().copied().find(|a| a.name() == name)
    }

    /// Whether convolutions followed by this norm carry a bias.
    ///
    /// The official code gives them one only for instance norm
    /// (`use_bias = norm_layer.func == nn.InstanceNorm2d`): batch norm's shift
    /// makes it redundant, and `none` inherits the `False`.
    pub fn conv_bias(self) -> bool {
        matches!(self, Self::Instance | Self::InstanceAffine)
    }
}

/// Everything needed to rebuild a generator; recorded in its checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratorConfig {
    pub arch: GeneratorArch,
    pub input_nc: usize,
    pub output_nc: usize,
    pub ngf: usize,
    pub norm: NormKind,
    pub dropout: bool,
}

impl GeneratorConfig {
    pub fn new(arch: GeneratorArch) -> Self {
        Self { arch, input_nc: 3, output_nc: 3, ngf: 64, norm: NormKind::Instance, dropout: false }
    }

    pub fn init(&self, init: &Initializer, rng: &mut Rng, device: &Device) -> Generator {
        match self.arch {
            GeneratorArch::Resnet9Blocks => Generator::Resnet(ResnetGenerator::new(self, 9, init, rng, device)),
            GeneratorArch::Resnet6Blocks => Generator::Resnet(ResnetGenerator::new(self, 6, init, rng, device)),
            GeneratorArch::Unet256 => Generator::Unet(UnetGenerator::new(self, 8, init, rng, device)),
            GeneratorArch::Unet128 => Generator::Unet(UnetGenerator::new(self, 7, init, rng, device)),
        }
    }
}

/// Everything needed to rebuild a discriminator; recorded in its checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscriminatorConfig {
    pub arch: DiscriminatorArch,
    pub input_nc: usize,
    pub ndf: usize,
    /// Strided layers of the `n_layers` PatchGAN (3 for `basic`).
    pub n_layers: usize,
    pub norm: NormKind,
}

impl DiscriminatorConfig {
    pub fn new(arch: DiscriminatorArch) -> Self {
        Self { arch, input_nc: 3, ndf: 64, n_layers: 3, norm: NormKind::Instance }
    }

    pub fn init(&self, init: &Initializer, rng: &mut Rng, device: &Device) -> Discriminator {
        match self.arch {
            DiscriminatorArch::Basic => Discriminator::NLayer(NLayerDiscriminator::new(self, 3, init, rng, device)),
            DiscriminatorArch::NLayers => {
                Discriminator::NLayer(NLayerDiscriminator::new(self, self.n_layers, init, rng, device))
            }
            DiscriminatorArch::Pixel => Discriminator::Pixel(PixelDiscriminator::new(self, init, rng, device)),
        }
    }
}

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
