//! The MLP variational autoencoder (Kingma & Welling 2014): a Gaussian posterior
//! `q(z|x) = N(mu(x), diag exp(logvar(x)))`, the prior `N(0, I)`, and a Bernoulli or Gaussian
//! decoder. Encoder and decoder are mirror-image MLPs with ReLU.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::losses;
use crate::fused::{Activation, linear};

/// The decoder's likelihood `p(x|z)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Likelihood {
    /// Bernoulli with probability `sigmoid(logits)`: binary cross-entropy. Grey levels in
    /// `[0, 1]` are allowed as targets.
    Bernoulli,
    /// Gaussian around `sigmoid(logits)` with a fixed standard deviation.
    Gaussian {
        /// The standard deviation, in grey-level units of `[0, 1]`.
        sigma: f32,
    },
    /// Gaussian around `sigmoid(logits)` whose standard deviation is trained with the model
    /// (the f-VAE's sigma2, seeds/002). Only the f-VAE has that parameter.
    GaussianTrained,
}

impl Likelihood {
    /// `-log p(x|z)` per sample, summed over pixels. [`Likelihood::GaussianTrained`] needs the
    /// model's sigma and is computed by the f-VAE itself; here it falls back to sigma = 1
    /// (settings validation keeps it to the f-VAE).
    ///
    /// # Shapes
    ///   logits, x `[batch, pixels]` -> `[batch]`
    pub fn nll(self, logits: Tensor<2>, x: Tensor<2>) -> Tensor<1> {
        match self {
            Likelihood::Bernoulli => losses::bernoulli_nll(logits, x),
            Likelihood::Gaussian { sigma } => losses::gaussian_nll(logits, x, sigma),
            Likelihood::GaussianTrained => losses::gaussian_nll(logits, x, 1.0),
        }
    }
}

/// Shape of a [`Vae`].
#[derive(Config, Debug, PartialEq)]
pub struct VaeConfig {
    /// Pixels per image.
    pub input_dim: usize,
    /// Widths of the encoder's hidden layers; the decoder mirrors them.
    #[config(default = "vec![512, 256]")]
    pub hidden: Vec<usize>,
    /// Dimension of the latent space.
    #[config(default = 2)]
    pub latent_dim: usize,
}

impl VaeConfig {
    /// A freshly initialised model (PyTorch's default initialisation: U(-k, k), k = 1/sqrt(fan_in)).
    pub fn init(&self, device: &Device) -> Vae {
        let mut widths = vec![self.input_dim];
        widths.extend(&self.hidden);
        let last = *widths.last().unwrap_or(&self.input_dim);
        let encoder = widths
            .windows(2)
            .map(|w| LinearConfig::new(w[0], w[1]).init(device))
            .collect();
        let mut back = vec![self.latent_dim];
        back.extend(self.hidden.iter().rev());
        let decoder = back
            .windows(2)
            .map(|w| LinearConfig::new(w[0], w[1]).init(device))
            .collect();
        let decoder_last = *back.last().unwrap_or(&self.latent_dim);
        Vae {
            encoder,
            mu: LinearConfig::new(last, self.latent_dim).init(device),
            logvar: LinearConfig::new(last, self.latent_dim).init(device),
            decoder,
            output: LinearConfig::new(decoder_last, self.input_dim).init(device),
        }
    }
}

/// The VAE's weights.
#[derive(Module, Debug)]
pub struct Vae {
    /// Encoder hidden layers (ReLU after each).
    pub encoder: Vec<Linear>,
    /// Head giving the posterior mean.
    pub mu: Linear,
    /// Head giving the posterior log-variance.
    pub logvar: Linear,
    /// Decoder hidden layers (ReLU after each).
    pub decoder: Vec<Linear>,
    /// Output layer giving logits per pixel.
    pub output: Linear,
}

/// What one forward pass produces, for the loss and for metrics.
pub struct VaeForward {
    /// Posterior means `[batch, latent]`.
    pub mu: Tensor<2>,
    /// Posterior log-variances `[batch, latent]`.
    pub logvar: Tensor<2>,
    /// Reconstruction term `-log p(x|z)` per sample `[batch]`.
    pub reconstruction: Tensor<1>,
    /// KL per sample and latent dimension `[batch, latent]`.
    pub kl_per_dim: Tensor<2>,
}

impl Vae {
    /// Posterior parameters.
    ///
    /// # Shapes
    ///   x `[batch, pixels]` -> (mu, logvar) `[batch, latent]`
    pub fn encode(&self, x: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let h = self
            .encoder
            .iter()
            .fold(x, |h, layer| linear(layer, h, Activation::Relu));
        (
            linear(&self.mu, h.clone(), Activation::Identity),
            linear(&self.logvar, h, Activation::Identity),
        )
    }

