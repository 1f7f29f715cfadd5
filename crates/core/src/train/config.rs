//! Everything that defines a training run, written once as serde defaults and shared by the
//! command line, the worker and the saved `config.json`.

use serde::{Deserialize, Serialize};

use burn::tensor::Device;

use super::catalogue::{AdversarialParams, ModelKind};
use crate::model::adversarial::DiscriminatorConfig;
use crate::model::nets::Encoder;
use crate::model::{
    Aae, Ae, Ali, Arch, BnVae, Cvae, FVae, Gan, ImageShape, Likelihood, Model, VaeConfig,
};

/// The activation after the networks' dense hidden layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HiddenActivation {
    /// `max(v, 0)`.
    #[default]
    Relu,
    /// `tanh v`, as in Burda et al.'s networks.
    Tanh,
}

/// Settings that may change while a run is going (applied at the next step).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HyperParams {
    /// Adam's learning rate.
    pub lr: f64,
    /// Samples per step (a change takes effect at the next epoch).
    pub batch_size: usize,
    /// Weight of the KL term once warm-up is over.
    pub beta: f32,
    /// Steps over which the KL weight rises linearly from 0 to `beta` (0: no warm-up).
    pub kl_warmup_steps: u64,
    /// The CVAE's class means learn at `lr` times this (1: the network's rate). Measured: ten
    /// times faster means did not raise the 10-epoch class-conditional accuracy (49.0% at 1,
    /// 48.4% at 10), so the default keeps one rate.
    pub class_mean_lr_scale: f64,
    /// Draws per image of the importance-weighted objective (Burda et al. 2016): the loss is
    /// `-log mean_k w_k` over `k` posterior draws (1: the ELBO). For the families with a
    /// Gaussian posterior (VAE, CVAE, BN-VAE, f-VAE); the KL weight and its warm-up apply to
    /// the ELBO only.
    pub iw_samples: usize,
}

/// The most draws per image the importance-weighted objective takes.
pub const MAX_IW_SAMPLES: usize = 1000;

impl Default for HyperParams {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            batch_size: 128,
            beta: 1.0,
            kl_warmup_steps: 0,
            class_mean_lr_scale: 1.0,
            iw_samples: 1,
        }
    }
}

impl HyperParams {
    /// The KL weight at `step` (counting from 0), with the linear warm-up applied.
    pub fn kl_weight(&self, step: u64) -> f32 {
        if self.kl_warmup_steps == 0 {
            self.beta
        } else {
            self.beta * ((step + 1) as f32 / self.kl_warmup_steps as f32).min(1.0)
        }
    }
}

