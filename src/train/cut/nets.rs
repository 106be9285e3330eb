//! The three networks of CUT and FastCUT, under their official names: G
//! (A to B, anti-aliased ResNet unless `--no-antialias`), D (judges domain
//! B) and F (netF, the patch projections of the PatchNCE loss).

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::checkpoint::{Direction, NetConfig, NetInfo, StateDict};
use crate::nets::{
    Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, Initializer, NamedTensors, PatchFeatures, PatchSampler,
    PatchSamplerConfig,
};
use crate::rng::Rng;
use crate::train::method::Method;
use crate::train::net_files::NamedNets;

pub struct CutNets {
    pub g: Generator,
    pub d: Discriminator,
    pub f: PatchSampler,
    pub g_config: GeneratorConfig,
    pub d_config: DiscriminatorConfig,
    pub f_config: PatchSamplerConfig,
    pub model: Method,
}

/// One of the three networks, by its official name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutNet {
    G,
    D,
    F,
}

impl CutNet {
    /// In the official order (also the order weights are drawn in).
    pub const ALL: [Self; 3] = [Self::G, Self::D, Self::F];

    pub fn official(self) -> &'static str {
        match self {
            Self::G => "G",
            Self::D => "D",
            Self::F => "F",
        }
    }
}

impl CutNets {
    /// Fresh networks, drawn in the official order: G, D, then F (which the
    /// official code draws at its first forward pass, after the other two).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        model: Method,
        g_config: GeneratorConfig,
        d_config: DiscriminatorConfig,
        net_f: PatchFeatures,
        net_f_nc: usize,
        nce_layers: &[usize],
        init: &Initializer,
        rng: &mut Rng,
        device: &Device,
    ) -> Self {
        let g = g_config.init(init, rng, device);
        let d = d_config.init(init, rng, device);
        let channels = feature_channels(&g, g_config.input_nc, nce_layers, device);
        let f_config = PatchSamplerConfig { kind: net_f, channels, nc: net_f_nc };
        let f = f_config.init(init, rng, device);
        Self { g, d, f, g_config, d_config, f_config, model }
    }

    /// What a network's checkpoint says about it.
    pub fn info(&self, name: CutNet) -> NetInfo {
        let model = Some(self.model);
        match name {
            CutNet::G => NetInfo { config: NetConfig::Generator(self.g_config.clone()), direction: Some(Direction::A2B), model },
            CutNet::D => NetInfo { config: NetConfig::Discriminator(self.d_config.clone()), direction: None, model },
            CutNet::F => NetInfo { config: NetConfig::PatchSampler(self.f_config.clone()), direction: None, model },
        }
    }
}

impl NamedNets for CutNets {
    fn described(&self) -> Vec<(&'static str, StateDict, NetInfo)> {
        CutNet::ALL
            .into_iter()
            .map(|n| {
                let dict = match n {
                    CutNet::G => StateDict::from_net(&self.g, ""),
                    CutNet::D => StateDict::from_net(&self.d, ""),
                    CutNet::F => StateDict::from_net(&self.f, ""),
                };
                (n.official(), dict, self.info(n))
            })
            .collect()
    }

    fn nets_mut(&mut self) -> Vec<(&'static str, &mut dyn NamedTensors)> {
        vec![(CutNet::G.official(), &mut self.g), (CutNet::D.official(), &mut self.d), (CutNet::F.official(), &mut self.f)]
    }
}

/// The channels of the generator's features at `layers`, from a pass over
/// a small blank image (in inference mode, so batch norm keeps its statistics).
fn feature_channels(g: &Generator, input_nc: usize, layers: &[usize], device: &Device) -> Vec<usize> {
    let blank = Tensor::<4>::zeros([1, input_nc, 8, 8], &device.clone().inner());
    g.clone().valid().features(blank, layers).iter().map(|f| f.dims()[1]).collect()
}
