//! Fused CPU kernels that burn lets a project plug in: burn stays the engine (modules,
//! autodiff, devices), and these replace chains of element-wise passes on the flex backend
//! with one pass each. Every kernel has a composed fallback for the other backends and a
//! test against burn's own composition.
//!
//! - [`FusedAdam`]: the optimiser, through burn's `Optimizer` hook.
//! - [`bernoulli_nll`] and [`linear`] (a dense layer with its bias and ReLU): forward and
//!   backward kernels through burn's backend extension mechanism (`ops.rs`), the products
//!   calling the same `gemm` crate flex uses, with the threads split by output rows.

mod adam;
mod flex;
mod math;
mod ops;

pub use adam::FusedAdam;
pub use ops::{
    Activation, FusedOps, Levers, bernoulli_nll, bernoulli_nll_composed, levers, linear,
    linear_dropout,
};
