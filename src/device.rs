//! Which backend runs the tensors: `--device cpu` (burn's flex, the default),
//! `jit`, `cuda` or `wgpu` when built with those features.

use burn::tensor::Device;
use clap::ValueEnum;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// burn's pure-Rust CPU backend (flex), on all cores.
    #[default]
    Cpu,
    /// burn's cubecl kernels (the ones a GPU runs) compiled for this CPU
    /// through LLVM, with kernel fusion: for checking the GPU path without a
    /// GPU (build with `--features jit`).
    Jit,
    /// An NVIDIA GPU (build with `--features cuda`).
    Cuda,
    /// A GPU through wgpu: Vulkan, Metal or DirectX (build with `--features wgpu`).
    Wgpu,
}

/// What `cyclegan devices` says of one device this binary was built with.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeviceReport {
    pub device: DeviceChoice,
    /// Whether it computes on this machine; why not, where it does not.
    pub usable: bool,
    pub why_not: Option<String>,
    /// What it is: the CPU's model and the instruction sets the kernels use, or the GPU backend.
    pub what: String,
    /// burn's kernel fusion and autotune in this build: the cubecl backends
    /// always fuse (with the patched burn-cubecl-fusion, patches/README.md)
    /// and tune only when built with the `autotune` feature; the CPU backend
    /// has neither.
    pub fusion: bool,
    pub autotune: bool,
}

impl DeviceChoice {
    /// The devices this binary was built with, in `--device` order.
    pub fn built() -> Vec<Self> {
        let mut built = vec![Self::Cpu];
        if cfg!(feature = "jit") {
            built.push(Self::Jit);
        }
        if cfg!(feature = "cuda") {
            built.push(Self::Cuda);
        }
        if cfg!(feature = "wgpu") {
            built.push(Self::Wgpu);
        }
        built
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Jit => "jit",
            Self::Cuda => "cuda",
            Self::Wgpu => "wgpu",
        }
    }

    /// Try the device (a GPU runs one tiny operation) and say what it is.
    pub fn report(self) -> DeviceReport {
        let (usable, why_not, name) = match self.device() {
            Ok(device) => (true, None, identity(&device)),
            Err(e) => (false, Some(e.0), None),
        };
        let what = match self {
            Self::Cpu => cpu_description(),
            Self::Jit => format!("{}; burn's cubecl kernels compiled through LLVM", cpu_model()),
            Self::Cuda => format!("{} through CUDA (kernels compiled by cubecl)", name.unwrap_or_else(|| "NVIDIA GPU 0".into())),
            Self::Wgpu => match name {
                Some(name) => format!("{name} through wgpu"),
                None => "the default wgpu adapter (Vulkan, Metal or DirectX)".into(),
            },
        };
        // flex has neither; the cubecl backends are built with fusion, and autotune by choice (Cargo.toml).
        let cubecl = self != Self::Cpu;
        DeviceReport { device: self, usable, why_not, what, fusion: cubecl, autotune: cubecl && cfg!(feature = "autotune") }
    }
}

/// The name a cubecl device gives itself (a GPU's model, a Vulkan driver's).
#[cfg(any(feature = "jit", feature = "cuda", feature = "wgpu"))]
fn identity(device: &Device) -> Option<String> {
    device.identity().map(|identity| identity.name)
}

#[cfg(not(any(feature = "jit", feature = "cuda", feature = "wgpu")))]
fn identity(_: &Device) -> Option<String> {
    None
}

/// The CPU's model name (the architecture where /proc/cpuinfo does not say).
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| t.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|m| m.trim().to_string()))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The CPU's model name, threads, and the vector instructions it offers.
fn cpu_description() -> String {
    let model = cpu_model();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    #[cfg(target_arch = "x86_64")]
    let simd = {
        let mut have = Vec::new();
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            have.push("AVX2+FMA");
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            have.push("AVX-512");
        }
        if std::arch::is_x86_feature_detected!("avx512bf16") {
            have.push("AVX512_BF16");
        }
        if have.is_empty() { String::new() } else { format!(", {}", have.join(", ")) }
    };
    #[cfg(not(target_arch = "x86_64"))]
    let simd = String::new();
    let level = crate::ops::cpu::simd::level();
    let forced = if crate::ops::cpu::simd::capped() { format!(", capped by {}", crate::ops::cpu::simd::VAR) } else { String::new() };
    format!("{model}, {threads} threads{simd}; burn's flex backend and this project's kernels ({}{forced})", level.name())
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
            Self::Cuda => probe(self, Device::cuda(0)),
            #[cfg(feature = "jit")]
            Self::Jit => probe(self, Device::cpu()),
            #[cfg(feature = "wgpu")]
            Self::Wgpu => probe(self, Device::wgpu(Default::default())),
            #[allow(unreachable_patterns)]
            other => {
                let name = other.name();
                Err(Unavailable(format!("--device {name} needs a build with `--features {name}`")))
            }
        }
    }
}

/// Runs one tiny operation on a GPU device, so that a missing driver or adapter
/// is one line of error here rather than a panic (with backtraces from the
/// backend's threads) in the middle of the work.
#[cfg(any(feature = "jit", feature = "cuda", feature = "wgpu"))]
fn probe(choice: DeviceChoice, device: Device) -> Result<Device, Unavailable> {
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
            let what = if choice == DeviceChoice::Jit { "does not run here" } else { "no usable GPU" };
            Err(Unavailable(format!("--device {}: {what} ({why})", choice.name())))
        }
    }
}
