//! The f-VAE (seeds/002): a flow-based posterior. The encoder gives a centre E(x); with
//! `u ~ N(0, I)` the pre-flow point is `w = sigma1 u + E(x)` and the latent `z = F(w)`, F an
//! invertible flow of affine coupling layers. The decoder mean is `G(F^-1(z)) = G(w)`.
//! The loss per sample, with D pixels and d latent dimensions,
//! `|G(w) - x|^2 / (2 sigma2^2) + D log sigma2 + 1/2 |F(w)|^2 - d log sigma1 - log |det dF/dw|`,
//! is the negative ELBO up to constants; sigma1 and sigma2 are trained scalars. Sampling at
//! temperature T: `u ~ N(0, T^2 I)`, `w = F^-1(u)`, `x = G(w)`.
//!
//! The article's decoder is Gaussian with the trained sigma2 ([`Likelihood::GaussianTrained`]);
//! the other likelihoods are offered so that the f-VAE and the VAE compare under the same one.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

use super::flow::{Flow, FlowConfig};
use super::losses;
use super::nets::{Decoder, PointEncoder};
use super::{Likelihood, VaeConfig};

/// The f-VAE's weights.
#[derive(Module, Debug)]
pub struct FVae {
    /// E(x): the posterior's centre in the pre-flow space.
    pub encoder: PointEncoder,
    /// G(w): logits per pixel from a pre-flow point.
    pub decoder: Decoder,
    /// The flow F from the pre-flow space to the prior's space.
    pub flow: Flow,
    /// log sigma1, the posterior's radius in the pre-flow space, `[1]`.
    pub log_sigma1: Param<Tensor<1>>,
    /// log sigma2, the decoder's standard deviation under the trained Gaussian, `[1]`.
    pub log_sigma2: Param<Tensor<1>>,
}

/// What one f-VAE pass produces.
pub struct FVaeForward {
    /// Posterior centres E(x) in the pre-flow space `[batch, latent]`.
    pub centre: Tensor<2>,
    /// `-log p(x|w)` per sample `[batch]`.
    pub reconstruction: Tensor<1>,
    /// The single-draw KL estimate `log q(z|x) - log p(z)` per sample `[batch]`:
    /// `1/2 |z|^2 - 1/2 |u|^2 - d log sigma1 - log |det dF/dw|`.
    pub kl: Tensor<1>,
}

impl FVae {
    /// An f-VAE of the shape `nets` with an identity flow of `layers` couplings and
    /// sigma1 = 1, sigma2 = 0.3.
    pub fn new(nets: &VaeConfig, layers: usize, device: &Device) -> Self {
        let (encoder, decoder) = nets.point(device);
        let latent_dim = nets.latent_dim;
        Self {
            encoder,
            decoder,
            flow: FlowConfig::new(latent_dim).with_layers(layers).init(device),
            log_sigma1: Param::from_tensor(Tensor::zeros([1], device)),
            log_sigma2: Param::from_tensor(Tensor::from_floats([0.3f32.ln()], device)),
        }
    }

    /// Posterior centres E(x) in the pre-flow space.
    pub fn centre(&self, x: Tensor<2>) -> Tensor<2> {
        self.encoder.forward(x)
    }

    /// `-log p(x|w)` per sample for decoder logits at the pre-flow point.
    pub fn nll(&self, logits: Tensor<2>, x: Tensor<2>, likelihood: Likelihood) -> Tensor<1> {
        match likelihood {
            Likelihood::GaussianTrained => {
                losses::gaussian_nll_trained(logits, x, self.log_sigma2.val())
            }
            other => other.nll(logits, x),
        }
    }

    /// One pass with standard normal noise `u`.
    ///
    /// # Shapes
    ///   x `[batch, pixels]`, u `[batch, latent]`
    pub fn forward(&self, x: Tensor<2>, u: Tensor<2>, likelihood: Likelihood) -> FVaeForward {
        let d = u.dims()[1] as f32;
        let centre = self.centre(x.clone());
        let log_sigma1 = self.log_sigma1.val();
        let w = centre.clone() + u.clone() * log_sigma1.clone().exp().unsqueeze_dim(0);
        let reconstruction = self.nll(self.decoder.forward(w.clone()), x, likelihood);
        let (z, log_det) = self.flow.forward(w);
        let kl = (z.square().sum_dim(1) - u.square().sum_dim(1)).squeeze_dim(1) * 0.5
            - log_sigma1 * d
            - log_det;
        FVaeForward {
            centre,
            reconstruction,
            kl,
        }
    }

    /// `log p(x|w) + log p(F(w)) + log |det dF/dw| - log q(w|x)` for importance sampling.
    ///
    /// # Shapes
    ///   x `[rows, pixels]`, u `[rows, latent]` -> `[rows]`
    pub fn log_weights(&self, x: Tensor<2>, u: Tensor<2>, likelihood: Likelihood) -> Tensor<1> {
        let out = self.forward(x, u.clone(), likelihood);
        // log q(w|x) - log p(z) - log|det| = kl; the Gaussian constants cancel.
        (out.reconstruction + out.kl).neg()
    }

    /// The trained scalars `(sigma1, sigma2)`.
    pub fn sigmas(&self) -> (f32, f32) {
        let read = |p: &Param<Tensor<1>>| {
            crate::data::batch::to_vec(p.val().exp())
                .first()
                .copied()
                .unwrap_or(f32::NAN)
        };
        (read(&self.log_sigma1), read(&self.log_sigma2))
    }
}

impl super::Family for FVae {
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
        let out = self.forward(x, eps, likelihood);
        Some(super::Terms {
            reconstruction: out.reconstruction,
            kl: Some(out.kl),
            kl_per_dim: None,
        })
    }

    fn posteriors(&self, x: Tensor<2>) -> Option<super::Posteriors> {
        let centre = self.centre(x);
        let sigma1 = self.log_sigma1.val().exp().unsqueeze_dim(0);
        let sigma = centre.zeros_like() + sigma1;
        Some(super::Posteriors {
            position: self.flow.forward(centre.clone()).0,
            sigma,
            pre_flow: Some(centre),
        })
    }

    fn log_weights(
        &self,
        x: Tensor<2>,
        _onehot: Option<Tensor<2>>,
        eps: Tensor<2>,
        likelihood: Likelihood,
    ) -> Option<Tensor<1>> {
        Some(FVae::log_weights(self, x, eps, likelihood))
    }

    /// Through F^-1: points of the prior's space are decoded where the flow sends them.
    fn decode(&self, z: Tensor<2>) -> Tensor<2> {
        self.decoder.forward(self.flow.inverse(z))
    }

    fn f_sigmas(&self) -> Option<(f32, f32)> {
        Some(self.sigmas())
    }

    /// sigma1 always; sigma2 only under the trained Gaussian, the one likelihood that
    /// trains it.
    fn extra_values(&self, likelihood: Likelihood) -> Vec<(&'static str, Tensor<1>)> {
        let mut values = vec![("sigma1", self.log_sigma1.val().exp().detach())];
        if likelihood == Likelihood::GaussianTrained {
            values.push(("sigma2", self.log_sigma2.val().exp().detach()));
        }
        values
    }

    fn flow(&self) -> Option<&Flow> {
        Some(&self.flow)
    }
}
