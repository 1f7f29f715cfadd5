//! The command line: `train`, `eval`, `bench` and `reproduce`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::ProgressBar;

use crate::backend::BackendChoice;
use crate::data::{Dataset, DatasetSpec};
use crate::model::adversarial::AliLoss;
use crate::model::{Arch, Likelihood};
use crate::run::RunView;
use crate::train::schedule::LrSchedule;
use crate::train::{
    AdversarialParams, HiddenActivation, HyperParams, ModelKind, Schedule, TrainConfig, Trainer,
    checkpoint,
};
use crate::worker::{Options, Worker};

pub mod drive;
use drive::{Driver, bar, colour_word, print_test};

/// Latent Atlas: watch generative autoencoders learn.
#[derive(Parser, Debug)]
#[command(
    name = "latent-atlas",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do (default: open the explorer window).
    #[command(subcommand)]
    pub command: Option<Commands>,
    /// Window options (when no subcommand is given).
    #[command(flatten)]
    pub gui: crate::gui::GuiArgs,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Train a model headlessly and write metrics, a checkpoint and images into a folder.
    Train(Box<TrainArgs>),
    /// Reload a run's checkpoint and print its test metrics.
    Eval(EvalArgs),
    /// Measure training throughput and decoding latency.
    Bench(crate::bench::BenchArgs),
    /// Re-run every comparison the documentation makes over several seeds and write one table.
    Reproduce(crate::reproduce::ReproduceArgs),
    /// Serve this machine's device to remote training (`--backend remote:ws://HOST:PORT`;
    /// builds with `--features remote`).
    Serve(crate::serve::ServeArgs),
}

/// ALI's encoder/generator loss on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum AliLossArg {
    /// The seed's derived loss: -log D(x, E(x)) - log D(G(z), z).
    Derived,
    /// The standard minimax form: log D(x, E(x)) + log(1 - D(G(z), z)).
    Minimax,
    /// The non-saturating form: -log D(G(z), z) - log(1 - D(x, E(x))).
    NonSaturating,
}

/// Decoder likelihoods on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LikelihoodArg {
    /// Bernoulli (binary cross-entropy with logits).
    Bernoulli,
    /// Gaussian with the standard deviation `--gaussian-sigma`.
    Gaussian,
    /// Gaussian whose standard deviation is trained (the f-VAE's sigma2).
    GaussianTrained,
    /// Discretised logistic over the 256 levels of a byte, scale `--logistic-scale`: a
    /// normalised likelihood for grey levels and colour.
    Logistic,
}

/// The dense hidden layers' activation on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ActivationArg {
    /// `max(v, 0)`.
    Relu,
    /// `tanh v` (Burda et al.'s networks).
    Tanh,
}

/// The learning rate's course on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LrScheduleArg {
    /// The rate `--lr` throughout.
    Constant,
    /// Burda et al. (2016): stage i = 0..7 lasts 3^i epochs at 10^(-i/7) times `--lr`, 3,280
    /// epochs in all (the default `--epochs` then; a smaller `--epochs` stops it early).
    Burda,
}

