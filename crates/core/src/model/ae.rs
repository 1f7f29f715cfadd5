//! The plain autoencoder (seeds/003), the baseline: a deterministic encoder maps each image to
//! one point, the decoder maps it back, and the loss is the reconstruction alone. It has no
//! prior, so sampling "from the prior" decodes N(0, T^2 I) points the model never trained on;
//! that is the contrast the VAE exists for.
//!
use burn::module::Module;
use burn::tensor::Tensor;

use super::Likelihood;
use super::nets::{Decoder, PointEncoder};

/// The autoencoder's weights.
#[derive(Module, Debug)]
pub struct Ae {
    /// The code of each image.
    pub encoder: PointEncoder,
    /// Logits per pixel from a code.
    pub decoder: Decoder,
}

impl Ae {
    /// The code of each image.
    ///
    /// # Shapes
    ///   x `[batch, pixels]` -> `[batch, latent]`
    pub fn encode(&self, x: Tensor<2>) -> Tensor<2> {
        self.encoder.forward(x)
    }

    /// Reconstruction term `-log p(x|z)` with `z` the code, per sample.
    ///
    /// # Shapes
    ///   x `[batch, pixels]` -> (`[batch]`, codes `[batch, latent]`)
    pub fn forward(&self, x: Tensor<2>, likelihood: Likelihood) -> (Tensor<1>, Tensor<2>) {
        let z = self.encode(x.clone());
        (likelihood.nll(self.decoder.forward(z.clone()), x), z)
    }
}

impl super::Family for Ae {
    fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    fn terms(
        &self,
        x: Tensor<2>,
        _onehot: Option<Tensor<2>>,
        _eps: Tensor<2>,
        likelihood: Likelihood,
    ) -> Option<super::Terms> {
        Some(super::Terms {
            reconstruction: self.forward(x, likelihood).0,
            kl: None,
            kl_per_dim: None,
        })
    }

    fn posteriors(&self, x: Tensor<2>) -> Option<super::Posteriors> {
        Some(super::Posteriors::of_codes(self.encode(x)))
    }
}
