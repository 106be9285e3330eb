//! How steady a translated video is, against the video it was translated from.
//!
//! - Warping error (Lai et al. 2018, "Learning Blind Video Temporal
//!   Consistency"): for each pair of consecutive frames, the next output
//!   frame is warped back to the current one along the *input's* flow, and
//!   the squared difference (summed over the channels, pixels in [0, 1]) is
//!   averaged over the pixels the flow is consistent at; then averaged over
//!   the pairs. Flicker the input does not have raises it. The input's own
//!   warping error is reported beside it: what a perfectly steady
//!   translation would get with this flow.
//! - tOF (Chu et al. 2020, TecoGAN): the mean distance, in pixels, between
//!   the flow of the output frames and the flow of the input frames:
//!   motion the output invents or loses.
//!
//! The flow is this project's own estimator ([`super::flow`]), not
//! FlowNet2 or Farneback as in those papers: compare figures measured here
//! with each other, not with published ones.

use burn::tensor::Tensor;

use super::flow;

/// The temporal-consistency figures of one translated video.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Consistency {
    /// Pairs of consecutive frames measured.
    pub pairs: usize,
    /// Warping error of the translated video.
    pub warping_error: f64,
    /// Warping error of the input video itself, with the same flow and masks.
    pub input_warping_error: f64,
    /// Mean end-point distance between the output's and the input's flow, in pixels.
    pub tof: f64,
}

/// Takes (input, output) frames in order, as `[1, C, H, W]` in [-1, 1].
#[derive(Default)]
pub struct ConsistencyMeter {
    previous: Option<Frame>,
    pairs: usize,
    warping: f64,
    input_warping: f64,
    tof: f64,
}

/// One frame pair as the measures use it, kept for the next pair: the
/// input and output in [0, 1] and their brightness.
struct Frame {
    input: Tensor<4>,
    output: Tensor<4>,
    input_luma: Tensor<4>,
    output_luma: Tensor<4>,
}

impl Frame {
    fn new(input: &Tensor<4>, output: &Tensor<4>) -> Self {
        let unit = |t: &Tensor<4>| t.clone().add_scalar(1.0).mul_scalar(0.5);
        Self { input: unit(input), output: unit(output), input_luma: flow::luma(input), output_luma: flow::luma(output) }
    }
}

impl ConsistencyMeter {
    pub fn push(&mut self, input: &Tensor<4>, output: &Tensor<4>) {
        let next = Frame::new(input, output);
        if let Some(prev) = self.previous.take() {
            let forward = flow::estimate(&prev.input_luma, &next.input_luma);
            let backward = flow::estimate(&next.input_luma, &prev.input_luma);
            let mask = flow::consistent(&forward, &backward);
            self.warping += masked_error(&prev.output, &next.output, &forward, &mask);
            self.input_warping += masked_error(&prev.input, &next.input, &forward, &mask);
            let output_flow = flow::estimate(&prev.output_luma, &next.output_luma);
            self.tof += output_flow.sub(forward).square().sum_dim(1).sqrt().mean().into_scalar::<f32>() as f64;
            self.pairs += 1;
        }
        self.previous = Some(next);
    }

    /// The figures, averaged over the pairs (`None` for fewer than two frames).
    pub fn finish(&self) -> Option<Consistency> {
        (self.pairs > 0).then(|| {
            let n = self.pairs as f64;
            Consistency { pairs: self.pairs, warping_error: self.warping / n, input_warping_error: self.input_warping / n, tof: self.tof / n }
        })
    }
}

/// Σ mask · |current − warp(next, flow)|² / Σ mask (over all pixels where the mask is empty, as Lai et al.'s code does).
fn masked_error(current: &Tensor<4>, next: &Tensor<4>, forward: &Tensor<4>, mask: &Tensor<4>) -> f64 {
    let [_, _, h, w] = current.dims();
    let warped = flow::warp(next.clone(), forward.clone());
    let squared = current.clone().sub(warped).square().sum_dim(1);
    let covered = mask.clone().sum().into_scalar::<f32>() as f64;
    let total = squared.mul(mask.clone()).sum().into_scalar::<f32>() as f64;
    total / if covered > 0.0 { covered } else { (h * w) as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn frame(dx: f32, offset: f32) -> Tensor<4> {
        let (h, w) = (48, 64);
        let v: Vec<f32> = crate::video::flow::tests::texture(h, w, dx, 0.0).into_iter().map(|x| x * 2.0 - 1.0 + offset).collect();
        Tensor::from_data(TensorData::new(v, [1, 1, h, w]), &Device::flex())
    }

    #[test]
    fn a_steady_translation_scores_like_its_input_and_flicker_raises_it() {
        let mut steady = ConsistencyMeter::default();
        let mut flicker = ConsistencyMeter::default();
        for t in 0..4 {
            let input = frame(0.8 * t as f32, 0.0);
            steady.push(&input, &input.clone().mul_scalar(-1.0));
            let sign = if t % 2 == 0 { 1.0 } else { -1.0 };
            flicker.push(&input, &frame(0.8 * t as f32, 0.1 * sign));
        }
        let steady = steady.finish().unwrap();
        let flicker = flicker.finish().unwrap();
        assert_eq!(steady.pairs, 3);
        // A negated frame warps exactly as the frame does.
        assert!((steady.warping_error - steady.input_warping_error).abs() < 1e-7, "{steady:?}");
        assert!(steady.input_warping_error < 1e-4, "{steady:?}");
        // An offset of 0.1 in [-1, 1] flipping sign: 0.1 in [0, 1], squared.
        assert!((flicker.warping_error - 0.01).abs() < 2e-3, "{flicker:?}");
        assert!(steady.tof < 0.1, "{steady:?}");
    }
}
