//! Inference in reduced precision (`--precision bf16|f16`): the generator's
//! weights and the image are cast, the output cast back to f32. Worth it on
//! GPUs. The CPU kernels compute in f32 only: reduced types would run through
//! burn's generic kernels at about 2.2x the f32 time (BENCHMARKS.md), so on
//! the CPU the option says so and runs f32 ([`Precision::on`]); the benchmark
//! still measures the cast network there, with what the output loses (PSNR
//! against f32).

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
    /// it is another: on the CPU, f32 (never slower than what was asked for);
    /// elsewhere `self`, refused where the device does not compute in it.
    pub fn on(self, device: &Device) -> Result<(Self, Option<String>)> {
        if self == Self::F32 {
            return Ok((self, None));
        }
        if crate::ops::on_cpu(device) {
            let why = format!(
                "--precision {}: the CPU kernels compute in f32 only (this type would run about 2x slower through \
                 generic kernels); running in f32",
                self.name()
            );
            return Ok((Self::F32, Some(why)));
        }
        self.check(device)?;
        Ok((self, None))
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