    /// Decoder logits.
    ///
    /// # Shapes
    ///   z `[batch, latent]` -> `[batch, pixels]`
    pub fn decode(&self, z: Tensor<2>) -> Tensor<2> {
        self.decode_with(z, Activation::Identity)
    }

    /// The decoder with `act` applied to its output: `Activation::Sigmoid` gives the mean
    /// image in one fused pass.
    ///
    /// # Shapes
    ///   z `[batch, latent]` -> `[batch, pixels]`
    pub fn decode_with(&self, z: Tensor<2>, act: Activation) -> Tensor<2> {
        let h = self
            .decoder
            .iter()
            .fold(z, |h, layer| linear(layer, h, Activation::Relu));
        linear(&self.output, h, act)
    }

    /// One pass with the reparameterisation `z = mu + exp(logvar / 2) * eps`.
    ///
    /// # Shapes
    ///   x `[batch, pixels]`, eps `[batch, latent]`
    pub fn forward(&self, x: Tensor<2>, eps: Tensor<2>, likelihood: Likelihood) -> VaeForward {
        let (mu, logvar) = self.encode(x.clone());
        let z = mu.clone() + (logvar.clone() * 0.5).exp() * eps;
        let logits = self.decode(z);
        VaeForward {
            reconstruction: likelihood.nll(logits, x),
            kl_per_dim: losses::kl_standard_normal(mu.clone(), logvar.clone()),
            mu,
            logvar,
        }
    }

    /// Importance-sampled `-log p(x)` per sample with `k` draws from the posterior:
    /// `-log mean_k p(x|z_k) p(z_k) / q(z_k|x)`. `eps` holds `k * batch` standard normal draws.
    ///
    /// # Shapes
    ///   x `[batch, pixels]`, eps `[k * batch, latent]` -> `batch` values
    pub fn importance_nll(
        &self,
        x: Tensor<2>,
        eps: Tensor<2>,
        k: usize,
        likelihood: Likelihood,
    ) -> Vec<f32> {
        let batch = x.dims()[0];
        let (mu, logvar) = self.encode(x.clone());
        let (mu, logvar) = (mu.repeat_dim(0, k), logvar.repeat_dim(0, k));
        let z = mu.clone() + (logvar.clone() * 0.5).exp() * eps;
        let log_px_z = likelihood
            .nll(self.decode(z.clone()), x.repeat_dim(0, k))
            .neg();
        let log_w =
            log_px_z + losses::log_standard_normal(z.clone()) - losses::log_normal(z, mu, logvar);
        let log_w = crate::data::batch::to_vec(log_w);
        (0..batch)
            .map(|i| {
                let per_image: Vec<f32> = (0..k).map(|j| log_w[j * batch + i]).collect();
                -losses::log_mean_exp(&per_image)
            })
            .collect()
    }
}

impl super::Family for Vae {
    fn base(&self) -> &Vae {
        self
    }

    fn terms(
        &self,
        x: Tensor<2>,
        _onehot: Option<Tensor<2>>,
        eps: Tensor<2>,
        likelihood: Likelihood,
    ) -> super::Terms {
        super::family::vae_terms(self.forward(x, eps, likelihood))
    }

    fn posteriors(&self, x: Tensor<2>) -> super::Posteriors {
        let (mu, logvar) = self.encode(x);
        super::Posteriors {
            position: mu,
            sigma: (logvar * 0.5).exp(),
            pre_flow: None,
        }
    }

    fn log_weights(
        &self,
        x: Tensor<2>,
        _onehot: Option<Tensor<2>>,
        eps: Tensor<2>,
        likelihood: Likelihood,
    ) -> Option<Tensor<1>> {
        let posterior = self.encode(x.clone());
        Some(super::family::gaussian_log_weights(
            self, x, eps, likelihood, posterior, None,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_follow_the_config() {
        let device = Device::flex();
        let model = VaeConfig::new(12)
            .with_hidden(vec![8, 4])
            .with_latent_dim(3)
            .init(&device);
        let x = Tensor::<2>::zeros([5, 12], &device);
        let (mu, logvar) = model.encode(x.clone());
        assert_eq!(mu.dims(), [5, 3]);
        assert_eq!(logvar.dims(), [5, 3]);
        assert_eq!(model.decode(mu).dims(), [5, 12]);
        let out = model.forward(x, Tensor::zeros([5, 3], &device), Likelihood::Bernoulli);
        assert_eq!(out.reconstruction.dims(), [5]);
        assert_eq!(out.kl_per_dim.dims(), [5, 3]);
    }
}
