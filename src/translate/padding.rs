//! Padding an image up to the size a generator accepts.

use burn::tensor::Tensor;

use crate::nets::GeneratorArch;
use crate::ops;

/// Reflect-pad the bottom and right of `x` to a size `arch` takes: multiples
/// of its [`GeneratorArch::size_multiple`], as the reference does, and at
/// least its [`GeneratorArch::min_size`]. Returns the padded tensor and the
/// original height and width (to crop the output back to).
pub fn pad_to_fit(x: Tensor<4>, arch: GeneratorArch) -> (Tensor<4>, usize, usize) {
    let [_, _, h, w] = x.dims();
    let (m, min) = (arch.size_multiple(), arch.min_size());
    let target = |len: usize| len.max(min).div_ceil(m) * m;
    (reflect_pad_any(x, [0, target(h) - h, 0, target(w) - w]), h, w)
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn column(values: Vec<f32>, h: usize) -> Tensor<4> {
        Tensor::from_data(TensorData::new(values, [1, 1, h, 1]), &Device::flex())
    }

    fn values(t: Tensor<4>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_into_vec().unwrap()
    }

    #[test]
    fn pads_wider_than_the_image_reflect_again() {
        // 3 rows padded by 5 at the bottom: 0 1 2 | 1 0 | 1 2 | 1 (reflecting off each new edge)
        let x = column(vec![0.0, 1.0, 2.0], 3);
        let y = reflect_pad_any(x, [0, 5, 0, 0]);
        assert_eq!(values(y), vec![0.0, 1.0, 2.0, 1.0, 0.0, 1.0, 2.0, 1.0]);
        // a single row cannot reflect: it is repeated
        let y = reflect_pad_any(column(vec![7.0], 1), [0, 3, 0, 0]);
        assert_eq!(values(y), vec![7.0; 4]);
    }

    #[test]
    fn pads_to_the_multiple_and_minimum_and_reports_the_original_size() {
        let x = Tensor::<4>::zeros([1, 3, 5, 9], &Device::flex());
        let (y, h, w) = pad_to_fit(x, GeneratorArch::Resnet9Blocks);
        assert_eq!((y.dims(), h, w), ([1, 3, 8, 12], 5, 9));
        let x = Tensor::<4>::zeros([1, 3, 1, 2], &Device::flex());
        assert_eq!(pad_to_fit(x, GeneratorArch::Resnet6Blocks).0.dims(), [1, 3, 8, 8]);
        let x = Tensor::<4>::zeros([1, 3, 100, 300], &Device::flex());
        assert_eq!(pad_to_fit(x, GeneratorArch::Unet256).0.dims(), [1, 3, 256, 512]);
    }
}
