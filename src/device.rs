//! Which backend runs the tensors: `--device cpu` (burn's flex, the default),
//! `cuda` or `wgpu` when built with those features.

use burn::tensor::Device;
use clap::ValueEnum;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// burn's pure-Rust CPU backend (flex), on all cores.
    #[default]
    Cpu,
    /// An NVIDIA GPU (build with `--features cuda`).
    Cuda,
    /// A GPU through wgpu: Vulkan, Metal or DirectX (build with `--features wgpu`).
    Wgpu,
}

/// Why a device cannot be used: this build lacks it, or the machine has no usable one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

impl DeviceChoice {
    pub fn device(self) -> Result<Device, Unavailable> {
        match self {
            Self::Cpu => Ok(Device::flex()),
            #[cfg(feature = "cuda")]
            Self::Cuda => probe("cuda", Device::cuda(0)),
            #[cfg(feature = "wgpu")]
            Self::Wgpu => probe("wgpu", Device::wgpu(Default::default())),
            #[allow(unreachable_patterns)]
            other => {
                let name = other.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
                Err(Unavailable(format!("--device {name} needs a build with `--features {name}`")))
            }
        }
    }
}

/// Runs one tiny operation on a GPU device, so that a missing driver or adapter
/// is one line of error here rather than a panic (with backtraces from the
/// backend's threads) in the middle of the work.
#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn probe(name: &str, device: Device) -> Result<Device, Unavailable> {
    use std::sync::{Arc, Mutex};
    let first_panic: Arc<Mutex<Option<String>>> = Arc::default();
    let previous_hook = std::panic::take_hook();
    let record = Arc::clone(&first_panic);
    std::panic::set_hook(Box::new(move |info| {
        let mut slot = record.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let text = info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            *slot = Some(text);
        }
    }));
    let works = std::panic::catch_unwind(|| {
        burn::tensor::Tensor::<1>::from_floats([1.0], &device).into_data().try_to_vec::<f32>().ok() == Some(vec![1.0])
    });
    std::panic::set_hook(previous_hook);
    match works {
        Ok(true) => Ok(device),
        _ => {
            let why = first_panic.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default();
            // Backend messages run long (cudarc lists every library name it tried).
            let why = why.split(" - ").next().unwrap_or_default().lines().next().unwrap_or_default().to_string();
            Err(Unavailable(format!("--device {name}: no usable GPU ({why})")))
        }
    }
}
