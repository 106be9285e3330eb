//! The four networks of a CycleGAN and how they are saved together.
//!
//! Official names: G_A maps A to B (the paper's G), G_B maps B to A (F),
//! D_A judges domain B (D_Y), D_B judges domain A (D_X).

use std::path::Path;

use burn::tensor::Device;

use crate::checkpoint::{self, Direction, NetConfig, NetInfo};
use crate::error::{Error, Result};
use crate::nets::{Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, Initializer, NamedTensors};
use crate::rng::Rng;

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

    /// One network, to read or replace its tensors.
    pub fn net_mut(&mut self, name: NetName) -> &mut dyn NamedTensors {
        match name {
            NetName::GA => &mut self.g_a,
            NetName::GB => &mut self.g_b,
            NetName::DA => &mut self.d_a,
            NetName::DB => &mut self.d_b,
        }
    }

    /// What a network's checkpoint says about it.
    pub fn info(&self, name: NetName) -> NetInfo {
        match name {
            NetName::GA => NetInfo { config: NetConfig::Generator(self.g_a_config.clone()), direction: Some(Direction::A2B) },
            NetName::GB => NetInfo { config: NetConfig::Generator(self.g_b_config.clone()), direction: Some(Direction::B2A) },
            NetName::DA => NetInfo { config: NetConfig::Discriminator(self.d_a_config.clone()), direction: None },
            NetName::DB => NetInfo { config: NetConfig::Discriminator(self.d_b_config.clone()), direction: None },
        }
    }

    fn file(dir: &Path, name: NetName) -> std::path::PathBuf {
        dir.join(format!("{}.safetensors", name.official()))
    }

    /// Load weights from one file holding all four networks under `G_A.` ... prefixes
    /// (`--init`, the layout of `cyclegan_ref.py make-init`).
    pub fn load_combined(&mut self, path: &Path) -> Result<()> {
        let raw = checkpoint::read_raw(path)?;
        let mut tensors = checkpoint::normalize(raw.tensors);
        for name in NetName::ALL {
            let net = self.net_mut(name);
            let name = name.official();
            let part = tensors.take_prefix(name);
            if part.is_empty() {
                return Err(Error::checkpoint(path, format!("has no {name}.* tensors (expected G_A., G_B., D_A., D_B. prefixes)")));
            }
            part.load_into(net).map_err(|e| {
                Error::checkpoint(path, format!("{name} does not fit the networks the options describe: {e}"))
            })?;
        }
        if let Some(extra) = tensors.keys().next() {
            return Err(Error::checkpoint(path, format!("unexpected tensor {extra}")));
        }
        Ok(())
    }

    /// Save each network to `dir/<name>.safetensors`, self-describing.
    pub fn save(&self, dir: &Path) -> Result<()> {
        checkpoint::save(&Self::file(dir, NetName::GA), &self.g_a, &self.info(NetName::GA))?;
        checkpoint::save(&Self::file(dir, NetName::GB), &self.g_b, &self.info(NetName::GB))?;
        checkpoint::save(&Self::file(dir, NetName::DA), &self.d_a, &self.info(NetName::DA))?;
        checkpoint::save(&Self::file(dir, NetName::DB), &self.d_b, &self.info(NetName::DB))
    }

    /// Load the networks saved by [`CycleGan::save`]; their metadata must match this model's.
    pub fn load(&mut self, dir: &Path) -> Result<()> {
        for name in NetName::ALL {
            let path = Self::file(dir, name);
            let (tensors, info) = checkpoint::read(&path, None)?;
            let expected = self.info(name);
            if info.config != expected.config {
                return Err(Error::checkpoint(
                    &path,
                    format!("holds {:?}, but the run's options describe {:?}", info.config, expected.config),
                ));
            }
            tensors.load_into(self.net_mut(name)).map_err(|e| Error::checkpoint(&path, e))?;
        }
        Ok(())
    }
}
