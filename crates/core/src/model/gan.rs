//! The GAN with the old-generator regulariser (seeds/004): an MLP generator G(z) from the
//! prior and a discriminator D(x). The discriminator minimises `-log D(x) - log(1 - D(G(z)))`;
//! the generator minimises `-log D(G(z)) + lambda * mean |G(z) - G_old(z)|^2`, where G_old is
//! the generator as it was at the start of this generator phase (the seed's q^o). With one
//! generator step per phase G = G_old at that step, so the term and its gradient are zero.

use burn::module::Module;
use burn::tensor::Tensor;

use super::adversarial::{
    Adversarial, AliLoss, Discriminator, GeneratorTerms, generator_loss, old_generator_penalty,
};
use super::nets::Decoder;
use crate::fused::Activation;

/// The GAN's weights.
#[derive(Module, Debug)]
pub struct Gan {
    /// G(z): logits per pixel from a prior draw.
    pub generator: Decoder,
    /// D(x) on images.
    pub disc: Discriminator,
}

impl Gan {
    /// Generated images in `[0, 1]`.
    ///
    /// # Shapes
    ///   z `[batch, latent]` -> `[batch, pixels]`
    pub fn generate(&self, z: Tensor<2>) -> Tensor<2> {
        self.generator.forward_with(z, Activation::Sigmoid)
    }

    /// The generator's loss terms at `z`: the adversarial `-log D(G(z))` and the unweighted
    /// regulariser against `old`, the old generator's output for the same z.
    pub fn generator_terms(&self, z: Tensor<2>, old: Tensor<2>) -> (Tensor<1>, Tensor<1>) {
        let g = self.generate(z);
        let adversarial = generator_loss(self.disc.logits(g.clone()));
        (adversarial, old_generator_penalty(g, old.detach()))
    }

    /// The terms on a generator phase's first step, where G_old is G itself: the regulariser
    /// is zero in value and gradient, so G_old's forward pass is not taken.
    fn first_generator_terms(&self, z: Tensor<2>) -> (Tensor<1>, Tensor<1>) {
        let g = self.generate(z);
        let adversarial = generator_loss(self.disc.logits(g));
        let zero = Tensor::zeros([1], &adversarial.device());
        (adversarial, zero)
    }
}

impl Adversarial for Gan {
    fn real_and_fake_logits(&self, x: Tensor<2>, z: Tensor<2>) -> Tensor<1> {
        // Only the discriminator learns from these: the generator runs untracked, so autodiff
        // keeps no graph of it.
        let fake = self
            .generator
            .clone()
            .no_grad()
            .forward_with(z, Activation::Sigmoid);
        self.disc.grouped_logits(Tensor::cat(vec![x, fake], 0), 2)
    }

    /// `-log D(G(z)) + lambda |G(z) - G_old(z)|^2`.
    fn generator_terms(
        &self,
        _x: Tensor<2>,
        z: Tensor<2>,
        old: Option<&dyn Adversarial>,
        lambda: f32,
        _form: AliLoss,
    ) -> GeneratorTerms {
        let (adversarial, penalty) = match old {
            Some(old) => self.generator_terms(z.clone(), old.generated(z)),
            None => self.first_generator_terms(z),
        };
        GeneratorTerms {
            loss: adversarial.clone() + penalty.clone() * lambda,
            adversarial,
            extra: penalty,
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
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::tensor::Device;

    /// Sum of |gradient| over the generator's output layer.
    fn grad_size(gan: &Gan, loss: Tensor<1>) -> f32 {
        let mut grads = loss.backward();
        let weight = gan.generator.output.weight.val();
        let g = weight.grad_remove(&mut grads);
        g.map_or(0.0, |g| to_vec(g.abs().sum())[0])
    }

    #[test]
    fn the_regulariser_is_zero_with_zero_gradient_on_a_phases_first_step_only() {
        // With and without batch normalisation in the generator (batch statistics: G_old's
        // batch is the same as G's, so the first step's term is still exactly zero).
        for normalised in [false, true] {
            regulariser_on_a_phases_steps(normalised);
        }
    }

    fn regulariser_on_a_phases_steps(normalised: bool) {
        let device = Device::flex().autodiff();
        device.seed(2);
        let nets = VaeConfig::new(12).with_hidden(vec![8]);
        let mut gan = Gan {
            generator: match normalised {
                true => nets.normalised_generator(&device),
                false => nets.generator(&device),
            },
            disc: DiscriminatorConfig::new(12)
                .with_hidden(vec![8])
                .with_spectral_norm(normalised)
                .init(&device),
        };
        let mut optim = AdamConfig::new().with_beta_1(0.5).init();
        let mut rng = Rng::new(3);
        // The phase starts: G_old is the generator now.
        let old_gan = gan.clone();
        for step in 0..2 {
            let z = to_tensor(rng.normals(16 * 2), 16, 2, &device);
            let old = old_gan.generate(z.clone()).detach();
            let (adversarial, penalty) = gan.generator_terms(z.clone(), old.clone());
            let value = to_vec(penalty.clone())[0];
            let grad = grad_size(&gan, gan.generator_terms(z, old).1 * 5.0);
            if step == 0 {
                assert_eq!(value, 0.0, "first step: G = G_old ({normalised})");
                assert_eq!(grad, 0.0, "first step: no gradient from the regulariser");
            } else {
                assert!(value > 0.0, "second step: the generator has moved");
                assert!(grad > 0.0, "second step: the regulariser pulls back");
            }
            let loss = adversarial + penalty * 5.0;
            let mut grads = loss.backward();
            let params = GradientsParams::from_module(&mut grads, &gan.generator);
            gan = optim.step(1e-2, gan, params);
        }
    }
}
