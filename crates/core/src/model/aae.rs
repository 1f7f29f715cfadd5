//! The adversarial autoencoder (seeds/004): a deterministic encoder E, a decoder G, and a
//! discriminator on the latent space telling prior samples from codes. The discriminator
//! minimises `-log D(z_prior) - log(1 - D(E(x)))`; the encoder and decoder minimise
//! `-log D(E(x)) + lambda |x - G(E(x))|^2`.

use burn::module::Module;
use burn::tensor::Tensor;

use super::adversarial::{Adversarial, AliLoss, Discriminator, GeneratorTerms, neg_log_d};
use super::nets::{Decoder, PointEncoder};
use crate::fused::Activation;

/// The AAE's weights.
#[derive(Module, Debug)]
pub struct Aae {
    /// E(x): the code of each image.
    pub encoder: PointEncoder,
    /// G(z): logits per pixel from a latent point.
    pub decoder: Decoder,
    /// D(z) on latent points.
    pub disc: Discriminator,
}

impl Aae {
    /// The code of each image.
    pub fn encode(&self, x: Tensor<2>) -> Tensor<2> {
        self.encoder.forward(x)
    }

    /// The encoder/decoder terms: adversarial `E[-log D(E(x))]` and the squared
    /// reconstruction error `E |x - G(E(x))|^2` (summed over pixels).
    pub fn autoencoder_terms(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<1>) {
        let code = self.encode(x.clone());
        let adversarial = neg_log_d(self.disc.logits(code.clone())).mean();
        let rec = self.decoder.forward_with(code, Activation::Sigmoid) - x;
        (adversarial, rec.square().sum_dim(1).mean().reshape([1]))
    }
}

impl Adversarial for Aae {
    /// Prior draws are the real rows, codes the generated ones.
    fn real_and_fake_logits(&self, x: Tensor<2>, z: Tensor<2>) -> Tensor<1> {
        self.disc
            .grouped_logits(Tensor::cat(vec![z, self.encode(x).detach()], 0), 2)
    }

    /// `-log D(E(x)) + lambda |x - G(E(x))|^2`.
    fn generator_terms(
        &self,
        x: Tensor<2>,
        _z: Tensor<2>,
        _old: Option<&dyn Adversarial>,
        lambda: f32,
        _form: AliLoss,
    ) -> GeneratorTerms {
        let (adversarial, rec) = self.autoencoder_terms(x);
        GeneratorTerms {
            loss: adversarial.clone() + rec.clone() * lambda,
            adversarial,
            extra: rec,
        }
    }

    fn generated(&self, z: Tensor<2>) -> Tensor<2> {
        self.decoder.forward_with(z, Activation::Sigmoid)
    }
}
