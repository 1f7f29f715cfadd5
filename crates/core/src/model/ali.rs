//! ALI / BiGAN (seeds/004): an encoder E and a generator G, and a joint discriminator
//! D(x, z) telling encoder pairs `(x, E(x))` from generator pairs `(G(z), z)`. The
//! discriminator minimises `-log D(x, E(x)) - log(1 - D(G(z), z))`; the encoder and generator
//! minimise either the seed's derived loss or the standard minimax form ([`AliLoss`]).

use burn::module::Module;
use burn::tensor::Tensor;

use super::adversarial::{Adversarial, AliLoss, Discriminator, GeneratorTerms};
use super::nets::{Decoder, Encoder};
use crate::fused::Activation;

/// ALI's weights.
#[derive(Module, Debug)]
pub struct Ali {
    /// E(x): the code of each image, or a Gaussian posterior q(z|x) whose draws make the
    /// encoder pairs.
    pub encoder: Encoder,
    /// G(z): logits per pixel from a prior draw.
    pub decoder: Decoder,
    /// D(x, z) on concatenated image and latent point.
    pub disc: Discriminator,
}

impl Ali {
    /// The code of each image (the posterior mean for a Gaussian encoder).
    pub fn encode(&self, x: Tensor<2>) -> Tensor<2> {
        self.encoder.mean(x)
    }

    /// Generated images in `[0, 1]`.
    pub fn generate(&self, z: Tensor<2>) -> Tensor<2> {
        self.decoder.forward_with(z, Activation::Sigmoid)
    }

    /// The discriminator's logits on `(x, z)` pairs.
    pub fn joint_logits(&self, x: Tensor<2>, z: Tensor<2>) -> Tensor<1> {
        self.disc.logits(Tensor::cat(vec![x, z], 1))
    }

    /// [`Ali::joint_logits`] on encoder pairs then generator pairs, two equal groups.
    fn paired_logits(&self, x: Tensor<2>, z: Tensor<2>) -> Tensor<1> {
        self.disc.grouped_logits(Tensor::cat(vec![x, z], 1), 2)
    }

    /// The encoder/generator loss of the chosen form at images `x` and prior draws `z`.
    pub fn encoder_generator_loss(&self, x: Tensor<2>, z: Tensor<2>, form: AliLoss) -> Tensor<1> {
        let encoder_pairs = self.joint_logits(x.clone(), self.encoder.sample(x));
        let generator_pairs = self.joint_logits(self.generate(z.clone()), z);
        form.loss(encoder_pairs, generator_pairs)
    }
}

impl Adversarial for Ali {
    /// Encoder pairs `(x, E(x))` are the real rows, generator pairs `(G(z), z)` the others.
    fn real_and_fake_logits(&self, x: Tensor<2>, z: Tensor<2>) -> Tensor<1> {
        self.paired_logits(
            Tensor::cat(vec![x.clone(), self.generate(z.clone()).detach()], 0),
            Tensor::cat(vec![self.encoder.sample(x).detach(), z], 0),
        )
    }

    /// The chosen loss form; the reconstruction `|x - G(E(x))|^2` is reported, not trained.
    fn generator_terms(
        &self,
        x: Tensor<2>,
        z: Tensor<2>,
        _old: Option<&dyn Adversarial>,
        _lambda: f32,
        form: AliLoss,
    ) -> GeneratorTerms {
        let loss = self.encoder_generator_loss(x.clone(), z, form);
        let code = self.encode(x.clone());
        let rec = (self.generate(code) - x).square().sum_dim(1).mean();
        GeneratorTerms {
            adversarial: loss.clone(),
            extra: rec.reshape([1]).detach(),
            loss,
        }
    }

    fn generated(&self, z: Tensor<2>) -> Tensor<2> {
        self.generate(z)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::batch::{to_tensor, to_vec};
    use crate::model::VaeConfig;
    use crate::model::adversarial::DiscriminatorConfig;
    use crate::rng::Rng;
    use burn::tensor::Device;

    #[test]
    fn the_loss_form_changes_the_generators_gradient() {
        let device = Device::flex().autodiff();
        device.seed(4);
        let (encoder, decoder) = VaeConfig::new(12).with_hidden(vec![8]).point(&device);
        let ali = Ali {
            encoder: Encoder::Point(encoder),
            decoder,
            disc: DiscriminatorConfig::new(14)
                .with_hidden(vec![8])
                .init(&device),
        };
        let mut rng = Rng::new(5);
        let x: Vec<f32> = (0..8 * 12).map(|_| rng.uniform()).collect();
        let x = to_tensor(x, 8, 12, &device);
        let z = to_tensor(rng.normals(8 * 2), 8, 2, &device);
        let grad = |form: AliLoss| {
            let mut grads = ali
                .encoder_generator_loss(x.clone(), z.clone(), form)
                .backward();
            let g = ali
                .decoder
                .output
                .weight
                .val()
                .grad_remove(&mut grads)
                .unwrap();
            to_vec(g)
        };
        let (derived, minimax) = (grad(AliLoss::Derived), grad(AliLoss::Minimax));
        let diff: f32 = derived
            .iter()
            .zip(&minimax)
            .map(|(a, b)| (a - b).abs())
            .sum();
        let size: f32 = derived.iter().map(|a| a.abs()).sum();
        assert!(
            size > 0.0 && diff > 1e-3 * size,
            "gradients differ by {diff} of {size}"
        );
    }
}
