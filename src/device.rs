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

impl DeviceChoice {
    pub fn device(self) -> Result<Device, String> {
        match self {
            Self::Cpu => Ok(Device::flex()),
            #[cfg(feature = "cuda")]
            Self::Cuda => Ok(Device::cuda(0)),
            #[cfg(feature = "wgpu")]
            Self::Wgpu => Ok(Device::wgpu(Default::default())),
            #[allow(unreachable_patterns)]
            other => Err(format!(
                "--device {} needs a build with `--features {}`",
                other.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default(),
                other.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
            )),
        }
    }
}
