//! Anti-aliased resampling, as the CUT code builds its generators and
//! discriminators (Zhang, "Making Convolutional Networks Shift-Invariant
//! Again", ICML 2019; the official `Downsample` and `Upsample`):
//!
//! - [`BlurDown`]: reflection pad by 1, then the 3x3 binomial filter
//!   `[1, 2, 1]^T [1, 2, 1] / 16` on every channel with stride 2; it follows a
//!   stride-1 convolution where the CycleGAN networks have a stride-2 one;
//! - [`BlurUp`]: replication pad by 1, a stride-2 transposed convolution with
//!   `[1, 3, 3, 1]^T [1, 3, 3, 1] / 16`, cropped to twice the input; it comes
//!   before a 3x3 convolution where CycleGAN has a transposed one.
//!
//! The filters are fixed: the official code keeps them as `filt` buffers
//! (one copy per channel, `[C, 1, k, k]`) in its checkpoints, so they are
//! written and checked under that key, never trained.

use burn::module::Module;
use burn::tensor::{Tensor, TensorData};

use super::named::{NamedTensors, Slot};
use super::key;
use crate::ops;

/// 1-D binomial taps scaled to sum to `gain`; the 2-D filter is their outer product.
fn binomial<const K: usize>(taps: [f32; K], gain: f32) -> [f32; K] {
    let sum: f32 = taps.iter().sum();
    taps.map(|t| t * gain / sum)
}

/// `[1, 2, 1] / 4` on each axis.
fn down_taps() -> [f32; 3] {
    binomial([1.0, 2.0, 1.0], 1.0)
}

/// `[1, 3, 3, 1] / 8` scaled by the stride on each axis: each output gets half of a side's taps.
fn up_taps() -> [f32; 4] {
    binomial([1.0, 3.0, 3.0, 1.0], 2.0)
}

/// The official `filt` buffer: the kernel repeated for every channel.
fn filt_buffer(kernel: &[f32], k: usize, channels: usize) -> TensorData {
    TensorData::new(kernel.repeat(channels), [channels, 1, k, k])
}

/// Blur, then keep every second pixel.
#[derive(Module, Debug)]
pub struct BlurDown {
    pub channels: usize,
}

impl BlurDown {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        ops::blur_down(x, down_taps())
    }

    /// The official `filt` buffer, `[C, 1, 3, 3]`.
    pub fn filter(&self) -> TensorData {
        filt_buffer(&ops::blur_filter(&down_taps()), 3, self.channels)
    }
}

impl NamedTensors for BlurDown {
    fn visit_named(&mut self, prefix: &str, f: &mut dyn FnMut(String, Slot<'_>)) {
        f(key(prefix, "filt"), Slot::Fixed(self.filter()));
    }
}

/// Twice the size, interpolated with the blur.
#[derive(Module, Debug)]
pub struct BlurUp {
    pub channels: usize,
}

impl BlurUp {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        ops::blur_up(x, up_taps())
    }

    /// The official `filt` buffer, `[C, 1, 4, 4]`.
    pub fn filter(&self) -> TensorData {
        filt_buffer(&ops::blur_filter(&up_taps()), 4, self.channels)
    }
}

impl NamedTensors for BlurUp {
    fn visit_named(&mut self, prefix: &str, f: &mut dyn FnMut(String, Slot<'_>)) {
        f(key(prefix, "filt"), Slot::Fixed(self.filter()));
    }
}
