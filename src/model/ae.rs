//! The plain autoencoder (seeds/003), the baseline: a deterministic encoder maps each image to
//! one point, the decoder maps it back, and the loss is the reconstruction alone. It has no
//! prior, so sampling "from the prior" decodes N(0, T^2 I) points the model never trained on;
//! that is the contrast the VAE exists for.
//!
//! It reuses the VAE's layers and leaves the log-variance head unused.

use burn::module::Module;
use burn::tensor::Tensor;

use super::{Likelihood, Vae};

/// The autoencoder's weights.
#[derive(Module, Debug)]
pub struct Ae {
    /// Encoder (its `mu` head gives the code), decoder and output layer.
    pub base: Vae,
}

impl Ae {
    /// The code of each image.
    ///
    /// # Shapes
    ///   x `[batch, pixels]` -> `[batch, latent]`
    pub fn encode(&self, x: Tensor<2>) -> Tensor<2> {
        self.base.encode(x).0
    }

    /// Reconstruction term `-log p(x|z)` with `z` the code, per sample.
    ///
    /// # Shapes
    ///   x `[batch, pixels]` -> (`[batch]`, codes `[batch, latent]`)
    pub fn forward(&self, x: Tensor<2>, likelihood: Likelihood) -> (Tensor<1>, Tensor<2>) {
        let z = self.encode(x.clone());
        (likelihood.nll(self.base.decode(z.clone()), x), z)
    }
}

impl super::Family for Ae {
    fn base(&self) -> &Vae {
        &self.base
    }

    fn terms(
        &self,
        x: Tensor<2>,
        _onehot: Option<Tensor<2>>,
        _eps: Tensor<2>,
        likelihood: Likelihood,
    ) -> super::Terms {
        super::Terms {
            reconstruction: self.forward(x, likelihood).0,
            kl: None,
            kl_per_dim: None,
        }
    }

    fn posteriors(&self, x: Tensor<2>) -> super::Posteriors {
        super::family::code_posteriors(&self.base, x)
    }
}
