//! The four networks of a CycleGAN and how they are saved together.
//!
//! Official names: G_A maps A to B (the paper's G), G_B maps B to A (F),
//! D_A judges domain B (D_Y), D_B judges domain A (D_X).

use std::path::Path;

use burn::tensor::Device;

use crate::checkpoint::{self, Direction, NetConfig, NetInfo, StateDict};
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

pub const NAMES: [&str; 4] = ["G_A", "G_B", "D_A", "D_B"];

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

    /// The four networks as (official name, network).
    pub fn nets_mut(&mut self) -> [(&'static str, &mut dyn NamedTensors); 4] {
        [("G_A", &mut self.g_a), ("G_B", &mut self.g_b), ("D_A", &mut self.d_a), ("D_B", &mut self.d_b)]
    }

    pub fn info(&self, name: &str) -> NetInfo {
        match name {
            "G_A" => NetInfo { config: NetConfig::Generator(self.g_a_config.clone()), direction: Some(Direction::A2B) },
            "G_B" => NetInfo { config: NetConfig::Generator(self.g_b_config.clone()), direction: Some(Direction::B2A) },
            "D_A" => NetInfo { config: NetConfig::Discriminator(self.d_a_config.clone()), direction: None },
            "D_B" => NetInfo { config: NetConfig::Discriminator(self.d_b_config.clone()), direction: None },
            other => unreachable!("no network {other}"),
        }
    }

    /// Load weights from one file holding all four networks under `G_A.` ... prefixes
    /// (`--init`, the layout of `cyclegan_ref.py make-init`).
    pub fn load_combined(&mut self, path: &Path) -> Result<()> {
        let raw = checkpoint::read_raw(path)?;
        let mut tensors = checkpoint::normalize(raw.tensors);
        for (name, net) in self.nets_mut() {
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
        checkpoint::save(&dir.join("G_A.safetensors"), &self.g_a, &self.info("G_A"))?;
        checkpoint::save(&dir.join("G_B.safetensors"), &self.g_b, &self.info("G_B"))?;
        checkpoint::save(&dir.join("D_A.safetensors"), &self.d_a, &self.info("D_A"))?;
        checkpoint::save(&dir.join("D_B.safetensors"), &self.d_b, &self.info("D_B"))?;
        Ok(())
    }

    /// Load the networks saved by [`CycleGan::save`]; their metadata must match this model's.
    pub fn load(&mut self, dir: &Path) -> Result<()> {
        for name in NAMES {
            let path = dir.join(format!("{name}.safetensors"));
            let (tensors, info) = checkpoint::read(&path, None)?;
            let expected = self.info(name);
            if info.config != expected.config {
                return Err(Error::checkpoint(
                    &path,
                    format!("holds {:?}, but the run's options describe {:?}", info.config, expected.config),
                ));
            }
            let net: &mut dyn NamedTensors = match name {
                "G_A" => &mut self.g_a,
                "G_B" => &mut self.g_b,
                "D_A" => &mut self.d_a,
                _ => &mut self.d_b,
            };
            load(tensors, net, &path)?;
        }
        Ok(())
    }
}

fn load(tensors: StateDict, net: &mut dyn NamedTensors, path: &Path) -> Result<()> {
    tensors.load_into(net).map_err(|e| Error::checkpoint(path, e))
}