/// `latent-atlas train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// `mnist`, `fashion-mnist`, `shapes`, a folder of IDX files or of images, a `.npz` or `.npy`
    /// file, or a `.zip` of any of these.
    #[arg(long, default_value_t = TrainConfig::default().dataset)]
    pub dataset: String,
    /// Image folders: scale the images so that their larger side is this many pixels, 4 to
    /// 64 (0: the most common size, capped at 64).
    #[arg(long, default_value_t = 0)]
    pub image_size: usize,
    /// Model family.
    #[arg(long, value_parser = model_parser(), default_value = TrainConfig::default().model.name())]
    pub model: ModelKind,
    /// The networks around the latent space.
    #[arg(long, value_parser = arch_parser(), default_value = "mlp")]
    pub arch: Arch,
    /// With `--arch conv` on colour images: the decoder's colour offset, one logit per channel
    /// for the whole image from the last hidden layer (without it the convolutional decoder
    /// does not learn hue on `shapes`). On by default.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub colour_offset: Option<bool>,
    /// Leave out the colour offset (the same as `--colour-offset false`).
    #[arg(long, conflicts_with = "colour_offset")]
    pub no_colour_offset: bool,
    /// Latent dimension.
    #[arg(long, default_value_t = TrainConfig::default().latent_dim)]
    pub latent_dim: usize,
    /// Hidden layer widths, comma-separated (the decoder mirrors them).
    #[arg(long, value_delimiter = ',', default_values_t = TrainConfig::default().hidden)]
    pub hidden: Vec<usize>,
    /// The activation after every dense hidden layer.
    #[arg(long, value_enum, default_value = "relu")]
    pub activation: ActivationArg,
    /// Passes over the training split (with `--resume`, the total to reach; default: the
    /// run's own; with `--lr-schedule burda`, its 3,280) [default: 10].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Samples per step.
    #[arg(long, default_value_t = HyperParams::default().batch_size)]
    pub batch_size: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = HyperParams::default().lr)]
    pub lr: f64,
    /// The learning rate's course over the epochs.
    #[arg(long, value_enum, default_value = "constant")]
    pub lr_schedule: LrScheduleArg,
    /// Adam's epsilon, added to the root of the second moment (Burda et al.: 1e-4).
    #[arg(long, default_value_t = TrainConfig::default().adam_epsilon)]
    pub adam_epsilon: f32,
    /// Start the dense decoder's output bias at the logit of each pixel's mean over the
    /// training images (clipped to [0.001, 0.999]), as Burda et al.'s code does.
    #[arg(long)]
    pub mean_output_bias: bool,
    /// Glorot's uniform initialisation and zero biases for the dense layers (Burda et al.'s),
    /// instead of PyTorch's default.
    #[arg(long)]
    pub glorot_init: bool,
    /// Seed of every random choice.
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    pub seed: u64,
    /// Weight of the KL term.
    #[arg(long, default_value_t = HyperParams::default().beta)]
    pub beta: f32,
    /// Steps over which the KL weight rises linearly from 0 to beta.
    #[arg(long, default_value_t = HyperParams::default().kl_warmup_steps)]
    pub kl_warmup_steps: u64,
    /// Train on the importance-weighted bound with this many posterior draws per image
    /// (Burda et al. 2016; 1: the ELBO). VAE, CVAE, BN-VAE and f-VAE.
    #[arg(long, default_value_t = HyperParams::default().iw_samples)]
    pub iw_samples: usize,
    /// CVAE: the standard deviation of the class means' initial draw.
    #[arg(long, default_value_t = TrainConfig::default().class_mean_spread)]
    pub class_mean_spread: f32,
    /// CVAE: the class means' learning rate as a multiple of `--lr`.
    #[arg(long, default_value_t = HyperParams::default().class_mean_lr_scale)]
    pub class_mean_lr_scale: f64,
    /// Decoder likelihood (default: Bernoulli for grey images, Gaussian for colour ones).
    #[arg(long, value_enum)]
    pub likelihood: Option<LikelihoodArg>,
    /// Standard deviation of the Gaussian likelihood.
    #[arg(long, default_value_t = 0.1)]
    pub gaussian_sigma: f32,
    /// Scale of the discretised logistic likelihood, in units of [0, 1].
    #[arg(long, default_value_t = crate::model::vae::DEFAULT_LOGISTIC_SCALE)]
    pub logistic_scale: f32,
    /// BN-VAE: the least share tau of the unit variance kept by mu, in (0, 1).
    #[arg(long, default_value_t = TrainConfig::default().tau)]
    pub tau: f32,
    /// f-VAE: number of affine coupling layers.
    #[arg(long, default_value_t = TrainConfig::default().flow_layers)]
    pub flow_layers: usize,
    /// GAN: weight of the old-generator regulariser on the per-pixel MSE (0: off; default 5).
    /// AAE: weight of the squared reconstruction error (default 1).
    #[arg(long)]
    pub lambda: Option<f32>,
    /// Adversarial families: discriminator steps per iteration (GAN default 2, else 1).
    #[arg(long)]
    pub d_steps: Option<usize>,
    /// Adversarial families: generator (and encoder) steps per iteration (GAN default 2: the
    /// regulariser is zero on a phase's first step).
    #[arg(long)]
    pub g_steps: Option<usize>,
    /// Adversarial families: Adam's learning rate (beta1 = 0.5).
    #[arg(long, default_value_t = AdversarialParams::default().lr)]
    pub adv_lr: f64,
    /// ALI's encoder/generator loss.
    #[arg(long, value_enum, default_value = "minimax")]
    pub ali_loss: AliLossArg,
    /// ALI: a Gaussian encoder q(z|x) instead of a deterministic one.
    #[arg(long)]
    pub ali_gaussian_encoder: bool,
    /// Adversarial families: the discriminator also sees the spread of its features within
    /// the real and within the generated rows (minibatch standard deviation).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub minibatch_std: Option<bool>,
    /// Leave out the minibatch standard deviation.
    #[arg(long, conflicts_with = "minibatch_std")]
    pub no_minibatch_std: bool,
    /// GAN: batch normalisation before each of the generator's hidden ReLUs (on by default for
    /// the GAN, off for the others).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub generator_batch_norm: Option<bool>,
    /// Leave out the generator's batch normalisation.
    #[arg(long, conflicts_with = "generator_batch_norm")]
    pub no_generator_batch_norm: bool,
    /// Adversarial families: spectral normalisation of the discriminator's dense layers (on by
    /// default for the GAN, off for the others).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub spectral_norm: Option<bool>,
    /// Leave out the spectral normalisation.
    #[arg(long, conflicts_with = "spectral_norm")]
    pub no_spectral_norm: bool,
    /// Generated samples the evaluator scores after each epoch (0 skips the evaluator).
    #[arg(long, default_value_t = 1000)]
    pub score_samples: usize,
    /// Temperature of the scored samples.
    #[arg(long, default_value_t = 1.0)]
    pub score_temperature: f32,
    /// Dynamic binarisation (a fresh Bernoulli draw of each training batch).
    #[arg(long)]
    pub binarize: bool,
    /// Importance samples per image for the test log-likelihood (0 skips it).
    #[arg(long, default_value_t = TrainConfig::default().nll_samples)]
    pub nll_samples: usize,
    /// Test images for the log-likelihood estimate.
    #[arg(long, default_value_t = TrainConfig::default().nll_images)]
    pub nll_images: usize,
    /// Long runs: training images held out (the last ones) as a validation split, whose
    /// negative ELBO after each epoch decays the learning rate and stops training (0: off).
    #[arg(long, default_value_t = 0)]
    pub validation: usize,
    /// Long runs: epochs without a better validation loss that count as a plateau.
    #[arg(long, default_value_t = Schedule::default().patience)]
    pub patience: usize,
    /// Long runs: factor on the learning rate at each plateau (1: stop at the first).
    #[arg(long, default_value_t = Schedule::default().lr_decay)]
    pub lr_decay: f64,
    /// Long runs: plateaus met with a decay before the next one stops training (with the
    /// best validation weights put back).
    #[arg(long, default_value_t = Schedule::default().max_decays)]
    pub max_decays: usize,
    /// Compute backend: cpu, gpu, auto, flex, ndarray, or remote:ws://HOST:PORT (a
    /// `latent-atlas serve` server; token from LATENT_ATLAS_TOKEN or LATENT_ATLAS_TOKEN_FILE).
    #[arg(long, default_value = "cpu")]
    pub backend: BackendChoice,
    /// Output folder (created if missing; with `--resume`, the run's folder unless given).
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run saved in this folder where it stopped: its weights, optimiser, random
    /// streams, schedule and metrics.csv go on as if it had never stopped. Its settings are
    /// the run's own; `--epochs` sets the total to reach, and `--backend` and the scoring
    /// options apply. A run saved before this option existed continues with a fresh optimiser.
    #[arg(long, value_name = "RUN")]
    pub resume: Option<PathBuf>,
}