/// A whole training run's definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// The dataset: `mnist`, `fashion-mnist`, `shapes`, a path, or an upload's value
    /// (`upload:` and its name; the files are [`TrainConfig::upload`]).
    pub dataset: String,
    /// The files an `upload:` dataset names, carried with the config as a value. Never saved:
    /// a config read back names an upload that is no longer held, and says so when loaded.
    #[serde(skip)]
    pub upload: Option<std::sync::Arc<crate::data::files::Upload>>,
    /// An image folder's images scaled so that their larger side is this many pixels (0: the
    /// most common size, capped at 64).
    pub image_size: usize,
    /// The model family.
    pub model: ModelKind,
    /// The networks around the latent space: dense, or convolutional.
    pub arch: Arch,
    /// The activation after the dense hidden layers (runs saved without it had ReLU).
    pub activation: HiddenActivation,
    /// The learning rate's course over the epochs (runs saved without it had a constant one).
    pub lr_schedule: super::schedule::LrSchedule,
    /// Adam's epsilon (added to the root of the second moment; PyTorch's 1e-8 by default,
    /// Burda et al.'s 1e-4).
    pub adam_epsilon: f32,
    /// Glorot's uniform initialisation (and zero biases) for the dense layers, as Burda et
    /// al. start theirs, instead of PyTorch's default.
    pub glorot_init: bool,
    /// Start the dense decoder's output bias at the logit of each pixel's mean over the
    /// training images, clipped to [0.001, 0.999] (Burda et al.'s released code), instead of
    /// PyTorch's random draw.
    pub mean_output_bias: bool,
    /// The convolutional decoder's colour offset for colour images (one logit per channel
    /// for the whole image, from the last hidden layer). Runs saved without this setting had
    /// none.
    #[serde(default)]
    pub colour_offset: bool,
    /// Dimension of the latent space.
    pub latent_dim: usize,
    /// Widths of the encoder's hidden layers (the decoder mirrors them).
    pub hidden: Vec<usize>,
    /// The decoder's likelihood.
    pub likelihood: Likelihood,
    /// Whether the likelihood follows the data ([`TrainConfig::settle_likelihood`]): the
    /// command line sets it when `--likelihood` is not given. Runs saved without this
    /// setting kept theirs.
    #[serde(default)]
    pub likelihood_from_data: bool,
    /// Settings that may change during the run.
    pub hyper: HyperParams,
    /// Number of passes over the training split.
    pub epochs: usize,
    /// Seed of every random choice: initial weights, shuffles, noise, held-out split.
    pub seed: u64,
    /// Dynamic binarisation: train on a fresh Bernoulli draw of each batch, test on one fixed
    /// draw.
    pub binarize: bool,
    /// Test samples whose posteriors are tracked in snapshots (at most [`MAX_PROBE`]).
    pub probe_size: usize,
    /// BN-VAE: the least share tau of the unit variance kept by mu, in (0, 1).
    pub tau: f32,
    /// f-VAE: number of affine coupling layers in the flow.
    pub flow_layers: usize,
    /// CVAE: the standard deviation of the class means' initial draw. Drawn apart (rather
    /// than near the origin) the classes start in separate places, and unit-variance class
    /// Gaussians overlap less in two dimensions.
    pub class_mean_spread: f32,
    /// GAN, AAE and ALI: their own settings.
    pub adversarial: AdversarialParams,
    /// Importance samples per image for the test log-likelihood (0: skip it).
    pub nll_samples: usize,
    /// Test images (the first ones) on which the log-likelihood is estimated.
    pub nll_images: usize,
    /// A long run's validation split, learning-rate decay and early stopping (off by default).
    pub schedule: super::Schedule,
}

/// The most hidden layers a network may have.
pub const MAX_HIDDEN_LAYERS: usize = 16;

/// The most probe samples a snapshot tracks (and the plane draws).
pub const MAX_PROBE: usize = 10_000;

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            dataset: "mnist".into(),
            upload: None,
            image_size: 0,
            model: ModelKind::Vae,
            arch: Arch::Mlp,
            activation: HiddenActivation::Relu,
            lr_schedule: super::schedule::LrSchedule::Constant,
            adam_epsilon: 1e-8,
            mean_output_bias: false,
            glorot_init: false,
            colour_offset: true,
            latent_dim: 2,
            hidden: vec![512, 256],
            likelihood: Likelihood::Bernoulli,
            likelihood_from_data: false,
            hyper: HyperParams::default(),
            epochs: 10,
            seed: 0,
            binarize: false,
            // In a browser the plane is drawn by WebGL, in software where the machine has no
            // GPU for it: 500 posteriors keep its frames affordable (the controls go to 10,000).
            probe_size: match crate::platform::IS_WEB {
                true => 500,
                false => 2000,
            },
            tau: 0.5,
            flow_layers: 4,
            class_mean_spread: 8.0,
            adversarial: AdversarialParams::default(),
            nll_samples: 100,
            nll_images: 1000,
            schedule: super::Schedule::default(),
        }
    }
}

impl TrainConfig {
    /// The dataset to load: the upload it carries when `dataset` names it, else
    /// [`DatasetSpec::parse`](crate::data::DatasetSpec::parse) of `dataset`. An `upload:`
    /// value without its files (a remembered config, a saved run's) is refused, saying so.
    pub fn dataset_spec(&self) -> Result<crate::data::DatasetSpec, crate::data::DataError> {
        use crate::data::{DataError, DatasetSpec, files::UPLOAD_PREFIX};
        match (&self.upload, self.dataset.strip_prefix(UPLOAD_PREFIX)) {
            (Some(upload), Some(_)) if upload.value() == self.dataset => {
                Ok(DatasetSpec::Upload(upload.clone()))
            }
            (_, Some(name)) => Err(DataError::NoData {
                path: std::path::PathBuf::from(name),
                reason: "these uploaded files are no longer held (a new page keeps none); \
                         upload them again"
                    .into(),
            }),
            (_, None) => Ok(DatasetSpec::parse(&self.dataset)),
        }
    }

