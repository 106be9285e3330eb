//! Inference in reduced precision (`--precision bf16|f16`): the generator's
//! weights and the image are cast, the output cast back to f32. Worth it on
//! GPUs; on the CPU backend the reduced types run through burn's own
//! (slower) kernels, and the benchmark reports what the output loses (PSNR
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
