//! One interface over every model family: [`Model`] is a burn module enum, and the trainer,
//! worker, command line and explorer only call the methods here.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;

use super::adversarial::Discriminator;
use super::losses;
use super::{Aae, Ae, Ali, BnVae, Cvae, FVae, Gan, Likelihood, Vae};
use crate::data::batch::to_vec;

/// A model of any family.
#[derive(Module, Debug)]
pub enum Model {
    /// Plain autoencoder.
    Ae(Ae),
    /// Variational autoencoder.
    Vae(Vae),
    /// CVAE with learned class means.
    Cvae(Cvae),
    /// BN-VAE.
    BnVae(BnVae),
    /// f-VAE.
    FVae(FVae),
    /// GAN (its generator is the base's decoder).
    Gan(Gan),
    /// Adversarial autoencoder.
    Aae(Aae),
    /// ALI / BiGAN.
    Ali(Ali),
}

/// The loss terms of one batch, per sample.
pub struct Terms {
    /// `-log p(x|z)` `[batch]`.
    pub reconstruction: Tensor<1>,
    /// The KL term `[batch]` (none for the AE).
    pub kl: Option<Tensor<1>>,
    /// KL per latent dimension `[batch, latent]`, for the families whose KL splits that way.
    pub kl_per_dim: Option<Tensor<2>>,
}

/// A batch of posteriors as the plane draws them.
pub struct Posteriors {
    /// Where each sample sits in the prior's space `[batch, latent]`: mu, the code, or F(E(x)).
    pub position: Tensor<2>,
    /// Standard deviation per dimension `[batch, latent]`: sigma, zero for codes, sigma1 for the
    /// f-VAE (in the pre-flow space).
    pub sigma: Tensor<2>,
    /// The f-VAE's centres E(x) in the pre-flow space.
    pub pre_flow: Option<Tensor<2>>,
}

impl Model {
    /// The encoder/decoder layers every family shares.
    pub fn base(&self) -> &Vae {
        match self {
            Model::Ae(m) => &m.base,
            Model::Vae(m) => m,
            Model::Cvae(m) => &m.base,
            Model::BnVae(m) => &m.base,
            Model::FVae(m) => &m.base,
            Model::Gan(m) => &m.base,
            Model::Aae(m) => &m.base,
            Model::Ali(m) => &m.base,
        }
    }

    /// The discriminator of an adversarial family.
    pub fn discriminator(&self) -> Option<&Discriminator> {
        match self {
            Model::Gan(m) => Some(&m.disc),
            Model::Aae(m) => Some(&m.disc),
            Model::Ali(m) => Some(&m.disc),
            _ => None,
        }
    }

    /// The model with its discriminator's parameters untracked (its dropout still on): the
    /// generator phase's losses then give no gradient to a discriminator that does not step.
    pub fn with_frozen_discriminator(self) -> Self {
        match self {
            Model::Gan(mut m) => {
                m.disc = m.disc.no_grad();
                Model::Gan(m)
            }
            Model::Aae(mut m) => {
                m.disc = m.disc.no_grad();
                Model::Aae(m)
            }
            Model::Ali(mut m) => {
                m.disc = m.disc.no_grad();
                Model::Ali(m)
            }
            other @ (Model::Ae(_)
            | Model::Vae(_)
            | Model::Cvae(_)
            | Model::BnVae(_)
            | Model::FVae(_)) => other,
        }
    }

    /// The decoder's hidden layers and output layer, for a plain copy.
    pub fn decoder_layers(&self) -> (&[Linear], &Linear) {
        let base = self.base();
        (&base.decoder, &base.output)
    }

