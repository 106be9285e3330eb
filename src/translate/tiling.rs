//! Translating images too large to run whole, tile by tile, in bounded memory.
//!
//! Two things keep the tiles from showing:
//! - instance-norm statistics come from one pass over the whole image
//!   (downscaled so its longer side is at most `stats_size`; exact when the
//!   image is no larger) and every tile is normalised with them, as the
//!   untiled network would normalise it;
//! - tiles overlap by `overlap` pixels and are cross-faded over the overlap,
//!   so the tile borders, where the network sees padding instead of the
//!   neighbouring pixels, get no weight.

use image::imageops::FilterType;

use super::{Translator, pad_to_fit};
use crate::error::{Error, Result};
use crate::image_io::ImageData;
use crate::nets::NormStats;

/// How to tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiling {
    /// Tile side in pixels (rounded up to the generator's size multiple).
    pub tile: usize,
    /// Pixels shared by neighbouring tiles.
    pub overlap: usize,
    /// Longest side of the statistics pass.
    pub stats_size: usize,
}

impl Tiling {
    pub const DEFAULT_OVERLAP: usize = 64;
    pub const DEFAULT_STATS_SIZE: usize = 1024;

    pub fn check(&self, multiple: usize) -> Result<Tiling> {
        if self.tile == 0 {
            return Err(Error::Usage("--tile must be at least 1 px".into()));
        }
        let tile = self.tile.div_ceil(multiple) * multiple;
        if self.overlap * 2 > tile {
            return Err(Error::Usage(format!("--overlap {} must be at most half the tile ({tile} px)", self.overlap)));
        }
        Ok(Tiling { tile, ..*self })
    }
}

/// Tile origins along one side of `len` pixels: a tile every `tile - overlap`,
/// the last one flush with the end.
fn origins(len: usize, tile: usize, overlap: usize) -> Vec<usize> {
    if len <= tile {
        return vec![0];
    }
    let step = tile - overlap;
    let mut out: Vec<usize> = (0..).map(|i| i * step).take_while(|&o| o + tile < len).collect();
    out.push(len - tile);
    out
}

/// Blend weight of position `p` in a tile spanning `[start, start + size)` of a side of `len`:
/// a ramp from 0 to 1 across `overlap` pixels at edges that are not the image's edge.
fn ramp(p: usize, start: usize, size: usize, len: usize, overlap: usize) -> f32 {
    let mut w = 1.0f32;
    if overlap == 0 {
        return w;
    }
    if start > 0 {
        w = w.min((p + 1) as f32 / (overlap + 1) as f32);
    }
    if start + size < len {
        w = w.min((size - p) as f32 / (overlap + 1) as f32);
    }
    w
}

/// Record the instance-norm statistics of the whole image (downscaled to `stats_size`).
fn whole_image_statistics(translator: &Translator, image: &ImageData, stats_size: usize) -> NormStats {
    let longest = image.width.max(image.height);
    let small = if longest > stats_size {
        let scale = stats_size as f64 / longest as f64;
        let (w, h) = (((image.width as f64 * scale).round() as u32).max(1), ((image.height as f64 * scale).round() as u32).max(1));
        resize(image, w, h)
    } else {
        image.clone()
    };
    let (x, _, _) = pad_to_fit(translator.input(&small), translator.config.arch);
    let mut stats = NormStats::Record(Vec::new());
    translator.run(|net| net.forward_with(x, &mut stats).into_data());
    match stats {
        NormStats::Record(recorded) => NormStats::Apply { stats: recorded, next: 0 },
        _ => unreachable!("recording"),
    }
}

/// Resize channel-first float data with a triangle filter.
fn resize(image: &ImageData, w: u32, h: u32) -> ImageData {
    let plane = image.width * image.height;
    let mut channels = Vec::with_capacity(image.channels);
    for c in 0..image.channels {
        let buf = image::ImageBuffer::<image::Luma<f32>, Vec<f32>>::from_raw(
            image.width as u32,
            image.height as u32,
            image.values[c * plane..(c + 1) * plane].to_vec(),
        )
        .expect("sized plane");
        channels.push(image::imageops::resize(&buf, w, h, FilterType::Triangle).into_raw());
    }
    ImageData { channels: image.channels, height: h as usize, width: w as usize, values: channels.concat() }
}