impl TrainArgs {
    /// The run's settings.
    pub fn config(&self) -> TrainConfig {
        TrainConfig {
            dataset: self.dataset.clone(),
            image_size: self.image_size,
            model: self.model,
            arch: self.arch,
            colour_offset: switch(self.colour_offset, self.no_colour_offset)
                .unwrap_or(TrainConfig::default().colour_offset),
            latent_dim: self.latent_dim,
            hidden: self.hidden.clone(),
            activation: match self.activation {
                ActivationArg::Relu => HiddenActivation::Relu,
                ActivationArg::Tanh => HiddenActivation::Tanh,
            },
            likelihood_from_data: self.likelihood.is_none(),
            likelihood: match self.likelihood.unwrap_or(LikelihoodArg::Bernoulli) {
                LikelihoodArg::Bernoulli => Likelihood::Bernoulli,
                LikelihoodArg::Gaussian => Likelihood::Gaussian {
                    sigma: self.gaussian_sigma,
                },
                LikelihoodArg::GaussianTrained => Likelihood::GaussianTrained,
                LikelihoodArg::Logistic => Likelihood::Logistic {
                    scale: self.logistic_scale,
                },
            },
            hyper: HyperParams {
                lr: self.lr,
                batch_size: self.batch_size,
                beta: self.beta,
                kl_warmup_steps: self.kl_warmup_steps,
                class_mean_lr_scale: self.class_mean_lr_scale,
                iw_samples: self.iw_samples,
            },
            epochs: self.epochs.unwrap_or(match self.lr_schedule {
                LrScheduleArg::Burda => LrSchedule::BURDA_EPOCHS,
                LrScheduleArg::Constant => TrainConfig::default().epochs,
            }),
            lr_schedule: match self.lr_schedule {
                LrScheduleArg::Constant => LrSchedule::Constant,
                LrScheduleArg::Burda => LrSchedule::Burda,
            },
            adam_epsilon: self.adam_epsilon,
            mean_output_bias: self.mean_output_bias,
            glorot_init: self.glorot_init,
            seed: self.seed,
            binarize: self.binarize,
            nll_samples: self.nll_samples,
            nll_images: self.nll_images,
            tau: self.tau,
            flow_layers: self.flow_layers,
            class_mean_spread: self.class_mean_spread,
            schedule: Schedule {
                validation: self.validation,
                patience: self.patience,
                lr_decay: self.lr_decay,
                max_decays: self.max_decays,
            },
            adversarial: {
                let defaults = AdversarialParams::for_kind(self.model);
                AdversarialParams {
                    lambda: self.lambda.unwrap_or(defaults.lambda),
                    d_steps: self.d_steps.unwrap_or(defaults.d_steps),
                    g_steps: self.g_steps.unwrap_or(defaults.g_steps),
                    lr: self.adv_lr,
                    ali_gaussian_encoder: self.ali_gaussian_encoder,
                    minibatch_std: switch(self.minibatch_std, self.no_minibatch_std)
                        .unwrap_or(defaults.minibatch_std),
                    generator_batch_norm: switch(
                        self.generator_batch_norm,
                        self.no_generator_batch_norm,
                    )
                    .unwrap_or(defaults.generator_batch_norm),
                    spectral_norm: switch(self.spectral_norm, self.no_spectral_norm)
                        .unwrap_or(defaults.spectral_norm),
                    ali_loss: match self.ali_loss {
                        AliLossArg::Derived => AliLoss::Derived,
                        AliLossArg::Minimax => AliLoss::Minimax,
                        AliLossArg::NonSaturating => AliLoss::NonSaturating,
                    },
                }
            },
            ..TrainConfig::default()
        }
    }
}