    /// The explorer's defaults: it trains until stopped, and its evaluation stays cheap.
    pub fn explorer() -> Self {
        Self {
            epochs: 50,
            nll_samples: 100,
            nll_images: 200,
            ..Self::default()
        }
    }

    /// The likelihood a dataset gets when none was chosen: Bernoulli for grey images (the
    /// literature's figures for MNIST use it), a Gaussian with sigma 0.1 for colour ones (a
    /// normalised density of the values, where Bernoulli's is not; see docs/command-line.md,
    /// "Colour that shows").
    pub fn default_likelihood(colour: bool) -> Likelihood {
        match colour {
            true => Likelihood::Gaussian { sigma: 0.1 },
            false => Likelihood::Bernoulli,
        }
    }

    /// With [`TrainConfig::likelihood_from_data`], sets the likelihood for the data's colour
    /// (and clears the flag, so the settled choice is what a saved run records).
    pub fn settle_likelihood(&mut self, colour: bool) {
        if self.likelihood_from_data {
            self.likelihood = Self::default_likelihood(colour);
            self.likelihood_from_data = false;
        }
    }

    /// The model shape for images of `shape`.
    pub fn vae_config(&self, shape: ImageShape) -> VaeConfig {
        VaeConfig::new(shape.dim())
            .with_hidden(self.hidden.clone())
            .with_latent_dim(self.latent_dim)
            .with_conv(self.conv_shape(shape))
            .with_colour_offset(self.colour_offset)
            .with_tanh(self.activation == HiddenActivation::Tanh)
            .with_glorot(self.glorot_init)
    }

    /// The image shape the convolutions are built for (`None` for dense networks).
    fn conv_shape(&self, shape: ImageShape) -> Option<ImageShape> {
        (self.arch == Arch::Conv).then_some(shape)
    }

    /// A freshly initialised model of the configured family for images of `shape` and
    /// `classes` classes.
    pub fn build_model(&self, shape: ImageShape, classes: usize, device: &Device) -> Model {
        let input_dim = shape.dim();
        let nets = self.vae_config(shape);
        let d = self.latent_dim;
        // The AAE's discriminator judges codes alone: dense whatever the architecture.
        let disc = |inputs: usize, image: bool| {
            DiscriminatorConfig::new(inputs)
                .with_hidden(self.hidden.clone())
                .with_minibatch_std(self.adversarial.minibatch_std)
                .with_spectral_norm(self.adversarial.spectral_norm)
                .with_conv(self.conv_shape(shape).filter(|_| image))
                .init(device)
        };
        match self.model {
            ModelKind::Ae => {
                let (encoder, decoder) = nets.point(device);
                Model::Ae(Ae { encoder, decoder })
            }
            ModelKind::Vae => Model::Vae(nets.init(device)),
            ModelKind::Cvae => Model::Cvae(Cvae::new(
                nets.init(device),
                classes,
                d,
                self.class_mean_spread,
                device,
            )),
            ModelKind::BnVae => Model::BnVae(BnVae::new(nets.init(device), d, self.tau, device)),
            ModelKind::FVae => Model::FVae(FVae::new(&nets, self.flow_layers, device)),
            ModelKind::Gan => Model::Gan(Gan {
                generator: match self.adversarial.generator_batch_norm {
                    true => nets.normalised_generator(device),
                    false => nets.generator(device),
                },
                disc: disc(input_dim, true),
            }),
            ModelKind::Aae => {
                let (encoder, decoder) = nets.point(device);
                Model::Aae(Aae {
                    encoder,
                    decoder,
                    disc: disc(d, false),
                })
            }
            ModelKind::Ali => {
                let (encoder, decoder) = match self.adversarial.ali_gaussian_encoder {
                    true => {
                        let (e, d) = nets.gaussian(device);
                        (Encoder::Gaussian(e), d)
                    }
                    false => {
                        let (e, d) = nets.point(device);
                        (Encoder::Point(e), d)
                    }
                };
                Model::Ali(Ali {
                    encoder,
                    decoder,
                    disc: disc(input_dim + d, true),
                })
            }
        }
    }

