//! Training-time preprocessing, as the official `get_transform` does it:
//! resize and/or crop (`--preprocess`), random horizontal flip, then scale
//! to `[-1, 1]`. The random choices are drawn up front ([`Augment`]) so that
//! they depend only on the run's seed and position, never on which worker
//! thread decodes the image.

use std::path::Path;

use clap::ValueEnum;
use image::DynamicImage;
use image::imageops::FilterType;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::image_io::{self, ImageData};
use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Preprocess {
    /// Resize to load-size x load-size, then random-crop crop-size.
    #[value(name = "resize_and_crop")]
    ResizeAndCrop,
    /// Random-crop crop-size at the original scale.
    #[value(name = "crop")]
    Crop,
    /// Scale the width to load-size (height keeps the aspect, at least crop-size).
    #[value(name = "scale_width")]
    ScaleWidth,
    /// scale_width, then random-crop crop-size.
    #[value(name = "scale_width_and_crop")]
    ScaleWidthAndCrop,
    /// Only round sides to multiples of 4.
    #[value(name = "none")]
    None,
}

impl Preprocess {
    pub fn resizes(self) -> bool {
        matches!(self, Self::ResizeAndCrop | Self::ScaleWidth | Self::ScaleWidthAndCrop)
    }

    pub fn crops(self) -> bool {
        matches!(self, Self::ResizeAndCrop | Self::Crop | Self::ScaleWidthAndCrop)
    }

    /// The side of every training image, when it does not depend on the image.
    pub fn fixed_size(self, _load_size: u32, crop_size: u32) -> Option<u32> {
        self.crops().then_some(crop_size)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ResizeFilter {
    Nearest,
    Bilinear,
    /// The official default (PIL's BICUBIC).
    Bicubic,
}

impl ResizeFilter {
    fn filter(self) -> FilterType {
        match self {
            Self::Nearest => FilterType::Nearest,
            Self::Bilinear => FilterType::Triangle,
            Self::Bicubic => FilterType::CatmullRom,
        }
    }
}

/// The random part of one image's preprocessing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Augment {
    /// Crop position, as fractions of the free room along x and y.
    pub crop_at: (f64, f64),
    pub flip: bool,
}

impl Augment {
    pub fn draw(rng: &mut Rng, flip: bool) -> Self {
        let crop_at = (rng.uniform(), rng.uniform());
        let flip = flip && rng.coin();
        Self { crop_at, flip }
    }
}

/// How images are brought to training size.
#[derive(Clone, Copy, Debug)]
pub struct Transform {
    pub preprocess: Preprocess,
    pub load_size: u32,
    pub crop_size: u32,
    pub filter: ResizeFilter,
    pub channels: usize,
    /// The smallest side the generator takes (smaller images are refused).
    pub min_size: u32,
}

impl Transform {
    pub fn apply(&self, path: &Path, img: DynamicImage, aug: Augment) -> Result<ImageData> {
        let f = self.filter.filter();
        let mut img = match self.preprocess {
            Preprocess::ResizeAndCrop => img.resize_exact(self.load_size, self.load_size, f),
            Preprocess::ScaleWidth | Preprocess::ScaleWidthAndCrop => self.scale_width(img),
            Preprocess::Crop => img,
            Preprocess::None => make_multiple_of_4(img, f),
        };
        if self.preprocess.crops() {
            let c = self.crop_size;
            let (w, h) = (img.width(), img.height());
            if w < c || h < c {
                return Err(Error::image(path, format!("is {w}x{h} after resizing, smaller than --crop-size {c}")));
            }
            let x = ((w - c + 1) as f64 * aug.crop_at.0) as u32;
            let y = ((h - c + 1) as f64 * aug.crop_at.1) as u32;
            img = img.crop_imm(x.min(w - c), y.min(h - c), c, c);
        }
        if img.width() < self.min_size || img.height() < self.min_size {
            return Err(Error::image(
                path,
                format!("is {}x{} after preprocessing, smaller than the {} px the networks need", img.width(), img.height(), self.min_size),
            ));
        }
        if aug.flip {
            img = img.fliph();
        }
        Ok(image_io::to_data(&img, self.channels))
    }