/// A switch given as `--x`, `--x true|false` or `--no-x`: what was asked, or `None` for the
/// family's default.
/// `--model NAME`: each family by [`ModelKind::name`], with its help.
pub fn model_parser() -> impl clap::builder::TypedValueParser<Value = ModelKind> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new(ModelKind::ALL.map(|k| PossibleValue::new(k.name()).help(k.help())))
        .map(|name| {
            ModelKind::ALL
                .into_iter()
                .find(|k| k.name() == name)
                .expect("clap passes only the possible values")
        })
}

/// `--arch NAME`: each architecture by [`Arch::label`], with its help.
pub fn arch_parser() -> impl clap::builder::TypedValueParser<Value = Arch> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new(Arch::ALL.map(|a| PossibleValue::new(a.label()).help(a.help()))).map(
        |name| {
            Arch::ALL
                .into_iter()
                .find(|a| a.label() == name)
                .expect("clap passes only the possible values")
        },
    )
}

fn switch(on: Option<bool>, off: bool) -> Option<bool> {
    if off { Some(false) } else { on }
}

/// `latent-atlas eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A folder written by `train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Importance samples per image (default: the run's setting).
    #[arg(long)]
    pub nll_samples: Option<usize>,
    /// Test images for the log-likelihood estimate (default: the run's setting).
    #[arg(long)]
    pub nll_images: Option<usize>,
    /// Compute backend: cpu, gpu, auto, flex, ndarray, or remote:ws://HOST:PORT (a
    /// `latent-atlas serve` server; token from LATENT_ATLAS_TOKEN or LATENT_ATLAS_TOKEN_FILE).
    #[arg(long, default_value = "cpu")]
    pub backend: BackendChoice,
}

