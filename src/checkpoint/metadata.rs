//! What a checkpoint says about itself: which network it holds, built how,
//! and (for a generator) which way it translates. Stored as safetensors
//! `__metadata__` string pairs, readable with any safetensors tool.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use clap::ValueEnum;

use crate::nets::{
    ConfigError, DiscriminatorArch, DiscriminatorConfig, GeneratorArch, GeneratorConfig, NormKind, PatchFeatures, PatchSamplerConfig,
};
use crate::train::method::Method;

/// Marks a file as ours and versions the metadata layout.
const FORMAT_KEY: &str = "cyclegan";
const FORMAT_VERSION: &str = "1";

/// Which way a generator maps: `a2b` is the official G_A, `b2a` is G_B.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[value(name = "a2b", alias = "AtoB")]
    A2B,
    #[value(name = "b2a", alias = "BtoA")]
    B2A,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Self::A2B => "a2b",
            Self::B2A => "b2a",
        }
    }

    /// The official name of the generator that maps this way.
    pub fn generator(self) -> &'static str {
        match self {
            Self::A2B => "G_A",
            Self::B2A => "G_B",
        }
    }
}

/// The network a checkpoint holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetConfig {
    Generator(GeneratorConfig),
    Discriminator(DiscriminatorConfig),
    /// CUT's netF.
    PatchSampler(PatchSamplerConfig),
}

impl NetConfig {
    /// Whether the network can be built: channels an image has, sane widths.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            Self::Generator(g) => g.validate(),
            Self::Discriminator(d) => d.validate(),
            Self::PatchSampler(f) => f.validate(),
        }
    }
}

/// Metadata that is ours but unreadable (a newer version, a missing or bad field).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadMetadata(pub String);

/// Everything the metadata says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetInfo {
    pub config: NetConfig,
    pub direction: Option<Direction>,
    /// The training method that made it (files written before CUT do not say).
    pub model: Option<Method>,
}

impl NetInfo {
    pub fn to_metadata(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        m.insert(FORMAT_KEY.into(), FORMAT_VERSION.into());
        match &self.config {
            NetConfig::Generator(g) => {
                m.insert("net".into(), "generator".into());
                m.insert("arch".into(), g.arch.name().into());
                m.insert("input_nc".into(), g.input_nc.to_string());
                m.insert("output_nc".into(), g.output_nc.to_string());
                m.insert("ngf".into(), g.ngf.to_string());
                m.insert("norm".into(), g.norm.name().into());
                m.insert("dropout".into(), g.dropout.to_string());
                m.insert("antialias".into(), g.antialias.to_string());
                m.insert("antialias_up".into(), g.antialias_up.to_string());
            }
            NetConfig::Discriminator(d) => {
                m.insert("net".into(), "discriminator".into());
                m.insert("arch".into(), d.arch.name().into());
                m.insert("input_nc".into(), d.input_nc.to_string());
                m.insert("ndf".into(), d.ndf.to_string());
                m.insert("n_layers".into(), d.n_layers.to_string());
                m.insert("norm".into(), d.norm.name().into());
                m.insert("antialias".into(), d.antialias.to_string());
            }
            NetConfig::PatchSampler(f) => {
                m.insert("net".into(), "patch_sampler".into());
                m.insert("netF".into(), f.kind.name().into());
                m.insert("nc".into(), f.nc.to_string());
                m.insert("channels".into(), f.channels.iter().map(usize::to_string).collect::<Vec<_>>().join(","));
            }
        }
        if let Some(model) = self.model {
            m.insert("model".into(), model.name().into());
        }
        if let Some(dir) = self.direction {
            m.insert("direction".into(), dir.name().into());
        }
        m
    }

    /// `Ok(None)` when the metadata is not ours (a plain safetensors file);
    /// an error when it is ours but unreadable.
    pub fn from_metadata(m: &HashMap<String, String>) -> Result<Option<Self>, BadMetadata> {
        Self::parse_metadata(m).map_err(BadMetadata)
    }