    /// An upper estimate of the bytes training a model of these settings on images of `shape`
    /// holds: every weight four times (the weight, its gradient and Adam's two moments), twice
    /// over for a discriminator, plus a batch's activations kept for the backward pass. Computed
    /// from the settings alone, before anything is allocated, saturating instead of
    /// overflowing.
    pub fn memory_estimate(&self, shape: ImageShape) -> u128 {
        let dim = shape.dim() as u128;
        let d = self.latent_dim as u128;
        let (features, widths): (u128, Vec<u128>) = match self.arch {
            Arch::Mlp => (dim, self.hidden.iter().map(|&w| w as u128).collect()),
            Arch::Conv => {
                let plan = crate::model::conv::ConvPlan::new(shape);
                let last = self.hidden.last().copied().unwrap_or(0) as u128;
                (plan.encoded_features() as u128, vec![last])
            }
        };
        let dense = |a: u128, b: u128| a.saturating_mul(b).saturating_add(b);
        let mut chain = vec![features];
        chain.extend(&widths);
        let encoder: u128 = chain.windows(2).map(|w| dense(w[0], w[1])).sum();
        let last = *chain.last().unwrap_or(&features);
        // The decoder mirrors the encoder; two heads; the discriminator about one network more.
        let network = encoder.saturating_add(dense(last, d).saturating_mul(2));
        let weights = network.saturating_mul(3);
        let activations = chain
            .iter()
            .sum::<u128>()
            .saturating_mul(self.hyper.batch_size as u128)
            .saturating_mul(6);
        weights
            .saturating_mul(4)
            .saturating_add(activations)
            .saturating_mul(4)
    }

    /// Sets the family, with the settings that follow it: its adversarial defaults, and a
    /// Bernoulli likelihood in place of a trained-sigma Gaussian it cannot train.
    pub fn set_model(&mut self, model: ModelKind) {
        self.model = model;
        if model.draws().adversarial {
            self.adversarial = AdversarialParams::for_kind(model);
            // Their losses are not likelihoods: no validation schedule.
            self.schedule.validation = 0;
        }
        if !model.draws().trained_sigma && self.likelihood == Likelihood::GaussianTrained {
            self.likelihood = Likelihood::Bernoulli;
        }
        // Without importance weights the objective is the family's own.
        if !model.has_importance_weights() {
            self.hyper.iw_samples = 1;
        }
    }

