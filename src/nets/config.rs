//! The typed description of each network: architecture, channels, widths,
//! norm. It is what `--netG`/`--netD` and friends parse into, what a
//! checkpoint's metadata records and what key inference reads off a
//! `.pth`; [`GeneratorConfig::validate`] and [`DiscriminatorConfig::validate`]
//! are the one check all of those pass through before a network is built.

use burn::tensor::Device;
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use super::init::Initializer;
use super::{Discriminator, Generator, NLayerDiscriminator, PixelDiscriminator, ResnetGenerator, UnetGenerator};
use crate::rng::Rng;

/// The widest first layer (`ngf`, `ndf`) accepted: four times the official
/// default. A ResNet-9 generator at this width has 180 M parameters (0.7 GB);
/// wider ones are almost surely a corrupt or crafted file.
pub const MAX_FILTERS: usize = 256;
/// The most strided layers of an `n_layers` PatchGAN (a 256 px image is down
/// to 1 px after 8).
pub const MAX_LAYERS: usize = 8;

/// A network description that cannot be built, in the user's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{what} is {n}: images have 1 (gray), 3 (RGB) or 4 (RGBA) channels")]
    Channels { what: &'static str, n: usize },
    #[error("{what} is {n}: it must be 1 to {MAX_FILTERS}")]
    Filters { what: &'static str, n: usize },
    #[error("n_layers is {0}: a PatchGAN has 1 to {MAX_LAYERS} strided layers")]
    Layers(usize),
    #[error("{0} has no anti-aliased variant (only the ResNet generators and the PatchGAN do)")]
    Antialias(&'static str),
    #[error("{what} is {n}: it must be 1 to {max}")]
    Width { what: &'static str, n: usize, max: usize },
}

impl ConfigError {
    /// The `cyclegan train` option that sets what is wrong.
    pub fn option(&self) -> &'static str {
        match self {
            Self::Channels { what: "input_nc", .. } => "--input-nc",
            Self::Channels { .. } => "--output-nc",
            Self::Filters { what: "ngf", .. } => "--ngf",
            Self::Filters { .. } => "--ndf",
            Self::Layers(_) => "--n-layers-d",
            Self::Antialias(_) => "--no-antialias",
            Self::Width { .. } => "--netF-nc",
        }
    }
}

fn channels(what: &'static str, n: usize) -> Result<(), ConfigError> {
    if matches!(n, 1 | 3 | 4) { Ok(()) } else { Err(ConfigError::Channels { what, n }) }
}

fn filters(what: &'static str, n: usize) -> Result<(), ConfigError> {
    if (1..=MAX_FILTERS).contains(&n) { Ok(()) } else { Err(ConfigError::Filters { what, n }) }
}

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

    pub fn is_resnet(self) -> bool {
        matches!(self, Self::Resnet9Blocks | Self::Resnet6Blocks)
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
    /// CUT's anti-aliased downsampling: stride-1 convolutions, each followed
    /// by a blur with stride 2 (ResNet only; CycleGAN's networks have none).
    #[serde(default)]
    pub antialias: bool,
    /// CUT's anti-aliased upsampling: a blur to twice the size, then a 3x3
    /// convolution, instead of a transposed convolution.
    #[serde(default)]
    pub antialias_up: bool,
}

impl GeneratorConfig {
    pub fn new(arch: GeneratorArch) -> Self {
        Self {
            arch,
            input_nc: 3,
            output_nc: 3,
            ngf: 64,
            norm: NormKind::Instance,
            dropout: false,
            antialias: false,
            antialias_up: false,
        }
    }

    /// Whether this generator can be built and run on images.
    pub fn validate(&self) -> Result<(), ConfigError> {
        channels("input_nc", self.input_nc)?;
        channels("output_nc", self.output_nc)?;
        filters("ngf", self.ngf)?;
        if (self.antialias || self.antialias_up) && !self.arch.is_resnet() {
            return Err(ConfigError::Antialias(self.arch.name()));
        }
        Ok(())
    }

    /// Indices of the official `nn.Sequential` (what CUT's `--nce-layers`
    /// index); 0 for the U-Nets, whose layers are nested.
    pub fn sequential_len(&self) -> usize {
        match self.arch {
            GeneratorArch::Resnet9Blocks => super::resnet::sequential_len(self, 9),
            GeneratorArch::Resnet6Blocks => super::resnet::sequential_len(self, 6),
            GeneratorArch::Unet256 | GeneratorArch::Unet128 => 0,
        }
    }

    /// Build the network; `self` must have passed [`Self::validate`].
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
    /// CUT's anti-aliased PatchGAN: stride-1 convolutions, each followed by a blur with stride 2.
    #[serde(default)]
    pub antialias: bool,
}

impl DiscriminatorConfig {
    pub fn new(arch: DiscriminatorArch) -> Self {
        Self { arch, input_nc: 3, ndf: 64, n_layers: 3, norm: NormKind::Instance, antialias: false }
    }

    /// Whether this discriminator can be built and run on images.
    pub fn validate(&self) -> Result<(), ConfigError> {
        channels("input_nc", self.input_nc)?;
        filters("ndf", self.ndf)?;
        if !(1..=MAX_LAYERS).contains(&self.n_layers) {
            return Err(ConfigError::Layers(self.n_layers));
        }
        if self.antialias && self.arch == DiscriminatorArch::Pixel {
            return Err(ConfigError::Antialias("the pixel discriminator"));
        }
        Ok(())
    }

    /// The smallest height and width this discriminator judges (at least one
    /// output patch): 24 px for `basic`, 1 for the PixelGAN.
    pub fn min_size(&self) -> usize {
        let n_layers = match self.arch {
            DiscriminatorArch::Pixel => return 1,
            DiscriminatorArch::Basic => 3,
            DiscriminatorArch::NLayers => self.n_layers,
        };
        (1..=1 << 16).find(|&side| NLayerDiscriminator::output_side(self, n_layers, side).is_some()).unwrap_or(usize::MAX)
    }

    /// Build the network; `self` must have passed [`Self::validate`].
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

