//! Latent Atlas's engine: datasets ([`data`]), the model families ([`model`]), the training loop
//! ([`train`]), the evaluation classifier ([`evaluator`]), latent-space geometry and plain-data
//! decoding ([`explore`]), the device choice ([`backend`]), the training thread's driver
//! ([`worker`]), the file codecs ([`codec`], [`archive`], [`fsio`]), what it asks of the
//! platform ([`platform`]), and on the desktops the client side of training on another
//! machine (`remote`). It knows no window and no command line.

#![recursion_limit = "256"]

pub mod archive;
pub mod backend;
pub mod codec;
pub mod colour;
pub mod data;
pub mod evaluator;
pub mod explore;
pub mod fsio;
pub mod model;
pub mod platform;
#[cfg(not(target_arch = "wasm32"))]
pub mod remote;
pub mod rng;
pub mod train;
pub mod worker;

/// The fused CPU kernels (the `latent-atlas-kernels` crate).
pub use latent_atlas_kernels as fused;
