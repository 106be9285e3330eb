//! A `state_dict`: official key -> tensor data, and moving it in and out of a network.

use std::collections::BTreeMap;

use burn::module::{Param, RunningState};
use burn::tensor::{DType, Tensor, TensorData};

use crate::nets::{NamedTensors, Slot};

/// Tensors by official key, sorted by key.
#[derive(Clone, Debug, Default)]
pub struct StateDict(BTreeMap<String, TensorData>);

impl StateDict {
    pub fn insert(&mut self, key: String, data: TensorData) {
        self.0.insert(key, data);
    }

    pub fn remove(&mut self, key: &str) -> Option<TensorData> {
        self.0.remove(key)
    }

    pub fn get(&self, key: &str) -> Option<&TensorData> {
        self.0.get(key)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &TensorData)> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Shape of the tensor under `key`.
    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.0.get(key).map(|d| d.shape().as_ref())
    }

    /// The same tensors with `prefix.` before every key.
    pub fn prefixed(self, prefix: &str) -> Self {
        self.rename(|k| Some(format!("{prefix}.{k}")))
    }

    pub fn extend(&mut self, other: StateDict) {
        self.0.extend(other.0);
    }

    /// Rename every key with `f`; keys mapped to `None` are dropped.
    pub fn rename(self, mut f: impl FnMut(&str) -> Option<String>) -> Self {
        Self(self.0.into_iter().filter_map(|(k, v)| f(&k).map(|k| (k, v))).collect())
    }

    /// The entries under `prefix.`, with the prefix removed.
    pub fn take_prefix(&mut self, prefix: &str) -> StateDict {
        let dotted = format!("{prefix}.");
        let keys: Vec<String> = self.0.keys().filter(|k| k.starts_with(&dotted)).cloned().collect();
        let mut out = StateDict::default();
        for k in keys {
            let v = self.0.remove(&k).expect("listed key");
            out.insert(k[dotted.len()..].to_string(), v);
        }
        out
    }

    /// Read every tensor of `net` (a clone: tensors are shared, not copied).
    pub fn from_net(net: &(impl NamedTensors + Clone), prefix: &str) -> Self {
        let mut dict = StateDict::default();
        net.clone().visit_named(prefix, &mut |key, slot| dict.insert(key, slot.data()));
        dict
    }

    /// Load every tensor of `net` from this dict.
    ///
    /// Fails, changing nothing, unless the keys and shapes match exactly; the
    /// message lists missing and unexpected keys, wrong shapes and fixed
    /// buffers with other values.
    pub fn load_into(mut self, net: &mut (impl NamedTensors + ?Sized)) -> Result<(), Mismatch> {
        let mut missing = Vec::new();
        let mut wrong = Vec::new();
        net.visit_named("", &mut |key, slot| match self.0.get(&key) {
            None if matches!(slot, Slot::Counter) => {}
            None => missing.push(format!("{key} {:?}", slot.shape())),
            Some(data) if data.shape().to_vec() != slot.shape() => {
                wrong.push(format!("{key}: file {:?}, network {:?}", data.shape().to_vec(), slot.shape()))
            }
            Some(data) => {
                if let Slot::Fixed(want) = &slot
                    && !same_values(data, want)
                {
                    wrong.push(format!("{key}: not the fixed filter this architecture uses"));
                }
            }
        });
        let mut expected = std::collections::HashSet::new();
        net.visit_named("", &mut |key, _| {
            expected.insert(key);
        });
        let unexpected: Vec<String> =
            self.0.iter().filter(|(k, _)| !expected.contains(*k)).map(|(k, v)| format!("{k} {:?}", v.shape().to_vec())).collect();
        if !(missing.is_empty() && wrong.is_empty() && unexpected.is_empty()) {
            return Err(Mismatch { missing, unexpected, wrong });
        }
        net.visit_named("", &mut |key, slot| {
            if let Some(data) = self.0.remove(&key) {
                set_slot(slot, data);
            }
        });
        Ok(())
    }
}

/// Why tensors do not fit a network: keys it has that the file lacks, keys
/// the file has that it lacks, and tensors of the wrong shape or value, each
/// as `key [shape]` or `key: why`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mismatch {
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
    pub wrong: Vec<String>,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for (what, items) in [("missing keys", &self.missing), ("unexpected keys", &self.unexpected), ("wrong tensors", &self.wrong)] {
            if !items.is_empty() {
                parts.push(format!("{what}: {}", abbreviate(items, ", ")));
            }
        }
        f.write_str(&parts.join("; "))
    }
}

impl std::error::Error for Mismatch {}

/// Whether two tensors hold the same values (to float rounding).
fn same_values(a: &TensorData, b: &TensorData) -> bool {
    let (a, b) = (a.clone().convert::<f32>(), b.clone().convert::<f32>());
    match (a.as_slice::<f32>(), b.as_slice::<f32>()) {
        (Ok(a), Ok(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-6 * y.abs().max(1.0)),
        _ => false,
    }
}

/// At most six items joined by `separator`, then how many more there were: errors name
/// what is wrong without printing hundreds of keys.
pub(crate) fn abbreviate(items: &[String], separator: &str) -> String {
    const SHOWN: usize = 6;
    if items.len() <= SHOWN {
        items.join(separator)
    } else {
        format!("{}{separator}... ({} more)", items[..SHOWN].join(separator), items.len() - SHOWN)
    }
}

/// Replace a slot's value, keeping its parameter id, device and gradient setting.
pub fn set_slot(slot: Slot<'_>, data: TensorData) {
    let data = data.convert_dtype(DType::F32);
    match slot {
        Slot::Weight(p) => replace(p, data),
        Slot::Matrix(p) => replace(p, data),
        Slot::Vector(p, _) => replace(p, data),
        Slot::Running(r) => {
            let device = r.value_sync().device();
            *r = RunningState::new(Tensor::from_data(data, &device));
        }
        Slot::Counter | Slot::Fixed(_) => {}
    }
}

fn replace<const D: usize>(p: &mut Param<Tensor<D>>, data: TensorData) {
    *p = p.clone().map(|old| {
        let fresh = Tensor::from_data(data, &old.device());
        if old.is_require_grad() { fresh.require_grad() } else { fresh }
    });
}
