//! The four networks of a CycleGAN under their official names (saved and
//! loaded by [`NamedNets`]).
//!
//! Official names: G_A maps A to B (the paper's G), G_B maps B to A (F),
//! D_A judges domain B (D_Y), D_B judges domain A (D_X).

use burn::tensor::Device;

use crate::checkpoint::{Direction, NetConfig, NetInfo, StateDict};
use crate::train::net_files::NamedNets;
use crate::nets::{Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, Initializer, NamedTensors};
use crate::rng::Rng;
use crate::train::method::Method;

pub struct CycleGan {
    pub g_a: Generator,
    pub g_b: Generator,
    pub d_a: Discriminator,
    pub d_b: Discriminator,
    pub g_a_config: GeneratorConfig,
    pub g_b_config: GeneratorConfig,
    pub d_a_config: DiscriminatorConfig,
    pub d_b_config: DiscriminatorConfig,
}

/// One of the four networks, by its official name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetName {
    GA,
    GB,
    DA,
    DB,
}

impl NetName {
    /// In the official code's order (also the order weights are drawn in).
    pub const ALL: [Self; 4] = [Self::GA, Self::GB, Self::DA, Self::DB];

    /// The official name: file names and key prefixes.
    pub fn official(self) -> &'static str {
        match self {
            Self::GA => "G_A",
            Self::GB => "G_B",
            Self::DA => "D_A",
            Self::DB => "D_B",
        }
    }
}

impl CycleGan {
    /// Fresh networks. `g` maps input_nc -> output_nc; G_B, D_A and D_B are sized to match.
    pub fn new(g: &GeneratorConfig, d: &DiscriminatorConfig, init: &Initializer, rng: &mut Rng, device: &Device) -> Self {
        let g_a_config = g.clone();
        let g_b_config = GeneratorConfig { input_nc: g.output_nc, output_nc: g.input_nc, ..g.clone() };
        let d_a_config = DiscriminatorConfig { input_nc: g.output_nc, ..d.clone() };
        let d_b_config = DiscriminatorConfig { input_nc: g.input_nc, ..d.clone() };
        // Same draw order as the official code: G_A, G_B, D_A, D_B.
        Self {
            g_a: g_a_config.init(init, rng, device),
            g_b: g_b_config.init(init, rng, device),
            d_a: d_a_config.init(init, rng, device),
            d_b: d_b_config.init(init, rng, device),
            g_a_config,
            g_b_config,
            d_a_config,
            d_b_config,
        }
    }

    /// What a network's checkpoint says about it.
    pub fn info(&self, name: NetName) -> NetInfo {
        let model = Some(Method::CycleGan);
        match name {
            NetName::GA => NetInfo { config: NetConfig::Generator(self.g_a_config.clone()), direction: Some(Direction::A2B), model },
            NetName::GB => NetInfo { config: NetConfig::Generator(self.g_b_config.clone()), direction: Some(Direction::B2A), model },
            NetName::DA => NetInfo { config: NetConfig::Discriminator(self.d_a_config.clone()), direction: None, model },
            NetName::DB => NetInfo { config: NetConfig::Discriminator(self.d_b_config.clone()), direction: None, model },
        }
    }
}

impl NamedNets for CycleGan {
    fn described(&self) -> Vec<(&'static str, StateDict, NetInfo)> {
        NetName::ALL
            .into_iter()
            .map(|n| {
                let dict = match n {
                    NetName::GA => StateDict::from_net(&self.g_a, ""),
                    NetName::GB => StateDict::from_net(&self.g_b, ""),
                    NetName::DA => StateDict::from_net(&self.d_a, ""),
                    NetName::DB => StateDict::from_net(&self.d_b, ""),
                };
                (n.official(), dict, self.info(n))
            })
            .collect()
    }

    fn nets_mut(&mut self) -> Vec<(&'static str, &mut dyn NamedTensors)> {
        vec![
            (NetName::GA.official(), &mut self.g_a),
            (NetName::GB.official(), &mut self.g_b),
            (NetName::DA.official(), &mut self.d_a),
            (NetName::DB.official(), &mut self.d_b),
        ]
    }
}
