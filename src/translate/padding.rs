//! Padding an image up to the size a generator accepts.

use burn::tensor::Tensor;

use crate::ops;

/// Reflect-pad the bottom and right of `x` so that height and width are
/// multiples of `m`, as the reference does; returns the padded tensor and
/// the original height and width (to crop the output back to).
pub fn pad_to_multiple(x: Tensor<4>, m: usize) -> (Tensor<4>, usize, usize) {
    let [_, _, h, w] = x.dims();
    let ph = (m - h % m) % m;
    let pw = (m - w % m) % m;
    (reflect_pad_any(x, [0, ph, 0, pw]), h, w)
}

/// Reflection padding by any amount: where one reflection is not enough (a
/// pad as large as the image, as a 100 px image needs for a `unet_256`), the
/// image is reflected again off the padded edge, as often as needed.
pub fn reflect_pad_any(mut x: Tensor<4>, [mut top, mut bottom, mut left, mut right]: [usize; 4]) -> Tensor<4> {
    while top + bottom + left + right > 0 {
        let [_, _, h, w] = x.dims();
        // One reflection can add at most size - 1 on each side.
        let step = |want: &mut usize, size: usize| {
            let s = (*want).min(size.saturating_sub(1));
            *want -= s;
            s
        };
        let (t, b) = (step(&mut top, h), step(&mut bottom, h));
        let (l, r) = (step(&mut left, w), step(&mut right, w));
        if t + b + l + r == 0 {
            // A 1-pixel dimension cannot reflect: repeat it instead.
            return x.pad([(0, 0), (0, 0), (top, bottom), (left, right)], burn::tensor::ops::PadMode::Edge);
        }
        x = ops::reflect_pad(x, [t, b, l, r]);
    }
    x
}
