//! Fused CPU kernels that burn lets a project plug in: burn stays the engine (modules,
//! autodiff, devices), and these replace chains of element-wise passes on the flex backend
//! with one pass each. Every kernel has a composed fallback for the other backends and a
//! test against burn's own composition.
//!
//! - [`FusedAdam`]: the optimiser, through burn's `Optimizer` hook.
//! - [`bernoulli_nll`] and [`linear`] (a dense layer with its bias and ReLU): forward and
//!   backward kernels through burn's backend extension mechanism (`ops.rs`), the products
//!   calling the same `gemm` crate flex uses, with the threads split by output rows.
//! - [`conv2d`], [`conv_transpose2d`] and [`group_norm`] (with its activation): the
//!   convolutional stages on images kept channels-last, forward and backward (`conv.rs`).
//! - [`batch_norm`] (with its activation) while training: group norm's kernels on the batch
//!   as one image of one-channel groups.

mod adam;
mod conv;
mod flex;
mod gemm;
#[cfg(feature = "wgpu")]
pub mod gpu;
mod math;
mod ops;

pub use adam::FusedAdam;
pub use conv::ConvGeom;
pub use ops::{
    Activation, FusedOps, Levers, batch_norm, bernoulli_nll, bernoulli_nll_composed, conv_fusable,
    conv_transpose2d, conv2d, dense_with, group_norm, levers, linear, linear_dropout,
    spectral_normalise, with_levers,
};

/// Reads a tensor back as row-major floats.
pub fn to_vec<const D: usize>(tensor: burn::tensor::Tensor<D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default()
}
