//! Geometry and decoding for exploring a latent space: a plain-data copy of the decoder that
//! decodes without the training thread, the inverse-CDF manifold grid, interpolation paths
//! and ellipse outlines. Plain data in, plain data out.

pub mod coverage;
pub mod decoder;
pub mod flow;
pub mod geometry;
pub mod projection;

pub use decoder::{Dense, PlainConvT, PlainDecoder, PlainGroupNorm, PlainUp};
pub use flow::{PlainCoupling, PlainFlow};
