//! The PatchNCE loss of CUT (Park et al. 2020, eq. 2; the official
//! `models/patchnce.py`): each query patch of the translation should pick
//! its own input patch (the positive) out of the other patches of the same
//! image (the negatives), as a classification over the dot products divided
//! by the temperature.
//!
//! Rows `i` of `q` and `k` are the same position in translation and input.
//! The rows are grouped by image: the negatives of a row are the keys of
//! its group, the row's own key left out by setting its logit to -10
//! (exp(-10 / T) is nothing next to the rest), as the official code does.
//! With `--nce-includes-all-negatives-from-minibatch` the whole batch is one group.

use burn::tensor::{Bool, Tensor, TensorData};

/// The official mask value for a patch's own key among its negatives.
const SELF_LOGIT: f32 = -10.0;

/// Per-row loss `[rows]` of queries `q` against keys `k` (`[rows, dim]`,
/// unit rows; `k` is taken as a constant), in `groups` equal groups.
pub fn patch_nce(q: Tensor<2>, k: Tensor<2>, groups: usize, temperature: f64) -> Tensor<1> {
    let k = k.detach();
    let [rows, dim] = q.dims();
    assert!(groups > 0 && rows % groups == 0, "{rows} rows in {groups} groups");
    let per = rows / groups;
    let positive = (q.clone() * k.clone()).sum_dim(1); // [rows, 1]
    let negative = q.reshape([groups, per, dim]).matmul(k.reshape([groups, per, dim]).swap_dims(1, 2)); // [groups, per, per]
    let diagonal: Vec<bool> = (0..groups * per * per).map(|i| (i % (per * per)).is_multiple_of(per + 1)).collect();
    let mask = Tensor::<3, Bool>::from_data(TensorData::new(diagonal, [groups, per, per]), &negative.device());
    let negative = negative.mask_fill(mask, SELF_LOGIT).reshape([rows, per]);
    let logits = Tensor::cat(vec![positive, negative], 1) / temperature; // [rows, 1 + per]
    // cross-entropy with the positive (column 0) as the class: logsumexp - logit_0
    let top = logits.clone().max_dim(1).detach();
    let logsumexp = (logits.clone() - top.clone()).exp().sum_dim(1).log() + top;
    (logsumexp - logits.narrow(1, 0, 1)).reshape([rows])
}
