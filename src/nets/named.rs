//! Every tensor of a network under its official PyTorch `state_dict` key.
//!
//! This is the one table of official names: each network walks its own
//! layers in `visit_named` and says what the official code calls them. Saving,
//! loading, weight init and the optimiser all go through it, so a name cannot
//! drift between them.

use burn::module::{Param, RunningState};
use burn::tensor::{Tensor, TensorData};

/// What a one-dimensional tensor is for (weight init and checkpoint checks need to know).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotRole {
    /// A convolution's or linear layer's bias.
    Bias,
    NormWeight,
    NormBias,
}

/// A mutable view of one named tensor of a network.
pub enum Slot<'a> {
    /// A convolution kernel.
    Weight(&'a mut Param<Tensor<4>>),
    /// A linear layer's `[out, in]` matrix.
    Matrix(&'a mut Param<Tensor<2>>),
    /// A learned vector: a bias or a norm's scale or shift.
    Vector(&'a mut Param<Tensor<1>>, SlotRole),
    /// Batch norm's running mean or variance: state, not trained by the optimiser.
    Running(&'a mut RunningState<Tensor<1>>),
    /// Batch norm's `num_batches_tracked`: written for PyTorch's sake, never read
    /// (it only matters with `momentum=None`, which the official code does not use).
    Counter,
    /// A buffer the architecture fixes (the anti-aliasing filters): written
    /// with the network, and a file holding another value is refused.
    Fixed(TensorData),
}

impl Slot<'_> {
    /// The tensor's current value as plain data (f32, row-major).
    pub fn data(&self) -> TensorData {
        match self {
            Slot::Weight(p) => p.val().into_data(),
            Slot::Matrix(p) => p.val().into_data(),
            Slot::Vector(p, _) => p.val().into_data(),
            Slot::Running(r) => r.value_sync().into_data(),
            Slot::Counter => TensorData::new(vec![0i64], Vec::<usize>::new()),
            Slot::Fixed(data) => data.clone(),
        }
    }

    /// The shape this slot holds.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            Slot::Weight(p) => p.dims().to_vec(),
            Slot::Matrix(p) => p.dims().to_vec(),
            Slot::Vector(p, _) => p.dims().to_vec(),
            Slot::Running(r) => r.value_sync().dims().to_vec(),
            Slot::Counter => Vec::new(),
            Slot::Fixed(data) => data.shape().to_vec(),
        }
    }
}

/// A network that can list its tensors under official names.
pub trait NamedTensors {
    /// Call `f` with every tensor, in `state_dict` order, its key prefixed by `prefix`.
    fn visit_named(&mut self, prefix: &str, f: &mut dyn FnMut(String, Slot<'_>));
}
