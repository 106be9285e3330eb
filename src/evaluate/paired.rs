//! Measures for aligned pairs (a translation and its ground truth of the
//! same size): mean absolute error in 8-bit levels, PSNR, and SSIM as most
//! papers report it (Wang et al. 2004: Gaussian window, sigma 1.5, 11 taps;
//! scikit-image's `structural_similarity(..., gaussian_weights=True,
//! sigma=1.5, use_sample_covariance=False, data_range=255)`, channels
//! averaged).

use image::RgbImage;

/// Peak signal-to-noise ratio in dB for a mean squared error `mse` over
/// values spanning `peak` (255 for 8-bit pixels, 2 for `[-1, 1]` tensors).
/// Identical inputs give infinity.
pub fn psnr_from_mse(mse: f64, peak: f64) -> f64 {
    if mse == 0.0 { f64::INFINITY } else { 10.0 * (peak * peak / mse).log10() }
}

/// PSNR of two 8-bit buffers of the same layout (e.g. two RGB images of one size).
pub fn psnr_u8(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "PSNR of buffers of different sizes");
    let sse: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
    psnr_from_mse(sse / a.len().max(1) as f64, 255.0)
}

/// Mean absolute difference in 8-bit levels.
pub fn l1_u8(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "L1 of buffers of different sizes");
    a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).abs()).sum::<f64>() / a.len().max(1) as f64
}

const SIGMA: f64 = 1.5;
/// Taps each side of the centre: scipy's `truncate=3.5` at sigma 1.5.
const RADIUS: usize = 5;

/// The smallest side SSIM's 11-tap window fits in.
pub const SSIM_MIN_SIDE: u32 = 2 * RADIUS as u32 + 1;

/// SSIM of two RGB images of the same size (at least [`SSIM_MIN_SIDE`] on each side), channels averaged.
pub fn ssim(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions(), "SSIM of images of different sizes");
    let (w, h) = (a.width() as usize, a.height() as usize);
    assert!(w.min(h) >= SSIM_MIN_SIDE as usize, "SSIM needs images of at least {SSIM_MIN_SIDE} px");
    let plane = |img: &RgbImage, c: usize| -> Vec<f64> { img.as_raw().iter().skip(c).step_by(3).map(|&v| v as f64).collect() };
    (0..3).map(|c| ssim_plane(&plane(a, c), &plane(b, c), w, h)).sum::<f64>() / 3.0
}

fn ssim_plane(x: &[f64], y: &[f64], w: usize, h: usize) -> f64 {
    const C1: f64 = (0.01 * 255.0) * (0.01 * 255.0);
    const C2: f64 = (0.03 * 255.0) * (0.03 * 255.0);
    let prod = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).collect::<Vec<f64>>();
    let blur = |v: &[f64]| gaussian_blur(v, w, h);
    let (ux, uy) = (blur(x), blur(y));
    let (uxx, uyy, uxy) = (blur(&prod(x, x)), blur(&prod(y, y)), blur(&prod(x, y)));
    // the mean over the region the window fits in without padding
    let (mut sum, mut count) = (0.0, 0usize);
    for r in RADIUS..h - RADIUS {
        for c in RADIUS..w - RADIUS {
            let i = r * w + c;
            let (vx, vy, vxy) = (uxx[i] - ux[i] * ux[i], uyy[i] - uy[i] * uy[i], uxy[i] - ux[i] * uy[i]);
            let s = ((2.0 * ux[i] * uy[i] + C1) * (2.0 * vxy + C2)) / ((ux[i] * ux[i] + uy[i] * uy[i] + C1) * (vx + vy + C2));
            sum += s;
            count += 1;
        }
    }
    sum / count as f64
}

/// scipy.ndimage's `gaussian_filter(sigma=1.5, truncate=3.5)`: separable, `mode='reflect'` (d c b a | a b c d).
fn gaussian_blur(v: &[f64], w: usize, h: usize) -> Vec<f64> {
    let weights: Vec<f64> = {
        let raw: Vec<f64> = (0..=2 * RADIUS).map(|i| (-0.5 * ((i as f64 - RADIUS as f64) / SIGMA).powi(2)).exp()).collect();
        let total: f64 = raw.iter().sum();
        raw.iter().map(|x| x / total).collect()
    };
    let reflect = |i: isize, n: usize| -> usize {
        let n = n as isize;
        let period = 2 * n;
        let m = i.rem_euclid(period);
        (if m < n { m } else { period - 1 - m }) as usize
    };
    let mut rows = vec![0f64; v.len()];
    for r in 0..h {
        for c in 0..w {
            rows[r * w + c] = weights
                .iter()
                .enumerate()
                .map(|(k, wt)| wt * v[r * w + reflect(c as isize + k as isize - RADIUS as isize, w)])
                .sum();
        }
    }
    let mut out = vec![0f64; v.len()];
    for r in 0..h {
        for c in 0..w {
            out[r * w + c] = weights
                .iter()
                .enumerate()
                .map(|(k, wt)| wt * rows[reflect(r as isize + k as isize - RADIUS as isize, h) * w + c])
                .sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_of_a_known_error() {
        // every value off by 1: MSE 1, 20 log10(255) = 48.13 dB
        let a = [10u8, 20, 30, 40];
        let b = [11u8, 19, 31, 39];
        assert!((psnr_u8(&a, &b) - 48.1308).abs() < 1e-3, "{}", psnr_u8(&a, &b));
        assert_eq!(psnr_u8(&a, &a), f64::INFINITY);
        assert!((psnr_from_mse(0.04, 2.0) - 20.0).abs() < 1e-12);
        assert_eq!(l1_u8(&a, &b), 1.0);
    }

    #[test]
    fn ssim_is_one_for_identical_images_and_lower_for_noise() {
        let a = RgbImage::from_fn(16, 13, |x, y| image::Rgb([(x * 15) as u8, (y * 19) as u8, ((x + y) * 7) as u8]));
        assert!((ssim(&a, &a) - 1.0).abs() < 1e-12);
        let b = RgbImage::from_fn(16, 13, |x, y| {
            let p = a.get_pixel(x, y).0;
            image::Rgb(p.map(|v| v.saturating_add(((x * 31 + y * 17) % 23) as u8)))
        });
        let s = ssim(&a, &b);
        assert!(s < 0.99 && s > 0.0, "{s}");
    }
}
