//! From image files to Inception features, as pytorch-fid feeds them: each
//! file read as 8-bit RGB (alpha dropped, gray repeated: PIL's
//! `convert('RGB')`), scaled to `[0, 1]`, resized to 299x299 bilinearly
//! (PyTorch's `interpolate`, `align_corners=False`, no antialiasing), mapped
//! to `[-1, 1]`, and run through the network in batches, so memory holds one
//! batch of images and the features (8 KB an image), not the images.

use std::path::{Path, PathBuf};

use image::RgbImage;

use super::inception::{FEATURES, INPUT_SIZE, Inception};
use crate::error::Error;
use crate::image_io;

/// Feature vectors of one set of images, row by row.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureSet {
    pub features: Vec<f32>,
    pub dims: usize,
}

impl FeatureSet {
    pub fn len(&self) -> usize {
        self.features.len() / self.dims
    }

    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }
}

/// What feature extraction made of a list of files.
pub struct Extracted {
    pub set: FeatureSet,
    /// Files that could not be read, with why; they are left out.
    pub skipped: Vec<Error>,
}

/// Images per forward pass (pytorch-fid's default batch size).
pub const DEFAULT_BATCH: usize = 50;

/// Features of `images` (as many as `total`), `batch` at a time; `progress`
/// hears the count done. Images that failed to load are skipped and returned.
pub fn extract(
    net: &Inception,
    images: impl Iterator<Item = Result<RgbImage, Error>>,
    batch: usize,
    progress: &mut dyn FnMut(usize),
) -> Extracted {
    let per_image = 3 * INPUT_SIZE * INPUT_SIZE;
    let batch = batch.max(1);
    let mut features = Vec::new();
    let mut skipped = Vec::new();
    let mut inputs = Vec::with_capacity(batch * per_image);
    let mut done = 0;
    let flush = |inputs: &mut Vec<f32>, features: &mut Vec<f32>| {
        let n = inputs.len() / per_image;
        if n > 0 {
            features.extend(net.features(std::mem::take(inputs), n));
        }
    };
    for image in images {
        match image {
            Ok(img) => inputs.extend(prepare(&img)),
            Err(e) => skipped.push(e),
        }
        done += 1;
        if inputs.len() == batch * per_image {
            flush(&mut inputs, &mut features);
            progress(done);
        }
    }
    flush(&mut inputs, &mut features);
    progress(done);
    Extracted { set: FeatureSet { features, dims: FEATURES }, skipped }
}

/// Features of image files, read as pytorch-fid reads them.
pub fn extract_files(net: &Inception, files: &[PathBuf], batch: usize, progress: &mut dyn FnMut(usize)) -> Extracted {
    extract(net, files.iter().map(|p| load(p)), batch, progress)
}

/// One file as 8-bit RGB: alpha dropped, gray repeated (PIL's `convert('RGB')`).
pub fn load(path: &Path) -> Result<RgbImage, Error> {
    Ok(image_io::decode(path)?.to_rgb8())
}

/// An 8-bit RGB image as the network's input: `[3, 299, 299]` in `[-1, 1]`.
pub fn prepare(img: &RgbImage) -> Vec<f32> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let raw = img.as_raw();
    let xs = taps(w, INPUT_SIZE);
    let ys = taps(h, INPUT_SIZE);
    let mut out = vec![0f32; 3 * INPUT_SIZE * INPUT_SIZE];
    for c in 0..3 {
        let at = |x: usize, y: usize| raw[(y * w + x) * 3 + c] as f32 / 255.0;
        let plane = &mut out[c * INPUT_SIZE * INPUT_SIZE..(c + 1) * INPUT_SIZE * INPUT_SIZE];
        for (oy, ty) in ys.iter().enumerate() {
            for (ox, tx) in xs.iter().enumerate() {
                let top = tx.w0 * at(tx.i0, ty.i0) + tx.w1 * at(tx.i1, ty.i0);
                let bottom = tx.w0 * at(tx.i0, ty.i1) + tx.w1 * at(tx.i1, ty.i1);
                plane[oy * INPUT_SIZE + ox] = 2.0 * (ty.w0 * top + ty.w1 * bottom) - 1.0;
            }
        }
    }
    out
}

/// Where one output coordinate reads from: two neighbours and their weights.
struct Tap {
    i0: usize,
    i1: usize,
    w0: f32,
    w1: f32,
}

/// PyTorch's source indices and weights for bilinear resizing along one axis
/// (`align_corners=False`: half-pixel centres, negative positions clamped to 0), in f32 as PyTorch computes them.
fn taps(input: usize, output: usize) -> Vec<Tap> {
    let scale = input as f32 / output as f32;
    (0..output)
        .map(|o| {
            let src = (scale * (o as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (src as usize).min(input - 1);
            let i1 = if i0 < input - 1 { i0 + 1 } else { i0 };
            let w1 = (src - i0 as f32).clamp(0.0, 1.0);
            Tap { i0, i1, w0: 1.0 - w1, w1 }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_resize_is_the_identity_and_upscaling_interpolates() {
        let t = taps(299, 299);
        assert!(t.iter().enumerate().all(|(i, t)| t.i0 == i && t.w1 == 0.0));
        // 2 -> 4: sources -0.25 (clamped to 0), 0.25, 0.75, 1.25 (last pixel)
        let t = taps(2, 4);
        let got: Vec<(usize, usize, f32)> = t.iter().map(|t| (t.i0, t.i1, t.w1)).collect();
        assert_eq!(got, vec![(0, 1, 0.0), (0, 1, 0.25), (0, 1, 0.75), (1, 1, 0.25)]);
    }
}
