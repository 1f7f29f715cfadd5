//! One interface over every model family. Each family implements [`Family`] in its own file;
//! [`Model`] is the burn module enum that stores any of them (burn's `Module` derive wants a
//! concrete type), and [`dispatch!`] is the one place that matches over its variants. The
//! trainer, worker, command line and explorer only call the methods here.

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;

use super::adversarial::{Adversarial, Discriminator};
use super::flow::Flow;
use super::losses;
use super::nets::Decoder;
use super::posteriors::Posteriors;
use super::{Aae, Ae, Ali, BnVae, Cvae, FVae, Gan, Likelihood, Vae};

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
    /// GAN.
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

/// What a model family does. Each family implements it in its own file; a default is what a
/// family without that capability does.
pub trait Family {
    /// The decoder (the GAN's generator).
    fn decoder(&self) -> &Decoder;

    /// The loss terms of one batch, or `None` for a family without an encoder. `onehot` is
    /// needed by the CVAE; `eps` holds standard normal draws `[batch, latent]`.
    fn terms(
        &self,
        x: Tensor<2>,
        onehot: Option<Tensor<2>>,
        eps: Tensor<2>,
        likelihood: Likelihood,
    ) -> Option<Terms>;

    /// The posteriors of a batch, as drawn in the plane (`None` without an encoder).
    fn posteriors(&self, x: Tensor<2>) -> Option<Posteriors>;

    /// Importance weights `log p(x, z_k) - log q(z_k|x)` for `rows = k * batch` draws (`x` and
    /// `onehot` already repeated); `None` for a family without a likelihood bound.
    fn log_weights(
        &self,
        _x: Tensor<2>,
        _onehot: Option<Tensor<2>>,
        _eps: Tensor<2>,
        _likelihood: Likelihood,
    ) -> Option<Tensor<1>> {
        None
    }

    /// Decoder logits at points of the prior's space.
    ///
    /// # Shapes
    ///   z `[batch, latent]` -> `[batch, pixels]`
    fn decode(&self, z: Tensor<2>) -> Tensor<2> {
        self.decoder().forward(z)
    }

    /// Dimension of the latent space.
    fn latent_dim(&self) -> usize {
        self.decoder().latent_dim()
    }

    /// The mode of the prior to sample around (the origin unless the family says otherwise).
    fn prior_mode(&self, _class: Option<usize>) -> Vec<f32> {
        vec![0.0; self.latent_dim()]
    }

    /// Learned class means, row-major `[classes, latent]`.
    fn class_means(&self) -> Option<Vec<f32>> {
        None
    }

    /// The learned class means as a parameter (they have a learning rate of their own).
    fn class_means_param(&self) -> Option<&Param<Tensor<2>>> {
        None
    }

    /// Per-dimension scales `(gamma_mu, gamma_sigma)` of batch-normalised posterior heads.
    fn bn_gammas(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        None
    }

    /// Trained `(sigma1, sigma2)` of a flow posterior.
    fn f_sigmas(&self) -> Option<(f32, f32)> {
        None
    }

    /// The family's own per-step values as tensors of one element, read back with the losses.
    fn extra_values(&self, _likelihood: Likelihood) -> Vec<(&'static str, Tensor<1>)> {
        Vec::new()
    }

    /// A flow between the pre-flow space and the prior's space.
    fn flow(&self) -> Option<&Flow> {
        None
    }

    /// The discriminator of an adversarial family.
    fn discriminator(&self) -> Option<&Discriminator> {
        None
    }

    /// How an adversarial family steps.
    fn adversarial(&self) -> Option<&dyn Adversarial> {
        None
    }

    /// The family with its discriminator's parameters untracked (its dropout still on).
    fn with_frozen_discriminator(self) -> Self
    where
        Self: Sized,
    {
        self
    }
}

/// The adversarial families' shared behaviour, written once: a discriminator that the
/// generator phase freezes, and evaluation terms only (they train through their own steps; the
/// reconstruction of the AAE and ALI is G(E(x)) under the likelihood, E(x) the code or the
/// posterior mean).
macro_rules! adversarial_family {
    (@discriminator) => {
        fn discriminator(&self) -> Option<&Discriminator> {
            Some(&self.disc)
        }

        fn adversarial(&self) -> Option<&dyn Adversarial> {
            Some(self)
        }

        fn with_frozen_discriminator(mut self) -> Self {
            self.disc = self.disc.no_grad();
            self
        }
    };
    ($($family:ty),*) => {$(
        impl Family for $family {
            fn decoder(&self) -> &Decoder {
                &self.decoder
            }

            fn terms(
                &self,
                x: Tensor<2>,
                _onehot: Option<Tensor<2>>,
                _eps: Tensor<2>,
                likelihood: Likelihood,
            ) -> Option<Terms> {
                let code = self.encoder.mean(x.clone());
                Some(code_terms(code, &self.decoder, x, likelihood))
            }

            fn posteriors(&self, x: Tensor<2>) -> Option<Posteriors> {
                Some(self.encoder.posteriors(x))
            }

            adversarial_family!(@discriminator);
        }
    )*};
}

