//! Making sense of checkpoints that do not describe themselves: PyTorch
//! files from the official code and elsewhere.
//!
//! [`normalize`] undoes what real checkpoints carry beyond the official keys;
//! [`infer`] reads the architecture off the keys and shapes where that is
//! unambiguous.

use super::metadata::NetConfig;
use super::state_dict::StateDict;
use crate::nets::{DiscriminatorArch, DiscriminatorConfig, GeneratorArch, GeneratorConfig, NormKind};

/// Bring a foreign state dict to the official keys:
/// - drop the `module.` prefix `nn.DataParallel` adds;
/// - drop `running_mean`/`running_var`/`num_batches_tracked` of instance
///   norms (PyTorch < 0.4 kept them; the official loader deletes them too),
///   recognised by having no `weight` beside them, unlike batch norm;
/// - rename residual blocks stored under another name than `conv_block`.
pub fn normalize(dict: StateDict) -> StateDict {
    let dict = dict.rename(|k| Some(k.strip_prefix("module.").unwrap_or(k).to_string()));
    let stats_without_weight: Vec<String> = dict
        .keys()
        .filter_map(|k| {
            let (prefix, leaf) = k.rsplit_once('.')?;
            let is_stat = matches!(leaf, "running_mean" | "running_var" | "num_batches_tracked");
            (is_stat && !dict.contains(&format!("{prefix}.weight"))).then(|| k.clone())
        })
        .collect();
    dict.rename(|k| {
        if stats_without_weight.iter().any(|s| s == k) {
            return None;
        }
        Some(rename_resnet_block(k))
    })
}

/// `model.10.block.1.weight` -> `model.10.conv_block.1.weight`.
fn rename_resnet_block(key: &str) -> String {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.len() >= 5
        && parts[0] == "model"
        && is_index(parts[1])
        && !is_index(parts[2])
        && parts[2] != "conv_block"
        && is_index(parts[3])
    {
        let mut renamed = parts.clone();
        renamed[2] = "conv_block";
        return renamed.join(".");
    }
    key.to_string()
}

fn is_index(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Work out which network a (normalized) state dict belongs to.
pub fn infer(dict: &StateDict) -> Result<NetConfig, Unrecognised> {
    infer_any(dict).map_err(Unrecognised)
}

/// Why the keys and shapes of a file describe no network this program builds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unrecognised(pub String);

fn infer_any(dict: &StateDict) -> Result<NetConfig, String> {
    if dict.contains("model.1.weight") && dict.keys().any(|k| k.contains(".conv_block.")) {
        return infer_resnet(dict).map(NetConfig::Generator);
    }
    if dict.contains("model.model.0.weight") {
        return infer_unet(dict).map(NetConfig::Generator);
    }
    if dict.contains("model.0.weight") {
        return infer_patchgan(dict).map(NetConfig::Discriminator);
    }
    if dict.contains("net.0.weight") {
        return infer_pixelgan(dict).map(NetConfig::Discriminator);
    }
    Err("the keys match no CycleGAN network (expected e.g. model.1.weight for a ResNet generator); \
         pass --arch to see what is missing"
        .into())
}

/// The shape of a conv weight (`[out, in, k, k]`), which must be there and be 4-D.
fn shape<'a>(dict: &'a StateDict, key: &str) -> Result<&'a [usize], String> {
    match dict.shape(key) {
        None => Err(format!("cannot infer the architecture: {key} is missing")),
        Some(s) if s.len() != 4 => Err(format!("{key} has shape {s:?}, not that of a convolution's weight")),
        Some(s) => Ok(s),
    }
}

/// The norm that follows a conv: affine parameters at `norm_prefix`, running
/// statistics for batch norm, and the conv bias tell them apart.
fn infer_norm(dict: &StateDict, norm_prefix: &str, conv_bias_key: &str) -> NormKind {
    if dict.contains(&format!("{norm_prefix}.weight")) {
        if dict.contains(&format!("{norm_prefix}.running_mean")) { NormKind::Batch } else { NormKind::InstanceAffine }
    } else if dict.contains(conv_bias_key) {
        NormKind::Instance
    } else {
        NormKind::None
    }
}