    /// The loss terms of one batch. `onehot` is needed by the CVAE; `eps` holds standard
    /// normal draws `[batch, latent]`.
    pub fn terms(
        &self,
        x: Tensor<2>,
        onehot: Option<Tensor<2>>,
        eps: Tensor<2>,
        likelihood: Likelihood,
    ) -> Terms {
        let from_vae = |out: super::VaeForward| Terms {
            reconstruction: out.reconstruction,
            kl: Some(out.kl_per_dim.clone().sum_dim(1).squeeze_dim(1)),
            kl_per_dim: Some(out.kl_per_dim),
        };
        match self {
            Model::Ae(m) => Terms {
                reconstruction: m.forward(x, likelihood).0,
                kl: None,
                kl_per_dim: None,
            },
            // Evaluation only: the adversarial families train through their own steps. Their
            // reconstruction is G(E(x)) under the likelihood (none for the GAN: it has no
            // encoder, so this is the decoding of the unused encoder's output).
            Model::Gan(_) | Model::Aae(_) | Model::Ali(_) => {
                let code = self.base().encode(x.clone()).0;
                Terms {
                    reconstruction: likelihood.nll(self.base().decode(code), x),
                    kl: None,
                    kl_per_dim: None,
                }
            }
            Model::Vae(m) => from_vae(m.forward(x, eps, likelihood)),
            Model::Cvae(m) => {
                let onehot = onehot.expect("the CVAE trains on labelled batches");
                from_vae(m.forward(x, onehot, eps, likelihood))
            }
            Model::BnVae(m) => from_vae(m.forward(x, eps, likelihood)),
            Model::FVae(m) => {
                let out = m.forward(x, eps, likelihood);
                Terms {
                    reconstruction: out.reconstruction,
                    kl: Some(out.kl),
                    kl_per_dim: None,
                }
            }
        }
    }

    /// The posteriors of a batch, as drawn in the plane.
    pub fn posteriors(&self, x: Tensor<2>) -> Posteriors {
        match self {
            Model::Ae(_) | Model::Gan(_) | Model::Aae(_) | Model::Ali(_) => {
                let z = self.base().encode(x).0;
                Posteriors {
                    sigma: z.zeros_like(),
                    position: z,
                    pre_flow: None,
                }
            }
            Model::Vae(Vae { .. }) | Model::Cvae(_) => {
                let (mu, logvar) = self.base().encode(x);
                Posteriors {
                    position: mu,
                    sigma: (logvar * 0.5).exp(),
                    pre_flow: None,
                }
            }
            Model::BnVae(m) => {
                let (mu, sigma) = m.encode(x);
                Posteriors {
                    position: mu,
                    sigma: sigma.abs(),
                    pre_flow: None,
                }
            }
            Model::FVae(m) => {
                let centre = m.centre(x);
                let sigma1 = m.log_sigma1.val().exp().unsqueeze_dim(0);
                let sigma = centre.zeros_like() + sigma1;
                Posteriors {
                    position: m.flow.forward(centre.clone()).0,
                    sigma,
                    pre_flow: Some(centre),
                }
            }
        }
    }

    /// Importance weights `log p(x, z_k) - log q(z_k|x)` for `rows = k * batch` draws
    /// (`x` and `onehot` already repeated), or `None` for the AE, which has no likelihood bound.
    pub fn log_weights(
        &self,
        x: Tensor<2>,
        onehot: Option<Tensor<2>>,
        eps: Tensor<2>,
        likelihood: Likelihood,
    ) -> Option<Tensor<1>> {
        let gaussian = |mu: Tensor<2>, logvar: Tensor<2>, prior_mean: Option<Tensor<2>>| {
            let z = mu.clone() + (logvar.clone() * 0.5).exp() * eps.clone();
            let log_px = likelihood
                .nll(self.base().decode(z.clone()), x.clone())
                .neg();
            let log_prior = match prior_mean {
                Some(mean) => losses::log_standard_normal(z.clone() - mean),
                None => losses::log_standard_normal(z.clone()),
            };
            log_px + log_prior - losses::log_normal(z, mu, logvar)
        };
        match self {
            Model::Ae(_) | Model::Gan(_) | Model::Aae(_) | Model::Ali(_) => None,
            Model::Vae(m) => {
                let (mu, logvar) = m.encode(x.clone());
                Some(gaussian(mu, logvar, None))
            }
            Model::Cvae(m) => {
                let (mu, logvar) = m.base.encode(x.clone());
                let means = m.means_of(onehot.expect("the CVAE needs labels"));
                Some(gaussian(mu, logvar, Some(means)))
            }
            Model::BnVae(m) => {
                let (mu, sigma) = m.encode(x.clone());
                Some(gaussian(mu, BnVae::logvar(sigma), None))
            }
            Model::FVae(m) => Some(m.log_weights(x, eps, likelihood)),
        }
    }