adversarial_family!(Aae, Ali);

/// The GAN has no encoder: no terms, no posteriors (the plane shows prior samples instead).
impl Family for Gan {
    fn decoder(&self) -> &Decoder {
        &self.generator
    }

    fn terms(
        &self,
        _x: Tensor<2>,
        _onehot: Option<Tensor<2>>,
        _eps: Tensor<2>,
        _likelihood: Likelihood,
    ) -> Option<Terms> {
        None
    }

    fn posteriors(&self, _x: Tensor<2>) -> Option<Posteriors> {
        None
    }

    adversarial_family!(@discriminator);
}

/// Runs `$body` with `$m` bound to whichever family `$model` holds: the one match over the
/// variants of [`Model`].
macro_rules! dispatch {
    ($model:expr, $m:ident => $body:expr) => {
        match $model {
            Model::Ae($m) => $body,
            Model::Vae($m) => $body,
            Model::Cvae($m) => $body,
            Model::BnVae($m) => $body,
            Model::FVae($m) => $body,
            Model::Gan($m) => $body,
            Model::Aae($m) => $body,
            Model::Ali($m) => $body,
        }
    };
}

impl Model {
    /// The decoder (the GAN's generator).
    pub fn decoder(&self) -> &Decoder {
        dispatch!(self, m => Family::decoder(m))
    }

    /// The discriminator of an adversarial family.
    pub fn discriminator(&self) -> Option<&Discriminator> {
        dispatch!(self, m => Family::discriminator(m))
    }

    /// How an adversarial family steps (`None` for the others).
    pub fn adversarial(&self) -> Option<&dyn Adversarial> {
        dispatch!(self, m => Family::adversarial(m))
    }

    /// The model with its discriminator's parameters untracked (its dropout still on): the
    /// generator phase's losses then give no gradient to a discriminator that does not step.
    pub fn with_frozen_discriminator(self) -> Self {
        match self {
            Model::Ae(m) => Model::Ae(Family::with_frozen_discriminator(m)),
            Model::Vae(m) => Model::Vae(Family::with_frozen_discriminator(m)),
            Model::Cvae(m) => Model::Cvae(Family::with_frozen_discriminator(m)),
            Model::BnVae(m) => Model::BnVae(Family::with_frozen_discriminator(m)),
            Model::FVae(m) => Model::FVae(Family::with_frozen_discriminator(m)),
            Model::Gan(m) => Model::Gan(Family::with_frozen_discriminator(m)),
            Model::Aae(m) => Model::Aae(Family::with_frozen_discriminator(m)),
            Model::Ali(m) => Model::Ali(Family::with_frozen_discriminator(m)),
        }
    }

