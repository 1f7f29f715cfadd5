//! Models. Each family is one file; the losses they share live in [`losses`], and
//! [`family::Model`] is the one interface the rest of the program uses.

pub mod aae;
pub mod adversarial;
pub mod ae;
pub mod ali;
pub mod bn_vae;
pub mod conv;
pub mod cvae;
pub mod f_vae;
pub mod family;
pub mod flow;
pub mod gan;
pub mod losses;
pub mod nets;
pub mod posteriors;
pub mod vae;

pub use aae::Aae;
pub use ae::Ae;
pub use ali::Ali;
pub use bn_vae::BnVae;
pub use conv::{Arch, ImageShape};
pub use cvae::Cvae;
pub use f_vae::FVae;
pub use family::{Family, Model, Terms};
pub use gan::Gan;
pub use posteriors::Posteriors;
pub use vae::{Likelihood, Vae, VaeConfig, VaeForward};
