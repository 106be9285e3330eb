//! A whole evaluation: the features of each side (a folder of images, saved
//! statistics, or a folder translated on the fly), FID and KID between them,
//! and, for aligned test sets, the paired measures file by file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::features::{self, FeatureSet};
use super::fid::fid;
use super::inception::Inception;
use super::kid::{Kid, KidOptions, kid};
use super::paired::{SSIM_MIN_SIDE, l1_u8, psnr_u8, ssim};
use super::stats;
use crate::data::folder;
use crate::error::{Error, Result};
use crate::image_io;
use crate::translate::{self, Translator};

/// Features of one side and what could not be read.
pub struct Side {
    pub set: FeatureSet,
    /// Images found (or recorded in a stats file).
    pub found: usize,
    pub skipped: Vec<Error>,
}

/// Which side a progress report is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Real,
    Fake,
}

/// Features of every image under `dir`; `progress(done, total)` as they go.
pub fn folder_side(net: &Inception, dir: &Path, batch: usize, progress: &mut dyn FnMut(usize, usize)) -> Result<Side> {
    let files = folder::images_in(dir)?;
    let total = files.len();
    let out = features::extract_files(net, &files, batch, &mut |done| progress(done, total));
    side(dir, total, out)
}

/// Features of the translations of every image under `dir`, made in memory
/// exactly as `cyclegan translate` would write them (8-bit).
pub fn translated_side(
    net: &Inception,
    translator: &Translator,
    dir: &Path,
    batch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Side> {
    let files = folder::images_in(dir)?;
    let total = files.len();
    let images = files.iter().map(|p| -> Result<image::RgbImage> {
        let out = translate::translate_image(translator, image_io::decode(p)?, None, None)?;
        Ok(out.to_image().to_rgb8())
    });
    let out = features::extract(net, images, batch, &mut |done| progress(done, total));
    side(dir, total, out)
}

/// Features saved by `--save-stats`.
pub fn stats_side(path: &Path) -> Result<Side> {
    let set = stats::load(path)?;
    Ok(Side { found: set.len(), set, skipped: Vec::new() })
}

fn side(dir: &Path, found: usize, out: features::Extracted) -> Result<Side> {
    if out.set.len() < 2 {
        return Err(Error::image(
            dir,
            format!("FID and KID need at least two readable images; {} of {found} could be read", out.set.len()),
        ));
    }
    Ok(Side { set: out.set, found, skipped: out.skipped })
}

/// FID and KID of two feature sets.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Scores {
    pub fid: f64,
    pub kid: f64,
    pub kid_std: f64,
    pub kid_subset_size: usize,
    pub n_real: usize,
    pub n_fake: usize,
}

pub fn scores(real: &FeatureSet, fake: &FeatureSet, options: KidOptions) -> Scores {
    let fid = fid(&real.features, &fake.features, real.dims);
    let Kid { mean, std, subset_size } = kid(&real.features, &fake.features, real.dims, options);
    Scores { fid, kid: mean, kid_std: std, kid_subset_size: subset_size, n_real: real.len(), n_fake: fake.len() }
}

/// The paired measures of one file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PairScore {
    /// Mean absolute difference, 0-255.
    pub l1: f64,
    /// dB; infinite (null in JSON) for identical images.
    pub psnr: f64,
    /// None where an image is smaller than SSIM's 11-px window.
    pub ssim: Option<f64>,
}

/// Paired measures of the files with the same relative name on both sides.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Paired {
    pub files: BTreeMap<String, PairScore>,
    pub mean_l1: f64,
    pub mean_psnr: f64,
    pub mean_ssim: Option<f64>,
    /// Files of the fake side without a partner of the same name and size.
    pub unmatched: Vec<String>,
}

/// Compare each image under `fake` with the image of the same relative path under `real`.
pub fn paired(real: &Path, fake: &Path) -> Result<Paired> {
    let mut out = Paired::default();
    for path in folder::images_in(fake)? {
        let relative = path.strip_prefix(fake).expect("under fake").to_path_buf();
        let name = relative.to_string_lossy().into_owned();
        let partner: PathBuf = real.join(&relative);
        let (Ok(a), Ok(b)) = (features::load(&partner), features::load(&path)) else {
            out.unmatched.push(name);
            continue;
        };
        if a.dimensions() != b.dimensions() {
            out.unmatched.push(name);
            continue;
        }
        let fits = a.width().min(a.height()) >= SSIM_MIN_SIDE;
        let score = PairScore {
            l1: l1_u8(a.as_raw(), b.as_raw()),
            psnr: psnr_u8(a.as_raw(), b.as_raw()),
            ssim: fits.then(|| ssim(&a, &b)),
        };
        out.files.insert(name, score);
    }
    let n = out.files.len();
    if n == 0 {
        return Err(Error::image(fake, format!("--paired: no image has a partner of the same name and size in {}", real.display())));
    }
    out.mean_l1 = out.files.values().map(|s| s.l1).sum::<f64>() / n as f64;
    out.mean_psnr = out.files.values().map(|s| s.psnr).sum::<f64>() / n as f64;
    let ssims: Vec<f64> = out.files.values().filter_map(|s| s.ssim).collect();
    out.mean_ssim = (!ssims.is_empty()).then(|| ssims.iter().sum::<f64>() / ssims.len() as f64);
    Ok(out)
}
