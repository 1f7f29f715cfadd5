//! The catalogue of model families: each family's name, label, help text, what it draws
//! ([`Draws`]) and its adversarial settings' defaults, in one table ([`ModelKind::info`])
//! that the command line, the window and the trainer all read.

use serde::{Deserialize, Serialize};

use crate::model::adversarial::AliLoss;

/// A model family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// The plain autoencoder: a point per image, reconstruction only (seeds/003).
    Ae,
    /// The variational autoencoder with a Gaussian posterior and a standard normal prior.
    #[default]
    Vae,
    /// The CVAE with a learned mean per class (seeds/000).
    Cvae,
    /// The BN-VAE, whose KL has a floor (seeds/001).
    BnVae,
    /// The f-VAE, with a flow-based posterior (seeds/002).
    FVae,
    /// The GAN with the old-generator regulariser (seeds/004).
    Gan,
    /// The adversarial autoencoder (seeds/004).
    Aae,
    /// ALI / BiGAN (seeds/004).
    Ali,
}

/// How a family's posteriors are drawn in the latent plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PosteriorShape {
    /// A point per sample (no uncertainty).
    Point,
    /// An ellipse with centre mu and semi-axes sigma.
    Ellipse,
    /// The sigma1-circle around E(x) pushed through the flow.
    Warped,
    /// No encoder: the plane shows fixed prior samples instead.
    PriorSamples,
}

/// What a family can draw besides its posteriors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Draws {
    /// How each posterior looks.
    pub posterior: PosteriorShape,
    /// Whether the latent plane shows learned class means (and sampling picks a class).
    pub class_means: bool,
    /// Whether the KL curve shows a floor and the per-dimension scales.
    pub kl_floor: bool,
    /// Whether a pre-flow space exists to switch to.
    pub pre_flow: bool,
    /// Whether the family has a KL term (and so a negative ELBO).
    pub kl: bool,
    /// Whether the family encodes images (and so has reconstructions and prior coverage).
    pub encoder: bool,
    /// Whether the family trains against a discriminator.
    pub adversarial: bool,
    /// Whether fixed prior samples are drawn beside the codes.
    pub prior_samples: bool,
    /// Whether the decoder's Gaussian standard deviation may be trained (the f-VAE's sigma2).
    pub trained_sigma: bool,
    /// Whether the loss normalises over the batch (the BN-VAE): its batches must be whole
    /// (a ragged last one is dropped) and hold at least two samples.
    pub batch_statistics: bool,
}

impl ModelKind {
    /// Every family, in menu order.
    pub const ALL: [ModelKind; 8] = [
        ModelKind::Ae,
        ModelKind::Vae,
        ModelKind::Cvae,
        ModelKind::BnVae,
        ModelKind::FVae,
        ModelKind::Gan,
        ModelKind::Aae,
        ModelKind::Ali,
    ];

    /// The family's row in the catalogue: everything about it that is not behaviour (that is
    /// in its own file under `model/`). Adding a family means a row here and its file.
    pub fn info(self) -> FamilyInfo {
        // What a Gaussian-posterior family draws; the rows below say how each differs.
        const GAUSSIAN: Draws = Draws {
            posterior: PosteriorShape::Ellipse,
            class_means: false,
            kl_floor: false,
            pre_flow: false,
            kl: true,
            encoder: true,
            adversarial: false,
            prior_samples: false,
            trained_sigma: false,
            batch_statistics: false,
        };
        const CODES: Draws = Draws {
            posterior: PosteriorShape::Point,
            kl: false,
            ..GAUSSIAN
        };
        const ADVERSARIAL: AdversarialParams = AdversarialParams {
            lambda: 5.0,
            d_steps: 1,
            g_steps: 2,
            lr: 2e-4,
            ali_loss: AliLoss::Minimax,
            ali_gaussian_encoder: false,
            minibatch_std: false,
            generator_batch_norm: false,
            spectral_norm: false,
        };
        let row = |name, label, help, draws, adversarial| FamilyInfo {
            name,
            label,
            help,
            draws,
            adversarial,
        };
        match self {
            ModelKind::Ae => row(
                "ae",
                "AE",
                "plain autoencoder: a point per image, reconstruction only",
                CODES,
                ADVERSARIAL,
            ),
            ModelKind::Vae => row(
                "vae",
                "VAE",
                "variational autoencoder",
                GAUSSIAN,
                ADVERSARIAL,
            ),
            ModelKind::Cvae => row(
                "cvae",
                "CVAE (class means)",
                "CVAE with a learned mean per class",
                Draws {
                    class_means: true,
                    ..GAUSSIAN
                },
                ADVERSARIAL,
            ),
            ModelKind::BnVae => row(
                "bn-vae",
                "BN-VAE",
                "BN-VAE: batch-normalised posterior heads with a KL floor",
                Draws {
                    kl_floor: true,
                    batch_statistics: true,
                    ..GAUSSIAN
                },
                ADVERSARIAL,
            ),
            ModelKind::FVae => row(
                "f-vae",
                "f-VAE (flow)",
                "f-VAE: a flow-based posterior",
                Draws {
                    posterior: PosteriorShape::Warped,
                    pre_flow: true,
                    trained_sigma: true,
                    ..GAUSSIAN
                },
                ADVERSARIAL,
            ),
            // Two generator steps per phase: the regulariser is zero on a phase's first step;
            // lambda 5 as in the seed's experiments. Batch norm in the generator, spectral norm
            // and two steps for the discriminator keep the samples spread over the digits
            // (docs/measured.md, "The adversarial families").
            ModelKind::Gan => row(
                "gan",
                "GAN",
                "GAN with the old-generator regulariser",
                Draws {
                    posterior: PosteriorShape::PriorSamples,
                    encoder: false,
                    adversarial: true,
                    ..CODES
                },
                AdversarialParams {
                    d_steps: 2,
                    generator_batch_norm: true,
                    spectral_norm: true,
                    ..ADVERSARIAL
                },
            ),
            // One step per phase, the reconstruction error weighed by 1.
            ModelKind::Aae => row(
                "aae",
                "AAE",
                "adversarial autoencoder",
                Draws {
                    adversarial: true,
                    ..CODES
                },
                AdversarialParams {
                    lambda: 1.0,
                    g_steps: 1,
                    ..ADVERSARIAL
                },
            ),
            ModelKind::Ali => row(
                "ali",
                "ALI / BiGAN",
                "ALI / BiGAN",
                Draws {
                    adversarial: true,
                    prior_samples: true,
                    ..CODES
                },
                ADVERSARIAL,
            ),
        }
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// A short label for menus and legends.
    pub fn label(self) -> &'static str {
        self.info().label
    }