    /// Checks the settings, saying what is wrong in words.
    pub fn validate(&self) -> Result<(), String> {
        let h = &self.hyper;
        if !(self.adam_epsilon > 0.0 && self.adam_epsilon <= 1.0) {
            return Err(format!(
                "Adam's epsilon must be in (0, 1], not {}",
                self.adam_epsilon
            ));
        }
        if self.likelihood == Likelihood::GaussianTrained && !self.model.draws().trained_sigma {
            return Err(format!(
                "the Gaussian with a trained sigma belongs to the f-VAE; the {} needs a Bernoulli or fixed Gaussian likelihood",
                self.model.label()
            ));
        }
        if h.iw_samples == 0 || h.iw_samples > MAX_IW_SAMPLES {
            return Err(format!(
                "importance-weighted draws must be 1 to {MAX_IW_SAMPLES}, not {}",
                h.iw_samples
            ));
        }
        if h.iw_samples > 1 && !self.model.has_importance_weights() {
            return Err(format!(
                "the importance-weighted objective needs a Gaussian posterior (VAE, CVAE, BN-VAE, f-VAE); the {} has none: use 1 draw",
                self.model.label()
            ));
        }
        if self.model == ModelKind::BnVae && !(self.tau > 0.0 && self.tau < 1.0) {
            return Err(format!("BN-VAE tau must be in (0, 1), not {}", self.tau));
        }
        if self.model.draws().adversarial {
            let a = &self.adversarial;
            if !(a.lambda.is_finite() && a.lambda >= 0.0) {
                return Err(format!(
                    "lambda must be finite and at least 0, not {}",
                    a.lambda
                ));
            }
            if a.d_steps == 0 || a.d_steps > 100 || a.g_steps == 0 || a.g_steps > 100 {
                return Err(format!(
                    "discriminator and generator steps must be 1 to 100, not {} and {}",
                    a.d_steps, a.g_steps
                ));
            }
            if !(a.lr.is_finite() && a.lr > 0.0 && a.lr < 10.0) {
                return Err(format!("learning rate must be in (0, 10), not {}", a.lr));
            }
        }
        if self.model == ModelKind::FVae {
            if self.latent_dim < 2 {
                return Err(
                    "the f-VAE's coupling layers need a latent dimension of at least 2".into(),
                );
            }
            if self.flow_layers == 0 || self.flow_layers > 32 {
                return Err(format!(
                    "the f-VAE needs 1 to 32 coupling layers, not {}",
                    self.flow_layers
                ));
            }
        }
        self.schedule.validate()?;
        if self.image_size != 0 && !(4..=crate::data::folder::MAX_SIDE).contains(&self.image_size) {
            return Err(format!(
                "the image size must be 4 to {} pixels (or 0: from the data), not {}",
                crate::data::folder::MAX_SIDE,
                self.image_size
            ));
        }
        if self.schedule.is_on() && self.model.draws().adversarial {
            return Err(format!(
                "the validation schedule follows a likelihood, and the {} is trained adversarially",
                self.model.label()
            ));
        }
        if !(self.class_mean_spread.is_finite() && (0.0..=100.0).contains(&self.class_mean_spread))
        {
            return Err(format!(
                "the class means' initial spread must be 0 to 100, not {}",
                self.class_mean_spread
            ));
        }
        if self.probe_size == 0 || self.probe_size > MAX_PROBE {
            return Err(format!(
                "the probe set holds 1 to {MAX_PROBE} samples, not {}",
                self.probe_size
            ));
        }
        if self.latent_dim == 0 || self.latent_dim > 512 {
            return Err(format!(
                "latent dimension must be 1 to 512, not {}",
                self.latent_dim
            ));
        }
        if self.hidden.is_empty()
            || self.hidden.len() > MAX_HIDDEN_LAYERS
            || self.hidden.iter().any(|&w| w == 0 || w > 16_384)
        {
            return Err(format!(
                "hidden sizes must be 1 to {MAX_HIDDEN_LAYERS} layers of 1 to 16384 each, not {:?}",
                self.hidden
            ));
        }
        if !(h.lr.is_finite() && h.lr > 0.0 && h.lr < 10.0) {
            return Err(format!("learning rate must be in (0, 10), not {}", h.lr));
        }
        if h.batch_size == 0 || h.batch_size > 65_536 {
            return Err(format!(
                "batch size must be 1 to 65536, not {}",
                h.batch_size
            ));
        }
        let mean_lr = h.lr * h.class_mean_lr_scale;
        if !(mean_lr.is_finite() && mean_lr > 0.0 && mean_lr < 10.0) {
            return Err(format!(
                "the class means' learning rate (lr x scale) must be in (0, 10), not {mean_lr}"
            ));
        }
        if self.model.draws().batch_statistics && h.batch_size < 2 {
            return Err(format!(
                "the {} normalises over the batch, so its batch size must be at least 2, not {}",
                self.model.label(),
                h.batch_size
            ));
        }
        if !(h.beta.is_finite() && h.beta >= 0.0) {
            return Err(format!(
                "beta must be finite and at least 0, not {}",
                h.beta
            ));
        }
        if let Likelihood::Gaussian { sigma } = self.likelihood
            && !(sigma.is_finite() && sigma > 0.0)
        {
            return Err(format!("Gaussian sigma must be positive, not {sigma}"));
        }
        if let Likelihood::Logistic { scale } = self.likelihood
            && !(scale.is_finite() && scale > 0.0 && scale <= 10.0)
        {
            return Err(format!(
                "the logistic scale must be in (0, 10], not {scale}"
            ));
        }
        Ok(())
    }

