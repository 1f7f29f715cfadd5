//! Fused operations with hand-written gradients, as a burn backend extension: implemented for
//! the flex backend, and for burn's autodiff decorator over it (forward on the inner backend,
//! backward through the `_backward` kernels). The public functions take ordinary tensors and
//! route to the fused kernel only for flex `f32` tensors; anything else gets the same value
//! from composed tensor operations, so every backend stays supported.
//!
//! The kernels on flex are in `on_flex`, their backward passes under autodiff in `autodiff`,
//! the tensor API the models call in `api`, the switches that turn kernels off in `levers`,
//! and the Bernoulli loss in `loss`.

mod api;
mod autodiff;
mod levers;
mod loss;
mod on_flex;
#[cfg(test)]
mod tests;

pub use api::*;
pub use levers::{Levers, levers, with_levers};
pub use loss::{bernoulli_nll, bernoulli_nll_composed};

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, backend_extension};

use crate::conv::ConvGeom;
pub use crate::math::Curve;

/// The extension's kernels.
#[backend_extension(Flex, Autodiff)]
pub trait FusedOps: Backend {
    /// Bernoulli negative log-likelihood with logits, summed over each row:
    /// `sum_j softplus(l_ij) - x_ij l_ij`, `[rows, cols]` -> `[rows]`.
    fn bernoulli_nll(logits: FloatTensor<Self>, x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Its gradient with respect to the logits for an upstream gradient `grad` `[rows]`:
    /// `(sigmoid(l_ij) - x_ij) grad_i`, `[rows, cols]`.
    fn bernoulli_nll_backward(
        logits: FloatTensor<Self>,
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// A dense layer `drop(act(x w + b))`, `x` `[rows, in]`, `w` `[in, out]`, `b` `[out]`:
    /// `act` is the sigmoid or tanh by `curve`, otherwise `v` for `v > 0` and `slope v`
    /// elsewhere (0: ReLU, 1: none, 0.2: leaky ReLU); `drop` keeps each output with
    /// probability `keep`, scaled by `1 / keep`, from a hash of `seed` and its position.
    fn dense(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        curve: Curve,
        slope: f32,
        keep: f32,
        seed: u32,
    ) -> FloatTensor<Self>;

    /// The layer's gradient at the pre-activation, from its output `y` alone.
    fn activation_backward(
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        curve: Curve,
        slope: f32,
        keep: f32,
    ) -> FloatTensor<Self>;

    /// `op(a) op(b)` with `op` the transpose where asked (a view, never a copy).
    fn gemm(
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        transpose_a: bool,
        transpose_b: bool,
    ) -> FloatTensor<Self>;

    /// A convolution of channels-last images (`conv::down`): `x` `[batch, big]`, `weight`
    /// `[small c, big c, kh, kw]`, `bias` `[small c]` (added only with `add_bias`; any tensor
    /// otherwise), then the activation with `slope` (1: none) -> `[batch, small]`.
    fn conv_down(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        add_bias: bool,
        geom: ConvGeom,
        slope: f32,
    ) -> FloatTensor<Self>;

    /// A transposed convolution (`conv::up`): `x` `[batch, small]`, `weight`
    /// `[small c, big c, kh, kw]`, `bias` `[big c]` (added only with `add_bias`) ->
    /// `[batch, big]`.
    fn conv_up(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        add_bias: bool,
        geom: ConvGeom,
    ) -> FloatTensor<Self>;

    /// The weights' gradient of either layer, `[small c, big c, kh, kw]`, from the big side
    /// `[batch, big]` and the small side `[batch, small]` (one of them the upstream gradient).
    fn conv_weight_grad(
        big: FloatTensor<Self>,
        small: FloatTensor<Self>,
        geom: ConvGeom,
    ) -> FloatTensor<Self>;

    /// Group norm of channels-last images with an affine map and the activation with `slope`:
    /// `x` `[batch, pixels * c]`, `gamma` and `beta` `[c]`.
    fn group_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        eps: f32,
        slope: f32,
    ) -> FloatTensor<Self>;

    /// Its gradients for `x`, `gamma` and `beta`, from the input, the output and the upstream
    /// gradient.
    fn group_norm_backward(
        x: FloatTensor<Self>,
        y: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        groups: usize,
        eps: f32,
        slope: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// Per-column mean and biased variance of `x` `[rows, cols]`, `[cols]` each: a batch
    /// norm's statistics. Not differentiable.
    fn column_moments(x: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// One step of power iteration towards the largest singular value of `weight`
    /// `[in, out]` from `u` `[out]` (unit length): `v = W u / |W u|` `[in]`,
    /// `u' = W^T v / |W^T v|` `[out]` and `sigma = v^T W u'` `[1]`. Not differentiable.
    fn power_iteration(
        weight: FloatTensor<Self>,
        u: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// `W / sigma` for `sigma` `[1]` from [`FusedOps::power_iteration`], differentiated as
    /// `sigma = v^T W u` with `v` and `u` held (Miyato et al.'s gradient).
    fn spectral_scale(
        weight: FloatTensor<Self>,
        v: FloatTensor<Self>,
        u: FloatTensor<Self>,
        sigma: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// Its gradient for the upstream gradient `G`: `(G - <G, W> / sigma v u^T) / sigma`.
    fn spectral_scale_backward(
        weight: FloatTensor<Self>,
        v: FloatTensor<Self>,
        u: FloatTensor<Self>,
        sigma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}