    /// Official `__scale_width`: width to load-size, height by aspect but at least crop-size.
    fn scale_width(&self, img: DynamicImage) -> DynamicImage {
        let (ow, oh) = (img.width(), img.height());
        let target = self.load_size;
        if ow == target && oh >= self.crop_size {
            return img;
        }
        let h = ((target as f64 * oh as f64 / ow as f64) as u32).max(self.crop_size);
        img.resize_exact(target, h, self.filter.filter())
    }
}

/// Official `__make_power_2(base=4)`: round each side to the nearest multiple of 4.
fn make_multiple_of_4(img: DynamicImage, f: FilterType) -> DynamicImage {
    let round = |v: u32| (((v as f64 / 4.0).round() as u32) * 4).max(4);
    let (w, h) = (round(img.width()), round(img.height()));
    if (w, h) == (img.width(), img.height()) { img } else { img.resize_exact(w, h, f) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: u32, h: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 0])))
    }

    fn t(preprocess: Preprocess) -> Transform {
        Transform { preprocess, load_size: 40, crop_size: 32, filter: ResizeFilter::Bicubic, channels: 3, min_size: 8 }
    }

    #[test]
    fn sizes_follow_the_official_preprocessing() {
        let p = Path::new("x.png");
        let no = Augment { crop_at: (0.0, 0.0), flip: false };
        let size = |pre, img| {
            let d = t(pre).apply(p, img, no).unwrap();
            (d.width, d.height)
        };
        assert_eq!(size(Preprocess::ResizeAndCrop, ramp(100, 60)), (32, 32));
        assert_eq!(size(Preprocess::Crop, ramp(100, 60)), (32, 32));
        assert_eq!(size(Preprocess::ScaleWidth, ramp(100, 60)), (40, 32)); // 40*60/100 = 24 < 32
        assert_eq!(size(Preprocess::ScaleWidth, ramp(50, 100)), (40, 80));
        assert_eq!(size(Preprocess::ScaleWidthAndCrop, ramp(50, 100)), (32, 32));
        assert_eq!(size(Preprocess::None, ramp(45, 37)), (44, 36));
    }

    #[test]
    fn nearest_resizing_copies_pixels_and_bicubic_blends_them() {
        let p = Path::new("x.png");
        let checker = DynamicImage::ImageRgb8(image::RgbImage::from_fn(4, 4, |x, y| image::Rgb([if (x + y) % 2 == 0 { 255 } else { 0 }; 3])));
        let no = Augment { crop_at: (0.0, 0.0), flip: false };
        let up = |filter| Transform { preprocess: Preprocess::ResizeAndCrop, load_size: 16, crop_size: 16, filter, channels: 3, min_size: 4 };
        let nearest = up(ResizeFilter::Nearest).apply(p, checker.clone(), no).unwrap();
        assert!(nearest.values.iter().all(|&v| v == -1.0 || v == 1.0), "nearest: only the source's values");
        assert_eq!(nearest.values.iter().filter(|&&v| v == 1.0).count() * 2, nearest.values.len());
        let bicubic = up(ResizeFilter::Bicubic).apply(p, checker, no).unwrap();
        assert!(bicubic.values.iter().filter(|&&v| v.abs() < 0.9).count() > bicubic.values.len() / 4, "bicubic: blended values");
    }

    #[test]
    fn crop_position_and_flip_are_the_drawn_ones() {
        let p = Path::new("x.png");
        let tr = Transform { preprocess: Preprocess::Crop, load_size: 40, crop_size: 4, filter: ResizeFilter::Nearest, channels: 3, min_size: 4 };
        // x offset = floor((10 - 4 + 1) * 0.5) = 3; the red channel holds x.
        let d = tr.apply(p, ramp(10, 10), Augment { crop_at: (0.5, 0.0), flip: false }).unwrap();
        assert_eq!(d.values[0], 3.0 / 127.5 - 1.0);
        let d = tr.apply(p, ramp(10, 10), Augment { crop_at: (0.5, 0.0), flip: true }).unwrap();
        assert_eq!(d.values[0], 6.0 / 127.5 - 1.0, "flipped: the row starts at the crop's right edge");
        let err = tr.apply(p, ramp(3, 10), Augment { crop_at: (0.0, 0.0), flip: false }).unwrap_err();
        assert!(err.to_string().contains("smaller than --crop-size 4"), "{err}");
        let tiny = Transform { preprocess: Preprocess::None, min_size: 8, ..tr };
        let err = tiny.apply(p, ramp(5, 5), Augment { crop_at: (0.0, 0.0), flip: false }).unwrap_err();
        assert!(err.to_string().contains("4x4 after preprocessing, smaller than the 8 px"), "{err}");
    }
}