    /// What the family draws.
    pub fn draws(self) -> Draws {
        self.info().draws
    }

    /// The family's one-line description, for help texts and tooltips.
    pub fn help(self) -> &'static str {
        self.info().help
    }

    /// Whether the family has importance weights `p(x|z) p(z) / q(z|x)` (a Gaussian posterior
    /// and a prior density): the importance-weighted objective and the test likelihood.
    pub fn has_importance_weights(self) -> bool {
        matches!(
            self,
            ModelKind::Vae | ModelKind::Cvae | ModelKind::BnVae | ModelKind::FVae
        )
    }

    /// Whether the family needs labelled data.
    pub fn needs_labels(self) -> bool {
        self.draws().class_means
    }
}

/// A family's row in the catalogue ([`ModelKind::info`]).
#[derive(Clone, Debug, PartialEq)]
pub struct FamilyInfo {
    /// The name used on the command line and in saved configs.
    pub name: &'static str,
    /// A short label for menus and legends.
    pub label: &'static str,
    /// A one-line description, for help texts and tooltips.
    pub help: &'static str,
    /// What it draws and what it has (its capabilities).
    pub draws: Draws,
    /// Its adversarial settings' defaults (unused by the families without a discriminator).
    pub adversarial: AdversarialParams,
}

/// Settings of the adversarial families (GAN, AAE, ALI).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdversarialParams {
    /// GAN: weight of the old-generator regulariser on the per-pixel mean squared error
    /// (0 turns it off). AAE: weight of the squared reconstruction error.
    pub lambda: f32,
    /// Discriminator steps per iteration.
    pub d_steps: usize,
    /// Generator (and encoder) steps per iteration: one generator phase. The GAN's
    /// regulariser is zero on a phase's first step, so it acts only with 2 or more.
    pub g_steps: usize,
    /// Adam's learning rate for these families (with beta1 = 0.5).
    pub lr: f64,
    /// ALI's encoder/generator loss.
    pub ali_loss: AliLoss,
    /// ALI: a Gaussian encoder q(z|x) (the article's derivation allows one) instead of a
    /// deterministic E(x).
    pub ali_gaussian_encoder: bool,
    /// The discriminator also sees the spread of its features within the real and the
    /// generated rows (minibatch standard deviation), so that it can tell a collapsed
    /// generator. Runs saved without this setting had none.
    #[serde(default)]
    pub minibatch_std: bool,
    /// GAN: batch normalisation between each of the generator's hidden layers and its ReLU
    /// (as in DCGAN's generator). Runs saved without this setting had none.
    #[serde(default)]
    pub generator_batch_norm: bool,
    /// Spectral normalisation of the discriminator's dense layers. Runs saved without this
    /// setting had none.
    #[serde(default)]
    pub spectral_norm: bool,
}

impl Default for AdversarialParams {
    /// The GAN's defaults.
    fn default() -> Self {
        ModelKind::Gan.info().adversarial
    }
}

impl AdversarialParams {
    /// The defaults for `kind`, from the catalogue.
    pub fn for_kind(kind: ModelKind) -> Self {
        kind.info().adversarial
    }
}
