//! Inference in reduced precision (`--precision bf16|f16`). On GPUs the
//! generator's weights and the image are cast, the output cast back to f32.
//! On the CPU, bf16 keeps every tensor in f32 and rounds only the operands
//! of the convolutions' matrix products, which AVX512_BF16's `vdpbf16ps`
//! multiplies at twice the f32 rate (`ops::cpu::bf16`); a CPU without it,
//! and f16 (burn's generic kernels, several times slower), run f32 and say
//! so ([`Precision::on`]).

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, FloatDType, Tensor};
use clap::ValueEnum;

use crate::error::{Error, Result};
use crate::nets::Generator;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
    F16,
}

impl Precision {
    pub fn dtype(self) -> FloatDType {
        match self {
            Self::F32 => FloatDType::F32,
            Self::Bf16 => FloatDType::BF16,
            Self::F16 => FloatDType::F16,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
        }
    }

    /// The precision to run in when `self` is asked for on `device`, and why
    /// it is another: on the CPU, bf16 where the CPU has bf16 dot products
    /// (AVX512_BF16), else f32 (never slower than what was asked for);
    /// elsewhere `self`, refused where the device does not compute in it.
    pub fn on(self, device: &Device) -> Result<(Self, Option<String>)> {
        if self == Self::F32 {
            return Ok((self, None));
        }
        if crate::ops::on_cpu(device) {
            if self.cpu_products(device) {
                return Ok((self, None));
            }
            let why = match self {
                Self::Bf16 if crate::ops::cpu::simd::bf16_detected() => {
                    format!("--precision bf16: {} keeps the CPU's bf16 dot products off; running in f32", crate::ops::cpu::simd::VAR)
                }
                Self::Bf16 => "--precision bf16: this CPU has no bf16 dot products (AVX512_BF16); running in f32".to_string(),
                _ => format!(
                    "--precision {}: the CPU kernels compute in f32 and bf16 only (f16 would run about 4x slower through \
                     generic kernels); running in f32",
                    self.name()
                ),
            };
            return Ok((Self::F32, Some(why)));
        }
        self.check(device)?;
        Ok((self, None))
    }

    /// Whether this precision runs on `device` as f32 tensors whose
    /// convolutions compute their products in bf16 (the CPU's way, where it
    /// has AVX512_BF16; the network is not cast).
    pub fn cpu_products(self, device: &Device) -> bool {
        self == Self::Bf16 && crate::ops::on_cpu(device) && crate::ops::cpu::bf16::available()
    }

    /// Refuse a precision the device cannot compute in.
    pub fn check(self, device: &Device) -> Result<()> {
        if device.supports_dtype(self.dtype()) {
            Ok(())
        } else {
            Err(Error::Usage(format!("--precision {self:?}: this device does not compute in that type").to_lowercase()))
        }
    }

    /// The generator with its weights in this precision.
    pub fn cast(self, net: Generator) -> Generator {
        if self == Self::F32 {
            return net;
        }
        struct Cast(FloatDType);
        impl ModuleMapper for Cast {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let dtype = self.0;
                param.map(|t| t.cast(dtype))
            }
        }
        net.map(&mut Cast(self.dtype()))
    }
}
