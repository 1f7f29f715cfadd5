//! Models. Each family is one file; the losses they share live in [`losses`].

pub mod losses;
pub mod vae;

pub use vae::{Likelihood, Vae, VaeConfig};