fn infer_resnet(dict: &StateDict) -> Result<GeneratorConfig, String> {
    let stem = shape(dict, "model.1.weight")?;
    let mut blocks: Vec<usize> = dict
        .keys()
        .filter_map(|k| {
            let mut it = k.split('.');
            (it.next() == Some("model")).then_some(())?;
            let idx = it.next()?.parse().ok()?;
            (it.next() == Some("conv_block")).then_some(idx)
        })
        .collect();
    blocks.sort_unstable();
    blocks.dedup();
    let arch = match blocks.len() {
        9 => GeneratorArch::Resnet9Blocks,
        6 => GeneratorArch::Resnet6Blocks,
        n => return Err(format!("a ResNet generator with {n} blocks is not an official architecture (6 or 9)")),
    };
    let (first, last) = (blocks[0], blocks[blocks.len() - 1]);
    let dropout = !dict.contains(&format!("model.{first}.conv_block.5.weight"))
        && dict.contains(&format!("model.{first}.conv_block.6.weight"));
    // CUT's anti-aliasing blurs keep their filters as `model.N.filt`: before
    // the blocks on the way down, after them on the way up. Each takes one
    // more index per stage.
    let filters: Vec<usize> = dict
        .keys()
        .filter_map(|k| k.strip_prefix("model.")?.strip_suffix(".filt")?.parse().ok())
        .collect();
    let antialias = filters.iter().any(|&i| i < first);
    let antialias_up = filters.iter().any(|&i| i > last);
    let up_stage = if antialias_up { 4 } else { 3 };
    let head = shape(dict, &format!("model.{}.weight", last + 1 + 2 * up_stage + 1))?;
    Ok(GeneratorConfig {
        arch,
        input_nc: stem[1],
        output_nc: head[0],
        ngf: stem[0],
        norm: infer_norm(dict, "model.2", "model.1.bias"),
        dropout,
        antialias,
        antialias_up,
    })
}

fn infer_unet(dict: &StateDict) -> Result<GeneratorConfig, String> {
    let down = shape(dict, "model.model.0.weight")?;
    let up = shape(dict, "model.model.3.weight")?;
    let depth = dict.keys().map(|k| k.split('.').filter(|p| *p == "model").count()).max().unwrap_or(0) - 1;
    let arch = match depth {
        8 => GeneratorArch::Unet256,
        7 => GeneratorArch::Unet128,
        n => return Err(format!("a U-Net with {n} levels is not an official architecture (7 or 8)")),
    };
    Ok(GeneratorConfig {
        arch,
        input_nc: down[1],
        output_nc: up[1],
        ngf: down[0],
        norm: infer_norm(dict, "model.model.1.model.2", "model.model.0.bias"),
        // Dropout has no parameters and sits last in its block: the keys cannot show it.
        dropout: false,
        antialias: false,
        antialias_up: false,
    })
}

fn infer_patchgan(dict: &StateDict) -> Result<DiscriminatorConfig, String> {
    let first = shape(dict, "model.0.weight")?;
    let convs = dict
        .keys()
        .filter(|k| {
            let p: Vec<&str> = k.split('.').collect();
            p.len() == 3 && p[0] == "model" && p[2] == "weight" && dict.shape(k).is_some_and(|s| s.len() == 4)
        })
        .count();
    let n_layers = convs.checked_sub(2).filter(|&n| n >= 1).ok_or("a PatchGAN needs at least three convs")?;
    // CUT's anti-aliased PatchGAN has its first blur at index 2, which shifts the first stage by one.
    let antialias = dict.contains("model.2.filt");
    let norm = if antialias { infer_norm(dict, "model.4", "model.3.bias") } else { infer_norm(dict, "model.3", "model.2.bias") };
    Ok(DiscriminatorConfig {
        arch: if n_layers == 3 { DiscriminatorArch::Basic } else { DiscriminatorArch::NLayers },
        input_nc: first[1],
        ndf: first[0],
        n_layers,
        norm,
        antialias,
    })
}

fn infer_pixelgan(dict: &StateDict) -> Result<DiscriminatorConfig, String> {
    let first = shape(dict, "net.0.weight")?;
    Ok(DiscriminatorConfig {
        arch: DiscriminatorArch::Pixel,
        input_nc: first[1],
        ndf: first[0],
        n_layers: 3,
        norm: infer_norm(dict, "net.3", "net.2.bias"),
        antialias: false,
    })
}
