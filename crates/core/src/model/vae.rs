//! The MLP variational autoencoder (Kingma & Welling 2014): a Gaussian posterior
//! `q(z|x) = N(mu(x), diag exp(logvar(x)))`, the prior `N(0, I)`, and a Bernoulli or Gaussian
//! decoder. Encoder and decoder are mirror-image MLPs with ReLU ([`super::nets`]).

use burn::config::Config;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::conv::ImageShape;
use super::losses;
use super::nets::{self, Decoder, GaussianEncoder, PointEncoder};

/// The discretised logistic's scale in the controls and on the command line.
pub const DEFAULT_LOGISTIC_SCALE: f32 = 0.05;

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
    /// Discretised logistic over the 256 levels of a byte, around `sigmoid(logits)` with a
    /// fixed scale: a normalised likelihood of 8-bit grey or colour values.
    Logistic {
        /// The logistic's scale, in units of `[0, 1]`.
        scale: f32,
    },
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
            Likelihood::Logistic { scale } => losses::logistic_nll(logits, x, scale),
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
    /// Convolutional networks for images of this shape (dense ones when `None`).
    #[config(default = "None")]
    pub conv: Option<ImageShape>,
    /// The convolutional decoder's colour offset for colour images ([`super::nets::Decoder`]).
    #[config(default = false)]
    pub colour_offset: bool,
    /// tanh after the dense hidden layers instead of ReLU.
    #[config(default = false)]
    pub tanh: bool,
    /// Glorot's uniform initialisation and zero biases for the dense layers, instead of
    /// PyTorch's.
    #[config(default = false)]
    pub glorot: bool,
}

impl VaeConfig {
    /// A freshly initialised VAE: a Gaussian encoder and a decoder.
    pub fn init(&self, device: &Device) -> Vae {
        let (encoder, decoder) = self.gaussian(device);
        Vae { encoder, decoder }
    }

    /// A Gaussian encoder and a decoder.
    pub fn gaussian(&self, device: &Device) -> (GaussianEncoder, Decoder) {
        let nets = self.nets(2, device);
        let [mu, logvar]: [Linear; 2] = nets.heads.try_into().expect("two heads were built");
        let encoder = GaussianEncoder {
            conv: nets.conv,
            layers: nets.encoder,
            mu,
            logvar,
            act: nets.act,
        };
        (encoder, nets.decoder)
    }

    /// A deterministic encoder and a decoder.
    pub fn point(&self, device: &Device) -> (PointEncoder, Decoder) {
        let nets = self.nets(1, device);
        let [code]: [Linear; 1] = nets.heads.try_into().expect("one head was built");
        let encoder = PointEncoder {
            conv: nets.conv,
            layers: nets.encoder,
            code,
            act: nets.act,
        };
        (encoder, nets.decoder)
    }

    /// A decoder alone (a generator).
    pub fn generator(&self, device: &Device) -> Decoder {
        self.nets(0, device).decoder
    }

    /// A generator with batch normalisation before each hidden ReLU.
    pub fn normalised_generator(&self, device: &Device) -> Decoder {
        self.nets_with(0, true, device).decoder
    }

    fn nets(&self, heads: usize, device: &Device) -> nets::Nets {
        self.nets_with(heads, false, device)
    }

    fn nets_with(&self, heads: usize, decoder_norms: bool, device: &Device) -> nets::Nets {
        nets::layers(
            self.input_dim,
            &self.hidden,
            self.latent_dim,
            heads,
            self.conv,
            self.colour_offset,
            decoder_norms,
            self.tanh,
            self.glorot,
            device,
        )
    }
}

/// The VAE's weights.
#[derive(Module, Debug)]
pub struct Vae {
    /// The posterior's mean and log-variance.
    pub encoder: GaussianEncoder,
    /// Logits per pixel from a latent point.
    pub decoder: Decoder,
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
        self.encoder.forward(x)
    }

    /// Decoder logits.
    ///
    /// # Shapes
    ///   z `[batch, latent]` -> `[batch, pixels]`
    pub fn decode(&self, z: Tensor<2>) -> Tensor<2> {
        self.decoder.forward(z)
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
    fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    fn terms(
        &self,
        x: Tensor<2>,
        _onehot: Option<Tensor<2>>,
        eps: Tensor<2>,
        likelihood: Likelihood,
    ) -> Option<super::Terms> {
        Some(super::family::vae_terms(self.forward(x, eps, likelihood)))
    }

    fn posteriors(&self, x: Tensor<2>) -> Option<super::Posteriors> {
        let (mu, logvar) = self.encode(x);
        Some(super::Posteriors {
            position: mu,
            sigma: (logvar * 0.5).exp(),
            pre_flow: None,
        })
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
            &self.decoder,
            x,
            eps,
            likelihood,
            posterior,
            None,
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