    /// Every check of a config against the data it will train on: [`TrainConfig::validate`],
    /// then labels for the families that need them, the memory the model takes, the images'
    /// size for the convolutional networks, two images for batch statistics, and the long
    /// run's schedule against the training set. The one place a run is refused before it
    /// starts (`Trainer::new` calls it).
    pub fn validate_for(&self, data: &crate::data::Dataset) -> Result<(), String> {
        self.validate()?;
        if self.model.needs_labels() && !data.is_labelled() {
            return Err(format!(
                "the {} needs class labels, and {} has none",
                self.model.label(),
                data.name
            ));
        }
        let shape = data.train.shape();
        let need = self.memory_estimate(shape);
        if let Some(have) = crate::platform::available_memory()
            && need > have
        {
            let gib = |b: u128| b as f64 / (1u128 << 30) as f64;
            return Err(format!(
                "a model of these sizes (hidden {:?}, latent {}) on {} needs about {:.1} GiB, more than the {:.1} GiB this machine has available",
                self.hidden,
                self.latent_dim,
                data.name,
                gib(need),
                gib(have)
            ));
        }
        if self.arch == crate::model::Arch::Conv
            && shape.width.min(shape.height) < crate::model::conv::MIN_SIDE
        {
            return Err(format!(
                "the convolutional networks need images of at least {0}x{0} pixels, and {1} has {2}x{3}",
                crate::model::conv::MIN_SIDE,
                data.name,
                shape.width,
                shape.height
            ));
        }
        if self.model.draws().batch_statistics && data.train.len() < 2 {
            return Err(format!(
                "the {} normalises over the batch and {} has fewer than two training images",
                self.model.label(),
                data.name
            ));
        }
        self.schedule
            .check(data.train.len(), self.hyper.batch_size)
            .map_err(|e| format!("{}: {e}", data.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gans_normalisations_are_its_defaults_but_not_those_of_older_runs() {
        let mut config = TrainConfig::default();
        config.set_model(ModelKind::Gan);
        assert!(config.adversarial.generator_batch_norm && config.adversarial.spectral_norm);
        let Model::Gan(g) = config.build_model(ImageShape::new(1, 3, 4), 1, &Device::flex()) else {
            panic!("a GAN was asked for");
        };
        assert_eq!(g.generator.norms.len(), config.hidden.len());
        assert_eq!(g.disc.spectral.len(), config.hidden.len() + 1);
        // The other families keep plain networks.
        for kind in [ModelKind::Aae, ModelKind::Ali] {
            let a = AdversarialParams::for_kind(kind);
            assert!(!a.generator_batch_norm && !a.spectral_norm, "{kind:?}");
        }
        // A run saved before these settings existed had neither.
        let mut json = serde_json::to_value(&config.adversarial).expect("serialises");
        let fields = json.as_object_mut().expect("an object");
        fields.remove("generator_batch_norm");
        fields.remove("spectral_norm");
        let old: AdversarialParams = serde_json::from_value(json).expect("reads");
        assert!(!old.generator_batch_norm && !old.spectral_norm);
        assert_eq!(old.lambda, config.adversarial.lambda);
    }

    #[test]
    fn colour_offsets_are_the_default_but_not_that_of_older_runs() {
        let config = TrainConfig {
            arch: Arch::Conv,
            ..TrainConfig::default()
        };
        assert!(config.colour_offset);
        let colour = |config: &TrainConfig, channels| {
            let Model::Vae(v) =
                config.build_model(ImageShape::new(channels, 8, 8), 1, &Device::flex())
            else {
                panic!("a VAE was asked for");
            };
            v.decoder.colour.is_some()
        };
        assert!(colour(&config, 3), "colour images get the offset");
        assert!(!colour(&config, 1), "grey images do not");
        let mut json = serde_json::to_value(&config).expect("serialises");
        json.as_object_mut()
            .expect("an object")
            .remove("colour_offset");
        let old: TrainConfig = serde_json::from_value(json).expect("reads");
        assert!(!old.colour_offset && !colour(&old, 3));
    }

    #[test]
    fn an_unchosen_likelihood_follows_the_datas_colour() {
        let mut auto = TrainConfig {
            likelihood_from_data: true,
            ..TrainConfig::default()
        };
        let mut grey = auto.clone();
        auto.settle_likelihood(true);
        assert_eq!(auto.likelihood, Likelihood::Gaussian { sigma: 0.1 });
        assert!(!auto.likelihood_from_data, "settled once");
        grey.settle_likelihood(false);
        assert_eq!(grey.likelihood, Likelihood::Bernoulli);
        // A chosen likelihood stays, colour or not.
        let mut chosen = TrainConfig {
            likelihood: Likelihood::Logistic { scale: 0.05 },
            ..TrainConfig::default()
        };
        chosen.settle_likelihood(true);
        assert_eq!(chosen.likelihood, Likelihood::Logistic { scale: 0.05 });
    }

    #[test]
    fn the_minibatch_spread_setting_reaches_the_discriminator() {
        let width = |minibatch_std| {
            let mut config = TrainConfig::default();
            config.set_model(ModelKind::Gan);
            config.adversarial.minibatch_std = minibatch_std;
            let model = config.build_model(ImageShape::new(1, 3, 4), 1, &Device::flex());
            let Model::Gan(g) = model else {
                panic!("a GAN was asked for");
            };
            g.disc.output.weight.dims()[0]
        };
        // The last hidden width is 256; the spread is one more input to the logit.
        assert_eq!(width(false), 256);
        assert_eq!(width(true), 257);
    }

    #[test]
    fn the_class_means_spread_is_bounded() {
        let with = |class_mean_spread| TrainConfig {
            model: ModelKind::Cvae,
            class_mean_spread,
            ..TrainConfig::default()
        };
        assert!(with(0.0).validate().is_ok());
        assert!(with(3.0).validate().is_ok());
        for bad in [-1.0, f32::NAN, 1e6] {
            assert!(with(bad).validate().is_err_and(|e| e.contains("spread")));
        }
    }

    #[test]
    fn an_adversarial_family_has_no_validation_schedule() {
        let mut config = TrainConfig {
            schedule: super::super::Schedule {
                validation: 1000,
                ..Default::default()
            },
            ..TrainConfig::default()
        };
        assert!(config.validate().is_ok());
        let refused = TrainConfig {
            model: ModelKind::Gan,
            ..config.clone()
        };
        assert!(refused.validate().is_err_and(|e| e.contains("validation")));
        config.set_model(ModelKind::Gan);
        assert!(!config.schedule.is_on());
        assert!(config.validate().is_ok());
    }

    #[test]
    fn probe_set_size_is_bounded() {
        let with = |probe_size| TrainConfig {
            probe_size,
            ..TrainConfig::default()
        };
        assert!(with(MAX_PROBE).validate().is_ok());
        assert!(with(0).validate().is_err());
        assert!(
            with(MAX_PROBE + 1)
                .validate()
                .is_err_and(|e| e.contains("probe"))
        );
    }

    #[test]
    fn warm_up_rises_linearly_to_beta() {
        let h = HyperParams {
            beta: 2.0,
            kl_warmup_steps: 4,
            ..Default::default()
        };
        let w: Vec<f32> = (0..6).map(|s| h.kl_weight(s)).collect();
        assert_eq!(w, vec![0.5, 1.0, 1.5, 2.0, 2.0, 2.0]);
    }

    #[test]
    fn old_configs_load_with_defaults_and_bad_values_are_named() {
        let c: TrainConfig = serde_json::from_str(r#"{"latent_dim": 3}"#).unwrap();
        assert_eq!(c.latent_dim, 3);
        assert_eq!(c.hidden, vec![512, 256]);
        let mut bad = c.clone();
        bad.hyper.lr = -1.0;
        assert!(bad.validate().unwrap_err().contains("learning rate"));
    }
}
