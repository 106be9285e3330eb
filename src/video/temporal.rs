//! Keeping translated frames steady over time: each output frame is blended
//! with the previous output where the previous output shows the same thing.
//!
//! A generator translates each frame on its own, so small changes of the
//! input (noise, a sub-pixel pan, compression) change its output more than
//! they change the picture: the video flickers. `flow` follows the input's
//! motion: it estimates the flow from the current input frame to the
//! previous one, warps the previous output along it, and blends it in where
//! the forward and backward flows agree and the warped previous input matches
//! the current one (so that occlusions, new content and moving objects'
//! edges come from the current frame alone, without ghosts). `ema` blends
//! without following motion.

use burn::tensor::Tensor;

use super::flow;

/// How a video's frames are kept steady (`--temporal`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Temporal {
    /// Frame by frame, as images.
    None,
    /// Blend the previous output in, everywhere (steady scenes only: moving things leave trails).
    Ema,
    /// Blend the previous output in along the input's optical flow, where it is consistent.
    Flow,
}

impl Temporal {
    /// The weight of the previous output (`--temporal-strength`).
    pub const DEFAULT_STRENGTH: f32 = 0.7;
}

/// Largest difference in any channel (in [0, 1]) between the current input
/// and the previous input warped along the flow for a pixel to be blended:
/// well above sensor noise, below the change a moving edge makes. Colour,
/// not brightness: an orange box over a grey of the same brightness passes
/// a brightness test and leaves an orange trail.
const MATCH_THRESHOLD: f32 = 0.06;

/// The state carried from one frame to the next.
pub struct Stabiliser {
    mode: Temporal,
    strength: f32,
    previous: Option<Previous>,
}

/// The previous frame: its input and output (`[1, C, H, W]` in [-1, 1]), and
/// the input's brightness for `flow` (computed once, used by the next frame).
struct Previous {
    input: Tensor<4>,
    brightness: Option<Tensor<4>>,
    output: Tensor<4>,
}

impl Stabiliser {
    pub fn new(mode: Temporal, strength: f32) -> Self {
        Self { mode, strength, previous: None }
    }

    /// The output for `input` (the frame as the network took it) and its
    /// per-frame translation; remembered for the next frame.
    pub fn next(&mut self, input: &Tensor<4>, translated: Tensor<4>) -> Tensor<4> {
        if self.mode == Temporal::None {
            return translated;
        }
        let brightness = (self.mode == Temporal::Flow).then(|| flow::luma(input));
        let out = match self.previous.take() {
            Some(prev) if prev.output.dims() == translated.dims() => {
                let (held, weight) = match (&brightness, &prev.brightness) {
                    (Some(brightness), Some(prev_brightness)) => {
                        let back = flow::estimate(brightness, prev_brightness);
                        let forward = flow::estimate(prev_brightness, brightness);
                        let mask = flow::consistent(&back, &forward).mul(matches(input, &prev.input, &back));
                        (flow::warp(prev.output, back), mask.mul_scalar(self.strength))
                    }
                    _ => (prev.output, Tensor::full([1, 1, 1, 1], self.strength, &translated.device())),
                };
                translated.clone().add(held.sub(translated).mul(weight))
            }
            _ => translated,
        };
        self.previous = Some(Previous { input: input.clone(), brightness, output: out.clone() });
        out
    }
}

/// 1 where the inputs `current` and `previous` warped along `back` (both in
/// [-1, 1]) differ by at most [`MATCH_THRESHOLD`] in every channel.
fn matches(current: &Tensor<4>, previous: &Tensor<4>, back: &Tensor<4>) -> Tensor<4> {
    let largest = flow::warp_linear(previous.clone(), back.clone()).sub(current.clone()).abs().max_dim(1);
    largest.lower_equal_elem(2.0 * MATCH_THRESHOLD).float()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn frame(values: Vec<f32>, h: usize, w: usize) -> Tensor<4> {
        Tensor::from_data(TensorData::new(values, [1, 1, h, w]), &Device::flex())
    }

    fn values(t: Tensor<4>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn none_passes_frames_through_and_ema_blends_by_the_strength() {
        let (h, w) = (4, 5);
        let input = frame(vec![0.0; h * w], h, w);
        let mut none = Stabiliser::new(Temporal::None, 0.7);
        let mut ema = Stabiliser::new(Temporal::Ema, 0.7);
        for (i, level) in [0.5f32, -0.5].into_iter().enumerate() {
            let translated = frame(vec![level; h * w], h, w);
            assert_eq!(values(none.next(&input, translated.clone())), vec![level; h * w]);
            let want = if i == 0 { 0.5 } else { -0.5 + 0.7 * (0.5 - -0.5) };
            for v in values(ema.next(&input, translated)) {
                assert!((v - want).abs() < 1e-6, "{v} vs {want}");
            }
        }
    }

    #[test]
    fn flow_follows_a_pan_and_leaves_a_changed_patch_alone() {
        let (h, w) = (48, 64);
        let texture = |dx| crate::video::flow::tests::texture(h, w, dx, 0.0);
        let to_signed = |v: Vec<f32>| v.into_iter().map(|x| x * 2.0 - 1.0).collect::<Vec<_>>();
        // Input pans right by 1.5 px; the "translation" is the input itself
        // plus a per-frame offset that flickers (+0.2, then -0.2).
        let first = frame(to_signed(texture(0.0)), h, w);
        let mut second_values = to_signed(texture(1.5));
        // A patch that changes between the frames (new content): not blended.
        for y in 20..30 {
            for x in 30..40 {
                second_values[y * w + x] = 0.9;
            }
        }
        let second = frame(second_values, h, w);
        let mut flow = Stabiliser::new(Temporal::Flow, 0.7);
        flow.next(&first, first.clone().add_scalar(0.2));
        let out = flow.next(&second, second.clone().sub_scalar(0.2));
        let diff = values(out.sub(second));
        // Inside the textured, consistent area the previous output (+0.2,
        // moved with the pan) is blended in: -0.2 + 0.7 * 0.4 = 0.08.
        let (y, x) = (10, 15);
        assert!((diff[y * w + x] - 0.08).abs() < 0.01, "blended pixel: {}", diff[y * w + x]);
        // Inside the changed patch the current frame's translation stays.
        let (y, x) = (25, 35);
        assert!((diff[y * w + x] + 0.2).abs() < 1e-5, "changed pixel: {}", diff[y * w + x]);
    }
}