/// Translate `image` tile by tile.
pub fn translate_tiled(translator: &Translator, image: &ImageData, tiling: Tiling) -> Result<ImageData> {
    let tiling = tiling.check(translator.config.arch.size_multiple())?;
    let stats = whole_image_statistics(translator, image, tiling.stats_size);
    let NormStats::Apply { stats: recorded, .. } = stats else { unreachable!() };
    let (h, w, cin) = (image.height, image.width, image.channels);
    let cout = translator.config.output_nc;
    let plane = h * w;
    let mut acc = vec![0f32; cout * plane];
    let mut weights = vec![0f32; plane];
    for &y0 in &origins(h, tiling.tile, tiling.overlap) {
        for &x0 in &origins(w, tiling.tile, tiling.overlap) {
            let (th, tw) = (tiling.tile.min(h), tiling.tile.min(w));
            let mut values = Vec::with_capacity(cin * th * tw);
            for c in 0..cin {
                for y in y0..y0 + th {
                    let row = c * plane + y * w;
                    values.extend_from_slice(&image.values[row + x0..row + x0 + tw]);
                }
            }
            let tile = ImageData { channels: cin, height: th, width: tw, values };
            let x = translator.input(&tile);
            let (x, _, _) = pad_to_fit(x, translator.config.arch);
            let mut apply = NormStats::Apply { stats: recorded.clone(), next: 0 };
            let out = translator.run(|net| ImageData::from_tensor(net.forward_with(x, &mut apply).slice([0..1, 0..cout, 0..th, 0..tw])));
            for ty in 0..th {
                let wy = ramp(ty, y0, th, h, tiling.overlap);
                for tx in 0..tw {
                    let wgt = wy * ramp(tx, x0, tw, w, tiling.overlap);
                    let at = (y0 + ty) * w + x0 + tx;
                    weights[at] += wgt;
                    for c in 0..cout {
                        acc[c * plane + at] += wgt * out.values[c * th * tw + ty * tw + tx];
                    }
                }
            }
        }
    }
    for c in 0..cout {
        for (v, wgt) in acc[c * plane..(c + 1) * plane].iter_mut().zip(&weights) {
            *v /= wgt;
        }
    }
    Ok(ImageData { channels: cout, height: h, width: w, values: acc })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nets::{GeneratorArch, GeneratorConfig, Initializer};
    use crate::rng::Rng;
    use burn::tensor::{Device, Distribution, Tensor};

    #[test]
    fn recorded_statistics_reproduce_the_per_image_pass() {
        let device = Device::flex();
        let cfg = GeneratorConfig { ngf: 4, ..GeneratorConfig::new(GeneratorArch::Resnet6Blocks) };
        let g = cfg.init(&Initializer::default(), &mut Rng::seed_from(1), &device);
        let x = Tensor::<4>::random([1, 3, 24, 20], Distribution::Uniform(-1.0, 1.0), &device);
        let plain = g.forward(x.clone());
        let mut record = NormStats::Record(Vec::new());
        let recorded = g.forward_with(x.clone(), &mut record);
        let NormStats::Record(stats) = record else { unreachable!() };
        assert_eq!(stats.len(), 1 + 2 + 12 + 2, "stem, down, 6 blocks x 2, up");
        let applied = g.forward_with(x, &mut NormStats::Apply { stats, next: 0 });
        for y in [recorded, applied] {
            let diff = (y - plain.clone()).abs().max().into_scalar::<f32>();
            assert!(diff < 1e-4, "{diff}");
        }
    }

    #[test]
    fn tiles_cover_the_side_and_weights_cross_fade() {
        assert_eq!(origins(100, 256, 64), vec![0]);
        assert_eq!(origins(1000, 256, 64), vec![0, 192, 384, 576, 744]);
        // In an overlap between two tiles the weights sum to 1.
        let (len, tile, overlap) = (448, 256, 64);
        let starts = origins(len, tile, overlap);
        assert_eq!(starts, vec![0, 192]);
        for p in 0..len {
            let total: f32 = starts
                .iter()
                .filter(|&&s| p >= s && p < s + tile)
                .map(|&s| ramp(p - s, s, tile, len, overlap))
                .sum();
            assert!(total > 0.0, "pixel {p} has no weight");
            if (192..256).contains(&p) {
                assert!((total - 1.0).abs() < 1e-6, "pixel {p}: {total}");
            }
        }
    }
}
