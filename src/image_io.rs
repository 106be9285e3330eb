//! Images in and out: any file the `image` crate decodes (8 or 16 bit, gray,
//! RGB, with or without alpha) to channel-first `f32` in `[-1, 1]`, and back
//! to 8-bit files written atomically.
//!
//! The scaling is the official one, `x / 127.5 - 1` in and
//! `round((y + 1) * 127.5)` out (after clamping to `[-1, 1]`), so that an
//! 8-bit image goes through exactly the numbers PyTorch sees.

use std::io::Cursor;
use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use crate::error::{Error, Result};
use crate::fs;

/// Largest width or height decoded. A header promising more is refused
/// before any pixel is decoded (decompression bombs), and the decoder's
/// allocations are capped to match.
pub const MAX_SIDE: u32 = 16384;
const MAX_ALLOC: u64 = MAX_SIDE as u64 * MAX_SIDE as u64 * 8;

/// An image as a `[channels, height, width]` array of `f32` in `[-1, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageData {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub values: Vec<f32>,
}

impl ImageData {
    /// A `[1, C, H, W]` tensor.
    pub fn to_tensor(&self, device: &Device) -> Tensor<4> {
        Tensor::from_data(
            TensorData::new(self.values.clone(), [1, self.channels, self.height, self.width]),
            device,
        )
    }

    /// The first image of a `[N, C, H, W]` tensor.
    pub fn from_tensor(t: Tensor<4>) -> Self {
        let [_, channels, height, width] = t.dims();
        let first = t.narrow(0, 0, 1);
        let values = first.into_data().convert_dtype(burn::tensor::DType::F32).try_into_vec().expect("f32 tensor data");
        Self { channels, height, width, values }
    }

    /// Convert to an 8-bit image: 1 channel -> gray, 3 -> RGB, 4 -> RGBA.
    pub fn to_image(&self) -> DynamicImage {
        let (h, w, c) = (self.height, self.width, self.channels);
        let plane = h * w;
        let byte = |v: f32| ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round_ties_even() as u8;
        let mut pixels = vec![0u8; plane * c];
        for ch in 0..c {
            for i in 0..plane {
                pixels[i * c + ch] = byte(self.values[ch * plane + i]);
            }
        }
        let (w, h) = (w as u32, h as u32);
        match c {
            1 => DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, pixels).expect("sized buffer")),
            3 => DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, pixels).expect("sized buffer")),
            4 => DynamicImage::ImageRgba8(image::RgbaImage::from_raw(w, h, pixels).expect("sized buffer")),
            n => panic!("cannot make an image of {n} channels"),
        }
    }
}

/// Decode an image file, refusing oversized and corrupt ones with a clear reason.
pub fn decode(path: &Path) -> Result<DynamicImage> {
    let bytes = fs::read(path)?;
    decode_bytes(path, &bytes)
}

/// Decode image bytes; `path` only names the source in errors.
pub fn decode_bytes(path: &Path, bytes: &[u8]) -> Result<DynamicImage> {
    let (w, h) = header_dimensions(path, bytes)?;
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(Error::image(path, format!("image is {w}x{h} pixels, over the {MAX_SIDE}-pixel limit per side")));
    }
    if w == 0 || h == 0 {
        return Err(Error::image(path, "image has no pixels"));
    }
    let mut r = reader(path, bytes)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    r.limits(limits);
    r.decode().map_err(|e| Error::image(path, format!("corrupt or truncated image ({e})")))
}

/// A reader of `bytes` in the format their first bytes say.
fn reader<'a>(path: &Path, bytes: &'a [u8]) -> Result<ImageReader<Cursor<&'a [u8]>>> {
    if bytes.is_empty() {
        return Err(Error::image(path, "file is empty"));
    }
    let format = image::guess_format(bytes)
        .map_err(|_| Error::image(path, "not an image in a supported format (png, jpeg, webp, bmp, tiff)"))?;
    let mut r = ImageReader::new(Cursor::new(bytes));
    r.set_format(format);
    Ok(r)
}

/// Width and height as the file's header states them, nothing decoded (a
/// server refuses pixel bombs by this before decoding).
pub fn header_dimensions(path: &Path, bytes: &[u8]) -> Result<(u32, u32)> {
    reader(path, bytes)?.into_dimensions().map_err(|e| Error::image(path, format!("corrupt or truncated image ({e})")))
}