    /// Decoder logits at points of the prior's space (through F^-1 for the f-VAE).
    ///
    /// # Shapes
    ///   z `[batch, latent]` -> `[batch, pixels]`
    pub fn decode(&self, z: Tensor<2>) -> Tensor<2> {
        match self {
            Model::FVae(m) => m.base.decode(m.flow.inverse(z)),
            _ => self.base().decode(z),
        }
    }

    /// The mode of the prior to sample around: the origin, or class `class`'s mean for the CVAE
    /// (class 0 when none is given).
    pub fn prior_mode(&self, class: Option<usize>) -> Vec<f32> {
        let d = self.latent_dim();
        match self {
            Model::Cvae(m) => {
                let means = to_vec(m.class_means.val());
                let c = class.unwrap_or(0).min(means.len() / d.max(1) - 1);
                means[c * d..(c + 1) * d].to_vec()
            }
            _ => vec![0.0; d],
        }
    }

    /// Samples at temperature `t`: `z = mode + t * eps`, decoded to intensities in `[0, 1]`.
    ///
    /// # Shapes
    ///   eps `[n, latent]` -> `[n, pixels]`
    pub fn sample(&self, eps: Tensor<2>, t: f32, class: Option<usize>) -> Tensor<2> {
        let device = eps.device();
        let mode = Tensor::<1>::from_floats(self.prior_mode(class).as_slice(), &device);
        sigmoid(self.decode(eps * t + mode.unsqueeze_dim(0)))
    }

    /// Dimension of the latent space.
    pub fn latent_dim(&self) -> usize {
        self.base().mu.weight.dims()[1]
    }

    /// The CVAE's class means, row-major `[classes, latent]`.
    pub fn class_means(&self) -> Option<Vec<f32>> {
        match self {
            Model::Cvae(m) => Some(to_vec(m.class_means.val())),
            _ => None,
        }
    }

    /// The BN-VAE's `(gamma_mu, gamma_sigma)` per dimension.
    pub fn bn_gammas(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        match self {
            Model::BnVae(m) => {
                let (mu, sigma) = m.gammas();
                Some((to_vec(mu), to_vec(sigma)))
            }
            _ => None,
        }
    }

    /// The f-VAE's trained `(sigma1, sigma2)`.
    pub fn f_sigmas(&self) -> Option<(f32, f32)> {
        match self {
            Model::FVae(m) => Some(m.sigmas()),
            _ => None,
        }
    }

    /// The family's own per-step values as tensors of one element, so the trainer reads them
    /// back with the losses: the BN-VAE's `kl_floor`, the f-VAE's `sigma1` and `sigma2`.
    pub fn extra_values(&self) -> Vec<(&'static str, Tensor<1>)> {
        match self {
            Model::BnVae(m) => {
                let (gamma_mu, _) = m.gammas();
                vec![("kl_floor", (gamma_mu.square().sum() * 0.5).detach())]
            }
            Model::FVae(m) => vec![
                ("sigma1", m.log_sigma1.val().exp().detach()),
                ("sigma2", m.log_sigma2.val().exp().detach()),
            ],
            _ => Vec::new(),
        }
    }

    /// The f-VAE's flow.
    pub fn flow(&self) -> Option<&super::flow::Flow> {
        match self {
            Model::FVae(m) => Some(&m.flow),
            _ => None,
        }
    }
}

/// The BN-VAE's KL floor `(1/2) sum_i gamma_mu,i^2` from its scales.
pub fn kl_floor(gamma_mu: &[f32]) -> f32 {
    0.5 * gamma_mu.iter().map(|g| g * g).sum::<f32>()
}