    /// The model with its decoder's output bias set to `bias` (one value per output), as
    /// Burda et al.'s code starts it: the logit of each pixel's mean over the training images.
    /// `None` when the decoder's output layer has no bias of that width (the convolutional
    /// decoder's output layer feeds its transposed convolutions instead).
    pub fn with_output_bias(self, bias: &[f32]) -> Option<Self> {
        let decoder = self.decoder();
        if decoder.up.is_some() {
            return None;
        }
        let param = decoder.output.bias.as_ref()?;
        if param.val().dims() != [bias.len()] {
            return None;
        }
        struct SetBias<'a> {
            id: burn::module::ParamId,
            values: &'a [f32],
        }
        impl burn::module::ModuleMapper for SetBias<'_> {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                if param.id != self.id {
                    return param;
                }
                let values = self.values.to_vec();
                param.map(|t| {
                    let grad = t.is_require_grad();
                    let data = burn::tensor::TensorData::new(values, t.shape());
                    let fresh = Tensor::<D>::from_data(data, &t.device());
                    match grad {
                        true => fresh.require_grad(),
                        false => fresh,
                    }
                })
            }
        }
        let mut mapper = SetBias {
            id: param.id,
            values: bias,
        };
        Some(self.map(&mut mapper))
    }

    /// The loss terms of one batch. `onehot` is needed by the CVAE; `eps` holds standard
    /// normal draws `[batch, latent]`.
    pub fn terms(
        &self,
        x: Tensor<2>,
        onehot: Option<Tensor<2>>,
        eps: Tensor<2>,
        likelihood: Likelihood,
    ) -> Option<Terms> {
        dispatch!(self, m => Family::terms(m, x, onehot, eps, likelihood))
    }

    /// The posteriors of a batch, as drawn in the plane (`None` without an encoder).
    pub fn posteriors(&self, x: Tensor<2>) -> Option<Posteriors> {
        dispatch!(self, m => Family::posteriors(m, x))
    }

    /// Importance weights `log p(x, z_k) - log q(z_k|x)` for `rows = k * batch` draws
    /// (`x` and `onehot` already repeated), or `None` for the families without a likelihood
    /// bound.
    pub fn log_weights(
        &self,
        x: Tensor<2>,
        onehot: Option<Tensor<2>>,
        eps: Tensor<2>,
        likelihood: Likelihood,
    ) -> Option<Tensor<1>> {
        dispatch!(self, m => Family::log_weights(m, x, onehot, eps, likelihood))
    }

    /// Decoder logits at points of the prior's space (through F^-1 for the f-VAE).
    ///
    /// # Shapes
    ///   z `[batch, latent]` -> `[batch, pixels]`
    pub fn decode(&self, z: Tensor<2>) -> Tensor<2> {
        dispatch!(self, m => Family::decode(m, z))
    }

    /// The mode of the prior to sample around: the origin, or class `class`'s mean for the CVAE
    /// (class 0 when none is given).
    pub fn prior_mode(&self, class: Option<usize>) -> Vec<f32> {
        dispatch!(self, m => Family::prior_mode(m, class))
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
        dispatch!(self, m => Family::latent_dim(m))
    }

    /// The CVAE's class means, row-major `[classes, latent]`.
    pub fn class_means(&self) -> Option<Vec<f32>> {
        dispatch!(self, m => Family::class_means(m))
    }

    /// The CVAE's class means as a parameter.
    pub fn class_means_param(&self) -> Option<&Param<Tensor<2>>> {
        dispatch!(self, m => Family::class_means_param(m))
    }

    /// The BN-VAE's `(gamma_mu, gamma_sigma)` per dimension.
    pub fn bn_gammas(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        dispatch!(self, m => Family::bn_gammas(m))
    }

    /// The f-VAE's trained `(sigma1, sigma2)`.
    pub fn f_sigmas(&self) -> Option<(f32, f32)> {
        dispatch!(self, m => Family::f_sigmas(m))
    }

    /// The family's own per-step values as tensors of one element, so the trainer reads them
    /// back with the losses: the BN-VAE's `kl_floor`, the f-VAE's `sigma1` and `sigma2`.
    pub fn extra_values(&self, likelihood: Likelihood) -> Vec<(&'static str, Tensor<1>)> {
        dispatch!(self, m => Family::extra_values(m, likelihood))
    }

    /// The f-VAE's flow.
    pub fn flow(&self) -> Option<&Flow> {
        dispatch!(self, m => Family::flow(m))
    }
}

/// The terms of a Gaussian-posterior family's forward pass.
pub(super) fn vae_terms(out: super::VaeForward) -> Terms {
    Terms {
        reconstruction: out.reconstruction,
        kl: Some(out.kl_per_dim.clone().sum_dim(1).squeeze_dim(1)),
        kl_per_dim: Some(out.kl_per_dim),
    }
}

/// The terms of a family with codes only (no KL): the reconstruction G(E(x)) under the
/// likelihood. The adversarial families train through their own steps; this is evaluation.
pub(super) fn code_terms(
    code: Tensor<2>,
    decoder: &Decoder,
    x: Tensor<2>,
    likelihood: Likelihood,
) -> Terms {
    Terms {
        reconstruction: likelihood.nll(decoder.forward(code), x),
        kl: None,
        kl_per_dim: None,
    }
}

/// Importance weights of a Gaussian posterior `N(mu, exp(logvar))` under a standard normal
/// prior (centred at `prior_mean` when given).
pub(super) fn gaussian_log_weights(
    decoder: &Decoder,
    x: Tensor<2>,
    eps: Tensor<2>,
    likelihood: Likelihood,
    (mu, logvar): (Tensor<2>, Tensor<2>),
    prior_mean: Option<Tensor<2>>,
) -> Tensor<1> {
    let z = mu.clone() + (logvar.clone() * 0.5).exp() * eps;
    let log_px = likelihood.nll(decoder.forward(z.clone()), x).neg();
    let log_prior = match prior_mean {
        Some(mean) => losses::log_standard_normal(z.clone() - mean),
        None => losses::log_standard_normal(z.clone()),
    };
    log_px + log_prior - losses::log_normal(z, mu, logvar)
}

/// The BN-VAE's KL floor `(1/2) sum_i gamma_mu,i^2` from its scales.
pub fn kl_floor(gamma_mu: &[f32]) -> f32 {
    0.5 * gamma_mu.iter().map(|g| g * g).sum::<f32>()
}
