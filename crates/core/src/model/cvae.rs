//! The CVAE with learned class means (seeds/000, eq. 8): each class y owns a trainable mean
//! mu^y, and the KL term pulls a posterior towards its class mean instead of the origin:
//! `1/2 sum_i ((mu_i - mu^y_i)^2 + sigma_i^2 - log sigma_i^2 - 1)`. The decoder sees only z;
//! generating class y draws `z ~ N(mu^y, T^2 I)`.

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};

use super::losses;
use super::nets::Decoder;
use super::{Likelihood, Vae, VaeForward};

/// The CVAE's weights.
#[derive(Module, Debug)]
pub struct Cvae {
    /// Encoder, heads and decoder, as in the VAE.
    pub base: Vae,
    /// One mean per class, `[classes, latent]`.
    pub class_means: Param<Tensor<2>>,
}

impl Cvae {
    /// A CVAE around `base` with `classes` means drawn from `N(0, spread^2 I)`.
    pub fn new(base: Vae, classes: usize, latent_dim: usize, spread: f32, device: &Device) -> Self {
        let means = Tensor::random(
            [classes.max(1), latent_dim],
            Distribution::Normal(0.0, spread as f64),
            device,
        );
        Self {
            base,
            class_means: Param::from_tensor(means),
        }
    }

    /// The class mean of each sample, from one-hot labels.
    ///
    /// # Shapes
    ///   onehot `[batch, classes]` -> `[batch, latent]`
    pub fn means_of(&self, onehot: Tensor<2>) -> Tensor<2> {
        onehot.matmul(self.class_means.val())
    }

    /// One pass with the reparameterisation; the KL is to each sample's class mean.
    ///
    /// # Shapes
    ///   x `[batch, pixels]`, onehot `[batch, classes]`, eps `[batch, latent]`
    pub fn forward(
        &self,
        x: Tensor<2>,
        onehot: Tensor<2>,
        eps: Tensor<2>,
        likelihood: Likelihood,
    ) -> VaeForward {
        let (mu, logvar) = self.base.encode(x.clone());
        let z = mu.clone() + (logvar.clone() * 0.5).exp() * eps;
        VaeForward {
            reconstruction: likelihood.nll(self.base.decode(z), x),
            kl_per_dim: losses::kl_to_mean(mu.clone(), logvar.clone(), self.means_of(onehot)),
            mu,
            logvar,
        }
    }
}

impl super::Family for Cvae {
    fn decoder(&self) -> &Decoder {
        &self.base.decoder
    }

    fn terms(
        &self,
        x: Tensor<2>,
        onehot: Option<Tensor<2>>,
        eps: Tensor<2>,
        likelihood: Likelihood,
    ) -> Option<super::Terms> {
        let onehot = onehot.expect("the CVAE trains on labelled batches");
        Some(super::family::vae_terms(
            self.forward(x, onehot, eps, likelihood),
        ))
    }

    fn posteriors(&self, x: Tensor<2>) -> Option<super::Posteriors> {
        super::Family::posteriors(&self.base, x)
    }

    fn log_weights(
        &self,
        x: Tensor<2>,
        onehot: Option<Tensor<2>>,
        eps: Tensor<2>,
        likelihood: Likelihood,
    ) -> Option<Tensor<1>> {
        let posterior = self.base.encode(x.clone());
        let means = self.means_of(onehot.expect("the CVAE needs labels"));
        Some(super::family::gaussian_log_weights(
            &self.base.decoder,
            x,
            eps,
            likelihood,
            posterior,
            Some(means),
        ))
    }

    /// Class `class`'s mean (class 0 when none is given).
    fn prior_mode(&self, class: Option<usize>) -> Vec<f32> {
        let means = crate::data::batch::to_vec(self.class_means.val());
        let d = self.class_means.dims()[1];
        let c = class.unwrap_or(0).min(means.len() / d.max(1) - 1);
        means[c * d..(c + 1) * d].to_vec()
    }

    fn class_means(&self) -> Option<Vec<f32>> {
        Some(crate::data::batch::to_vec(self.class_means.val()))
    }

    fn class_means_param(&self) -> Option<&Param<Tensor<2>>> {
        Some(&self.class_means)
    }
}
