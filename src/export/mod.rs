//! Generators to other runtimes: an ONNX file any ONNX runtime runs
//! (onnxruntime on servers, phones and in the browser, TensorRT, tract),
//! right by construction because the checkpoint says what network it is.
//!
//! The file's contract, also written in its metadata: `input` is
//! `[N, C, H, W]` float32 in `[-1, 1]` (`x / 127.5 - 1`), H and W multiples
//! of the generator's stride (reflect-pad bottom and right, crop the output
//! back), `output` the same layout; N, H and W free unless fixed.

mod onnx;

pub use onnx::{INPUT, OUTPUT};

use clap::ValueEnum;

use crate::error::{Error, Result};
use crate::translate::Translator;

/// What `--format` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// ONNX (standard operators only).
    Onnx,
}

/// The opsets the graph is valid in (Pad, Slice and the norms as written need 13).
pub const OPSETS: std::ops::RangeInclusive<i64> = 13..=21;
pub const DEFAULT_OPSET: i64 = 17;

#[derive(Clone, Copy, Debug)]
pub struct ExportOptions {
    pub format: Format,
    pub opset: i64,
    /// `(height, width)`: the graph takes only that size.
    pub fixed_size: Option<(usize, usize)>,
}

/// The generator of `translator` as a file of `options.format`.
pub fn export(translator: &Translator, options: &ExportOptions) -> Result<Vec<u8>> {
    let cfg = &translator.config;
    if !OPSETS.contains(&options.opset) {
        return Err(Error::Usage(format!("--opset {}: the graph needs opset {} to {}", options.opset, OPSETS.start(), OPSETS.end())));
    }
    let spatial = match options.fixed_size {
        None => onnx::Spatial::Dynamic,
        Some((height, width)) => {
            let (m, min) = (cfg.arch.size_multiple(), cfg.arch.min_size());
            if height % m != 0 || width % m != 0 || height < min || width < min {
                return Err(Error::Usage(format!(
                    "--fixed-size {height}x{width}: {} takes sides that are multiples of {m} and at least {min}",
                    cfg.arch.name()
                )));
            }
            onnx::Spatial::Fixed { height, width }
        }
    };
    let info = crate::checkpoint::NetInfo {
        config: crate::checkpoint::NetConfig::Generator(cfg.clone()),
        direction: translator.direction,
        model: None,
    };
    let mut metadata: Vec<(String, String)> = info.to_metadata().into_iter().collect();
    metadata.sort();
    metadata.push(("size_multiple".into(), cfg.arch.size_multiple().to_string()));
    metadata.push(("min_size".into(), cfg.arch.min_size().to_string()));
    metadata.push((
        "preprocessing".into(),
        format!(
            "RGB(A)/gray 8-bit to float32 x / 127.5 - 1, NCHW; reflect-pad bottom and right to a multiple of {} (at least {} px); \
             run; crop the output back; (y + 1) * 127.5 rounded and clamped to 0-255",
            cfg.arch.size_multiple(),
            cfg.arch.min_size()
        ),
    ));
    Ok(match options.format {
        Format::Onnx => onnx::model(&translator.net, cfg.input_nc, cfg.output_nc, spatial, options.opset, &metadata),
    })
}
