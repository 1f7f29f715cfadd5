//! The Bernoulli likelihood's negative log, fused and composed.

use burn::backend::Dispatch;
use burn::tensor::Tensor;
use burn::tensor::activation::log_sigmoid;

use super::{FusedOps, levers};
use crate::flex;

/// Bernoulli negative log-likelihood with logits, summed over pixels, per sample:
/// `sum_j softplus(l_j) - x_j l_j` (equal to `(1 - x) l - log sigmoid(l)`).
///
/// # Shapes
///   logits, x `[batch, pixels]` -> `[batch]`
pub fn bernoulli_nll(logits: Tensor<2>, x: Tensor<2>) -> Tensor<1> {
    if levers().nll && flex::on_flex(&logits) && flex::on_flex(&x) {
        let out = Dispatch::bernoulli_nll(logits.into_dispatch(), x.into_dispatch());
        Tensor::from_dispatch(out)
    } else {
        bernoulli_nll_composed(logits, x)
    }
}

/// The same quantity from burn's tensor operations (every backend).
pub fn bernoulli_nll_composed(logits: Tensor<2>, x: Tensor<2>) -> Tensor<1> {
    let one_minus_x = x.neg().add_scalar(1.0);
    (logits.clone() * one_minus_x - log_sigmoid(logits))
        .sum_dim(1)
        .squeeze_dim(1)
}
