//! What one optimisation step of any method reports, shared by the methods
//! ([`super::cyclegan`], [`super::cut`]) and the session without either
//! knowing the other: [`Losses`] under the official names, [`Visuals`] for
//! the sample grid, and the generators in training as [`GeneratorView`]s.

use std::fmt;

use burn::tensor::Tensor;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::checkpoint::Direction;
use crate::nets::{Generator, GeneratorConfig};

/// A step's losses under their official names, in the official order (the
/// keys of `losses.jsonl`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Losses(pub Vec<(String, f64)>);

impl Losses {
    pub fn from_pairs(pairs: &[(&str, f64)]) -> Self {
        Self(pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect())
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }
}

impl Serialize for Losses {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Losses {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Losses;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("losses by name")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Losses, M::Error> {
                let mut pairs = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, f64>()? {
                    pairs.push((k, v));
                }
                Ok(Losses(pairs))
            }
        }
        d.deserialize_map(InOrder)
    }
}

/// The images of one step for the sample grid: rows of panels (first image
/// of the batch), a panel left empty where the method has no such image.
pub struct Visuals {
    pub rows: Vec<Vec<Option<Tensor<4>>>>,
}

/// What one optimisation step gives back.
pub struct StepOutput {
    pub losses: Losses,
    /// The generators' total loss (the plateau schedule watches its epoch mean).
    pub generator_loss: f64,
    pub visuals: Visuals,
}

/// Several one-element losses read back in one transfer (each read is a
/// round trip on a GPU).
pub(crate) fn scalars(losses: Vec<Tensor<1>>) -> Vec<f64> {
    let data = Tensor::cat(losses, 0).detach().into_data();
    data.iter::<f32>().map(f64::from).collect()
}

/// A generator in training, for evaluating its translations.
pub struct GeneratorView<'a> {
    pub direction: Direction,
    pub net: &'a Generator,
    pub config: &'a GeneratorConfig,
}

