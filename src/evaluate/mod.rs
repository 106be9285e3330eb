//! Measuring how good translations are. For now the paired measure the demo
//! and the benchmark use, PSNR; FID and KID belong here next.

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
    }
}
