//! `cyclegan export`: a generator to a file other runtimes run.

use std::path::PathBuf;

use clap::Args;

use super::download::{MirrorArgs, resolve_model};
use crate::checkpoint::Direction;
use crate::export::{self, DEFAULT_OPSET, ExportOptions, Format};
use crate::translate::Translator;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A generator (.safetensors or PyTorch .pth), a training run folder, or a pretrained model's name
    /// (`cyclegan download --list`; downloaded into the cache on first use).
    #[arg(long)]
    pub model: PathBuf,
    /// Which generator of a run folder: a2b (G_A, or CUT's G) or b2a (G_B).
    #[arg(long, value_enum, default_value_t = Direction::A2B)]
    pub direction: Direction,
    /// What to write.
    #[arg(long, value_enum, default_value_t = Format::Onnx)]
    pub format: Format,
    /// Where to write it (atomically: nothing is left half-written).
    #[arg(long, short)]
    pub output: PathBuf,
    /// ONNX opset version (13 to 21).
    #[arg(long, default_value_t = DEFAULT_OPSET)]
    pub opset: i64,
    /// Fix the input's height and width (HxW, multiples of the generator's stride); N stays free.
    #[arg(long, value_name = "HxW", value_parser = parse_size)]
    pub fixed_size: Option<(usize, usize)>,
    #[command(flatten)]
    pub mirror: MirrorArgs,
}

fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let (h, w) = s.split_once(['x', 'X']).ok_or_else(|| format!("'{s}' is not HxW (e.g. 256x256)"))?;
    let num = |v: &str| v.trim().parse::<usize>().map_err(|_| format!("'{s}' is not HxW (e.g. 256x256)"));
    Ok((num(h)?, num(w)?))
}

pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let model = resolve_model(&args.model, &args.mirror)?;
    let translator = Translator::open(&model, args.direction, &burn::tensor::Device::flex())?;
    let options = ExportOptions { format: args.format, opset: args.opset, fixed_size: args.fixed_size };
    let bytes = export::export(&translator, &options)?;
    crate::fs::write_bytes_atomic(&args.output, &bytes)?;
    let cfg = &translator.config;
    println!(
        "exported {} ({} -> {} channels, {}) from {} -> {} ({:.1} MB, opset {})",
        cfg.arch.name(),
        cfg.input_nc,
        cfg.output_nc,
        translator.direction.map_or("direction not recorded", |d| d.name()),
        translator.source.display(),
        args.output.display(),
        bytes.len() as f64 / 1e6,
        args.opset
    );
    Ok(())
}