/// Parses the command line and runs it; errors are printed as one line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `RUST_LOG` picks what is logged to stderr; by default warnings and errors, so that wgpu's
    // and eframe's complaints are seen.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    crate::backend::tune_allocator();
    let result = match cli.command {
        None => crate::gui::run(cli.gui),
        Some(Commands::Train(args)) => train(&args),
        Some(Commands::Eval(args)) => eval(&args),
        Some(Commands::Bench(args)) => crate::bench::run(&args),
        Some(Commands::Reproduce(args)) => crate::reproduce::run(&args),
        Some(Commands::Serve(args)) => crate::serve::serve(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_dataset(spec: &str, seed: u64, size: usize) -> anyhow::Result<Arc<Dataset>> {
    let spinner = ProgressBar::new_spinner().with_message(format!("loading {spec}"));
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let data = DatasetSpec::parse(spec).load_sized(seed, size);
    spinner.finish_and_clear();
    let data = data?;
    for w in &data.warnings {
        eprintln!("warning: {w}");
    }
    eprintln!(
        "dataset {}: {} training and {} test images of {}x{} {}, {} classes",
        data.name,
        data.train.len(),
        data.test.len(),
        data.train.width,
        data.train.height,
        colour_word(data.train.channels),
        data.class_names.len()
    );
    Ok(Arc::new(data))
}

fn select_backend(choice: BackendChoice) -> anyhow::Result<crate::backend::Backend> {
    let backend = choice.select()?;
    if let Some(notice) = &backend.notice {
        eprintln!("note: {notice}");
    }
    eprintln!("backend: {}", backend.description);
    Ok(backend)
}

/// `train`: the worker trains (as in the window, with headless pacing: every epoch evaluated,
/// checkpointed and scored); this loop folds its events into a [`RunView`] like the window
/// does, shows progress, and writes the run folder after every epoch with the window's writer.
fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let (config, out) = match &args.resume {
        Some(run) => {
            let mut config = checkpoint::read_info(run)?.config;
            config.epochs = args.epochs.unwrap_or(config.epochs);
            (config, args.out.clone().unwrap_or_else(|| run.clone()))
        }
        None => {
            let out = args
                .out
                .clone()
                .ok_or_else(|| anyhow::anyhow!("--out is required"))?;
            (args.config(), out)
        }
    };
    config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::create_dir_all(&out).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    let options = Options {
        resume: args.resume.clone(),
        ..Options::headless(
            Some(out.clone()),
            args.score_samples,
            args.score_temperature,
        )
    };
    let worker = Worker::spawn_with(
        config.clone(),
        args.backend.clone(),
        options,
        Arc::new(|| {}),
    )
    .map_err(|e| anyhow::anyhow!("cannot start the training thread: {e}"))?;
    let spinner = ProgressBar::new_spinner().with_message(format!("loading {}", config.dataset));
    spinner.enable_steady_tick(Duration::from_millis(100));
    let run = RunView::new(config.clone());
    let mut driver = Driver::new(run, Some(out.clone()), spinner, args.score_samples > 0);
    if let Some(dir) = &args.resume {
        // The curves so far: metrics.csv goes on from the run's last row.
        if let Ok(text) = std::fs::read_to_string(dir.join("metrics.csv")) {
            let (train, tests) = crate::export::csv::parse_metrics_csv(&text);
            let scores = std::fs::read_to_string(dir.join("scores.csv")).ok();
            driver.resume_history(train, tests, scores);
        }
    }
    let result = driver.drive(&worker);
    driver.finish();
    drop(worker);
    result?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

fn eval(args: &EvalArgs) -> anyhow::Result<()> {
    let info = checkpoint::read_info(&args.run)?;
    let data = load_dataset(
        &info.config.dataset,
        info.config.seed,
        info.config.image_size,
    )?;
    let backend = select_backend(args.backend.clone())?;
    let mut trainer = Trainer::weights_of(&args.run, data, backend.device)?;
    let mut config = trainer.config().clone();
    config.nll_samples = args.nll_samples.unwrap_or(config.nll_samples);
    config.nll_images = args.nll_images.unwrap_or(config.nll_images);
    trainer.set_eval(config.nll_samples, config.nll_images);
    let bar = bar(
        1000,
        "{bar:30} importance sampling ({msg})  [{elapsed} < {eta}]",
    );
    bar.set_message(format!(
        "K = {}, {} images",
        config.nll_samples,
        config.nll_images.min(trainer.data().test.len())
    ));
    let metrics = trainer
        .evaluation()
        .run_with_progress(true, &mut |p| bar.set_position((p * 1000.0) as u64));
    bar.finish_and_clear();
    print_test(&metrics);
    Ok(())
}

/// The command-line reference at the end of docs/command-line.md: every subcommand's `--help`,
/// made from clap's definitions (a test fails when the file falls behind; run it with
/// `LATENT_ATLAS_UPDATE_DOCS=1` to rewrite the section).
pub fn reference() -> String {
    use clap::CommandFactory;
    let mut cli = Cli::command().bin_name("latent-atlas");
    cli.build();
    let mut out = String::new();
    let mut section = |title: &str, help: String| {
        let help: Vec<&str> = help.lines().map(str::trim_end).collect();
        out.push_str(&format!(
            "### {title}\n\n```text\n{}\n```\n\n",
            help.join("\n")
        ));
    };
    section("latent-atlas", cli.render_help().to_string());
    let names: Vec<String> = cli
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .filter(|n| n != "help")
        .collect();
    for name in names {
        let sub = cli.find_subcommand_mut(&name).expect("listed above");
        section(
            &format!("latent-atlas {name}"),
            sub.render_help().to_string(),
        );
    }
    out.trim_end().to_owned() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// Where the reference starts and ends in docs/command-line.md.
    const BEGIN: &str = "<!-- reference: generated from the program's definitions; LATENT_ATLAS_UPDATE_DOCS=1 cargo test --release cli::tests rewrites it -->\n";
    const END: &str = "<!-- end of reference -->";

    #[test]
    fn the_documented_reference_is_the_programs_own_help() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/command-line.md");
        let doc = std::fs::read_to_string(&path).unwrap();
        let (start, end) = (
            doc.find(BEGIN).expect("the reference's start marker") + BEGIN.len(),
            doc.find(END).expect("the reference's end marker"),
        );
        let now = reference();
        if std::env::var("LATENT_ATLAS_UPDATE_DOCS").is_ok_and(|v| v == "1") {
            let updated = format!("{}\n{now}\n{}", &doc[..start], &doc[end..]);
            std::fs::write(&path, updated).unwrap();
            return;
        }
        let written = doc[start..end].trim();
        // Every flag `--help` lists is in the file, named in the message when one is missing.
        use clap::CommandFactory;
        let cli = Cli::command();
        for sub in std::iter::once(&cli).chain(cli.get_subcommands()) {
            for arg in sub.get_arguments() {
                if let Some(long) = arg.get_long() {
                    assert!(
                        written.contains(&format!("--{long}")),
                        "docs/command-line.md lacks `{} --{long}`: run LATENT_ATLAS_UPDATE_DOCS=1 cargo test --release cli::tests",
                        sub.get_name()
                    );
                }
            }
        }
        assert!(
            written == now.trim(),
            "docs/command-line.md's reference differs from `--help`: run LATENT_ATLAS_UPDATE_DOCS=1 cargo test --release cli::tests"
        );
    }

    fn train(args: &[&str]) -> TrainConfig {
        let mut line = vec!["latent-atlas", "train", "--out", "x"];
        line.extend(args);
        match Cli::try_parse_from(line).unwrap().command {
            Some(Commands::Train(args)) => args.config(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn boolean_options_are_switches_that_still_take_a_value() {
        let gan = |args: &[&str]| {
            let mut all = vec!["--model", "gan"];
            all.extend(args);
            train(&all).adversarial
        };
        assert!(gan(&[]).spectral_norm && gan(&[]).generator_batch_norm);
        assert!(!gan(&["--no-spectral-norm"]).spectral_norm);
        assert!(!gan(&["--spectral-norm", "false"]).spectral_norm);
        assert!(!gan(&["--no-generator-batch-norm"]).generator_batch_norm);
        let aae = train(&["--model", "aae", "--spectral-norm", "--minibatch-std"]).adversarial;
        assert!(aae.spectral_norm && aae.minibatch_std);
        assert!(!train(&["--model", "aae"]).adversarial.spectral_norm);
        assert!(train(&[]).colour_offset);
        assert!(!train(&["--no-colour-offset"]).colour_offset);
        assert!(!train(&["--colour-offset", "false"]).colour_offset);
        assert!(train(&["--colour-offset"]).colour_offset);
        // Both at once is a mistake, said at once.
        let both = [
            "latent-atlas",
            "train",
            "--out",
            "x",
            "--spectral-norm",
            "--no-spectral-norm",
        ];
        assert!(Cli::try_parse_from(both).is_err());
    }
}