/// Convert a decoded image to `channels` channels (1, 3 or 4) in `[-1, 1]`.
///
/// Transparency is composited on white for 1 and 3 channels (emoji, logos and
/// scans with alpha look as they do in a viewer); 4 channels keep alpha.
/// 8-bit images are scaled exactly as the official code does; 16-bit and
/// float images keep their extra precision.
pub fn to_data(img: &DynamicImage, channels: usize) -> ImageData {
    let (width, height) = (img.width() as usize, img.height() as usize);
    let plane = width * height;
    let eight_bit = matches!(
        img,
        DynamicImage::ImageLuma8(_) | DynamicImage::ImageLumaA8(_) | DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_)
    );
    // Channel values on the 0..=255 scale, as f32 (exact for 8-bit sources).
    let rgba: Vec<[f32; 4]> = if eight_bit {
        img.to_rgba8().pixels().map(|p| p.0.map(f32::from)).collect()
    } else {
        img.to_rgba32f().pixels().map(|p| p.0.map(|v| v.clamp(0.0, 1.0) * 255.0)).collect()
    };
    let scale = |v: f32| v / 127.5 - 1.0;
    let on_white = |p: &[f32; 4], c: usize| {
        let a = p[3];
        if a >= 255.0 { p[c] } else { (p[c] * a + 255.0 * (255.0 - a)) / 255.0 }
    };
    let mut values = vec![0f32; plane * channels];
    for (i, p) in rgba.iter().enumerate() {
        match channels {
            1 => {
                let [r, g, b] = [0, 1, 2].map(|c| on_white(p, c));
                values[i] = scale(r * 0.299 + g * 0.587 + b * 0.114);
            }
            3 => {
                for c in 0..3 {
                    values[c * plane + i] = scale(on_white(p, c));
                }
            }
            4 => {
                for c in 0..4 {
                    values[c * plane + i] = scale(p[c]);
                }
            }
            n => panic!("images have 1, 3 or 4 channels, not {n}"),
        }
    }
    ImageData { channels, height, width, values }
}

/// The format a file name asks for, if we can write it.
pub fn output_format(path: &Path) -> Option<ImageFormat> {
    let format = ImageFormat::from_path(path).ok()?;
    matches!(format, ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP | ImageFormat::Bmp | ImageFormat::Tiff)
        .then_some(format)
}

/// Save an image atomically in the format its extension names.
/// 1-channel data is written as gray RGB; 4-channel as RGBA where the format
/// has alpha (composited on white for JPEG).
pub fn save(path: &Path, data: &ImageData) -> Result<()> {
    let format = output_format(path).ok_or_else(|| {
        Error::image(path, "unknown output format: use a .png, .jpg, .webp, .bmp or .tif name")
    })?;
    let buf = encode(data, format).map_err(|e| Error::image(path, format!("cannot encode ({e})")))?;
    fs::write_bytes_atomic(path, &buf)
}

/// The bytes of an 8-bit file of `format`, as [`save`] writes them.
pub fn encode(data: &ImageData, format: ImageFormat) -> std::result::Result<Vec<u8>, image::ImageError> {
    let img = data.to_image();
    let img = match (data.channels, format) {
        (1, _) => DynamicImage::ImageRgb8(img.to_rgb8()),
        (4, ImageFormat::Jpeg) => composite_on_white(&img),
        _ => img,
    };
    let mut buf = Vec::new();
    img.write_to(&mut Cursor::new(&mut buf), format)?;
    Ok(buf)
}

fn composite_on_white(img: &DynamicImage) -> DynamicImage {
    let rgba = img.to_rgba8();
    let rgb = image::RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let p = rgba.get_pixel(x, y).0;
        let a = p[3] as u32;
        image::Rgb([0, 1, 2].map(|c| ((p[c] as u32 * a + 255 * (255 - a) + 127) / 255) as u8))
    });
    DynamicImage::ImageRgb8(rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_bit_scaling_round_trips_exactly() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(16, 1, |x, _| image::Rgb([x as u8 * 17, 0, 255])));
        let data = to_data(&img, 3);
        assert_eq!(data.values[1], 17.0 / 127.5 - 1.0);
        assert_eq!(data.to_image().to_rgb8(), img.to_rgb8());
    }

    #[test]
    fn alpha_is_composited_on_white_and_gray_is_luma() {
        let img = DynamicImage::ImageRgba8(image::RgbaImage::from_raw(2, 1, vec![0, 0, 0, 0, 255, 0, 0, 255]).unwrap());
        let rgb = to_data(&img, 3);
        assert_eq!(rgb.values[0], 1.0); // transparent black -> white
        assert_eq!(rgb.values[1], 1.0); // opaque red: R = 255
        assert_eq!(rgb.values[3], -1.0); // G of the red pixel
        let gray = to_data(&img, 1);
        assert!((gray.values[1] - (255.0 * 0.299 / 127.5 - 1.0)).abs() < 1e-6);
    }

    #[test]
    fn sixteen_bit_keeps_precision() {
        let img = DynamicImage::ImageRgb16(image::ImageBuffer::from_raw(1, 1, vec![65535u16, 32768, 1]).unwrap());
        let d = to_data(&img, 3);
        assert!((d.values[0] - 1.0).abs() < 1e-6);
        assert!((d.values[1] - (32768.0 / 65535.0 * 2.0 - 1.0)).abs() < 1e-5);
        assert!(d.values[2] > -1.0);
    }
}