    fn parse_metadata(m: &HashMap<String, String>) -> Result<Option<Self>, String> {
        let Some(version) = m.get(FORMAT_KEY) else { return Ok(None) };
        if version != FORMAT_VERSION {
            return Err(format!("metadata version {version} is newer than this program understands ({FORMAT_VERSION})"));
        }
        let get = |k: &str| m.get(k).map(String::as_str).ok_or_else(|| format!("metadata lacks '{k}'"));
        let num = |k: &str| -> Result<usize, String> {
            get(k)?.parse().map_err(|_| format!("metadata '{k}' is not a number"))
        };
        // written since CUT; files from before have no anti-aliasing
        let flag = |k: &str| m.get(k).is_some_and(|v| v == "true");
        let norm = || NormKind::from_name(get("norm")?).ok_or_else(|| format!("unknown norm '{}'", get("norm").unwrap()));
        let config = match get("net")? {
            "generator" => NetConfig::Generator(GeneratorConfig {
                arch: GeneratorArch::from_name(get("arch")?)
                    .ok_or_else(|| format!("unknown generator '{}'", get("arch").unwrap()))?,
                input_nc: num("input_nc")?,
                output_nc: num("output_nc")?,
                ngf: num("ngf")?,
                norm: norm()?,
                dropout: get("dropout")? == "true",
                antialias: flag("antialias"),
                antialias_up: flag("antialias_up"),
            }),
            "discriminator" => NetConfig::Discriminator(DiscriminatorConfig {
                arch: DiscriminatorArch::from_name(get("arch")?)
                    .ok_or_else(|| format!("unknown discriminator '{}'", get("arch").unwrap()))?,
                input_nc: num("input_nc")?,
                ndf: num("ndf")?,
                n_layers: num("n_layers")?,
                norm: norm()?,
                antialias: flag("antialias"),
            }),
            "patch_sampler" => NetConfig::PatchSampler(PatchSamplerConfig {
                kind: PatchFeatures::from_name(get("netF")?).ok_or_else(|| format!("unknown netF '{}'", get("netF").unwrap()))?,
                nc: num("nc")?,
                channels: get("channels")?
                    .split(',')
                    .map(|c| c.parse().map_err(|_| "metadata 'channels' is not a list of numbers".to_string()))
                    .collect::<Result<_, _>>()?,
            }),
            other => return Err(format!("unknown network kind '{other}'")),
        };
        let model = match m.get("model") {
            None => None,
            Some(name) => Some(Method::from_str(name, false).map_err(|_| format!("unknown model '{name}'"))?),
        };
        let direction = match m.get("direction").map(String::as_str) {
            None => None,
            Some("a2b") => Some(Direction::A2B),
            Some("b2a") => Some(Direction::B2A),
            Some(other) => return Err(format!("unknown direction '{other}'")),
        };
        Ok(Some(Self { config, direction, model }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips() {
        let g = NetInfo {
            config: NetConfig::Generator(GeneratorConfig {
                arch: GeneratorArch::Unet128,
                input_nc: 1,
                output_nc: 4,
                ngf: 8,
                norm: NormKind::InstanceAffine,
                dropout: true,
                antialias: false,
                antialias_up: false,
            }),
            direction: Some(Direction::B2A),
            model: None,
        };
        assert_eq!(NetInfo::from_metadata(&g.to_metadata()).unwrap(), Some(g));
        let d = NetInfo {
            config: NetConfig::Discriminator(DiscriminatorConfig {
                arch: DiscriminatorArch::NLayers,
                input_nc: 3,
                ndf: 16,
                n_layers: 5,
                norm: NormKind::Batch,
                antialias: true,
            }),
            direction: None,
            model: Some(Method::Cut),
        };
        assert_eq!(NetInfo::from_metadata(&d.to_metadata()).unwrap(), Some(d));
        let f = NetInfo {
            config: NetConfig::PatchSampler(PatchSamplerConfig { kind: PatchFeatures::MlpSample, channels: vec![3, 128, 256], nc: 256 }),
            direction: None,
            model: Some(Method::Fastcut),
        };
        assert_eq!(NetInfo::from_metadata(&f.to_metadata()).unwrap(), Some(f));
        assert_eq!(NetInfo::from_metadata(&HashMap::from([("format".into(), "pt".into())])).unwrap(), None);
    }
}
