//! The command line: `train`, `eval` and `bench`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use crate::backend::BackendChoice;
use crate::data::{Dataset, DatasetSpec};
use crate::evaluator::{Evaluator, Scores, score};
use crate::explore::geometry::PathKind;
use crate::export::{csv, views};
use crate::fsio::{atomic_write, save_png};
use crate::model::Likelihood;
use crate::model::adversarial::AliLoss;
use crate::scene::{Marks, Scene, SceneOptions};
use crate::train::{
    AdversarialParams, HyperParams, ModelKind, Snapshot, StepMetrics, TestMetrics, TrainConfig,
    Trainer, checkpoint,
};

/// Latent Atlas: watch generative autoencoders learn.
#[derive(Parser, Debug)]
#[command(name = "latent-atlas", version, about)]
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
    Train(TrainArgs),
    /// Reload a run's checkpoint and print its test metrics.
    Eval(EvalArgs),
    /// Measure training throughput and decoding latency.
    Bench(crate::bench::BenchArgs),
}

/// ALI's encoder/generator loss on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum AliLossArg {
    /// The seed's derived loss: -log D(x, E(x)) - log D(G(z), z).
    Derived,
    /// The standard minimax form: log D(x, E(x)) + log(1 - D(G(z), z)).
    Minimax,
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
}

/// `latent-atlas train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// `mnist`, `fashion-mnist`, a folder of IDX files, or an image folder.
    #[arg(long, default_value_t = TrainConfig::default().dataset)]
    pub dataset: String,
    /// Model family.
    #[arg(long, value_enum, default_value_t = TrainConfig::default().model)]
    pub model: ModelKind,
    /// Latent dimension.
    #[arg(long, default_value_t = TrainConfig::default().latent_dim)]
    pub latent_dim: usize,
    /// Hidden layer widths, comma-separated (the decoder mirrors them).
    #[arg(long, value_delimiter = ',', default_values_t = TrainConfig::default().hidden)]
    pub hidden: Vec<usize>,
    /// Passes over the training split.
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    pub epochs: usize,
    /// Samples per step.
    #[arg(long, default_value_t = HyperParams::default().batch_size)]
    pub batch_size: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = HyperParams::default().lr)]
    pub lr: f64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    pub seed: u64,
    /// Weight of the KL term.
    #[arg(long, default_value_t = HyperParams::default().beta)]
    pub beta: f32,
    /// Steps over which the KL weight rises linearly from 0 to beta.
    #[arg(long, default_value_t = HyperParams::default().kl_warmup_steps)]
    pub kl_warmup_steps: u64,
    /// Decoder likelihood.
    #[arg(long, value_enum, default_value = "bernoulli")]
    pub likelihood: LikelihoodArg,
    /// Standard deviation of the Gaussian likelihood.
    #[arg(long, default_value_t = 0.1)]
    pub gaussian_sigma: f32,
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
    /// Adversarial families: discriminator steps per iteration.
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
    /// Compute backend.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendChoice,
    /// Output folder (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

impl TrainArgs {
    /// The run's settings.
    pub fn config(&self) -> TrainConfig {
        TrainConfig {
            dataset: self.dataset.clone(),
            model: self.model,
            latent_dim: self.latent_dim,
            hidden: self.hidden.clone(),
            likelihood: match self.likelihood {
                LikelihoodArg::Bernoulli => Likelihood::Bernoulli,
                LikelihoodArg::Gaussian => Likelihood::Gaussian {
                    sigma: self.gaussian_sigma,
                },
                LikelihoodArg::GaussianTrained => Likelihood::GaussianTrained,
            },
            hyper: HyperParams {
                lr: self.lr,
                batch_size: self.batch_size,
                beta: self.beta,
                kl_warmup_steps: self.kl_warmup_steps,
            },
            epochs: self.epochs,
            seed: self.seed,
            binarize: self.binarize,
            nll_samples: self.nll_samples,
            nll_images: self.nll_images,
            tau: self.tau,
            flow_layers: self.flow_layers,
            adversarial: {
                let defaults = AdversarialParams::for_kind(self.model);
                AdversarialParams {
                    lambda: self.lambda.unwrap_or(defaults.lambda),
                    d_steps: self.d_steps.unwrap_or(defaults.d_steps),
                    g_steps: self.g_steps.unwrap_or(defaults.g_steps),
                    lr: self.adv_lr,
                    ali_loss: match self.ali_loss {
                        AliLossArg::Derived => AliLoss::Derived,
                        AliLossArg::Minimax => AliLoss::Minimax,
                    },
                }
            },
            ..TrainConfig::default()
        }
    }
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
    /// Compute backend.
    #[arg(long, value_enum, default_value = "cpu")]
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_dataset(spec: &str, seed: u64) -> anyhow::Result<Arc<Dataset>> {
    let spinner = ProgressBar::new_spinner().with_message(format!("loading {spec}"));
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let data = DatasetSpec::parse(spec).load(seed);
    spinner.finish_and_clear();
    let data = data?;
    for w in &data.warnings {
        eprintln!("warning: {w}");
    }
    eprintln!(
        "dataset {}: {} training and {} test images of {}x{}, {} classes",
        data.name,
        data.train.len(),
        data.test.len(),
        data.train.width,
        data.train.height,
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

fn print_test(m: &TestMetrics) {
    let nll = m
        .nll
        .map(|v| {
            format!(
                ", importance-sampled NLL {v:.2} (K = {}, {} images)",
                m.nll_samples, m.nll_images
            )
        })
        .unwrap_or_default();
    let elbo = match m.neg_elbo {
        Some(v) => format!(", KL {:.2}, negative ELBO {v:.2} nats", m.kl),
        None => " nats (no KL term, so no ELBO)".to_owned(),
    };
    let active = if m.kl_per_dim.is_empty() {
        String::new()
    } else {
        format!("; active dims {}/{}", m.active_dims(), m.kl_per_dim.len())
    };
    let holes = m
        .hole_share
        .map(|h| format!("; prior holes {:.1}%", 100.0 * h))
        .unwrap_or_default();
    let rec = if m.reconstruction.is_finite() {
        format!("test reconstruction {:.2}", m.reconstruction)
    } else {
        "no encoder, so no reconstruction".to_owned()
    };
    let elbo = if m.reconstruction.is_finite() {
        elbo
    } else {
        String::new()
    };
    println!("epoch {:>3}: {rec}{elbo}{nll}{active}{holes}", m.epoch);
}

fn print_scores(s: &Scores) {
    let mut cond = s
        .class_accuracy
        .map(|a| format!(", class-conditional accuracy {:.1}%", 100.0 * a))
        .unwrap_or_default();
    if let Some(a) = s.reconstruction_accuracy {
        cond.push_str(&format!(
            ", reconstruction class accuracy {:.1}%",
            100.0 * a
        ));
    }
    println!(
        "           evaluator at T = {}: class entropy {:.3} of {:.3} nats, Frechet distance {:.2}{cond}",
        s.temperature, s.entropy, s.max_entropy, s.frechet
    );
}

/// The evaluator of `data`, trained (with a progress bar) the first time.
fn load_evaluator(data: &Dataset) -> anyhow::Result<Evaluator> {
    let bar =
        ProgressBar::new(1000).with_message("training the evaluator classifier (cached after)");
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {msg}  [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let device = crate::backend::BackendChoice::Cpu.select()?.device;
    let evaluator = Evaluator::for_dataset(data, &device, &mut |p| {
        bar.set_position((p * 1000.0) as u64)
    });
    bar.finish_and_clear();
    let evaluator = evaluator?;
    eprintln!(
        "evaluator: {:.2}% test accuracy ({})",
        100.0 * evaluator.test_accuracy,
        evaluator
            .cache
            .as_ref()
            .map_or("not cached".to_owned(), |p| p.display().to_string())
    );
    Ok(evaluator)
}

fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let config = args.config();
    config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let data = load_dataset(&config.dataset, config.seed)?;
    let backend = select_backend(args.backend)?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.out.display()))?;
    let evaluator = if args.score_samples > 0 && data.is_labelled() {
        Some(load_evaluator(&data)?)
    } else {
        if args.score_samples > 0 {
            eprintln!(
                "note: {} has no labels, so generated samples are not scored",
                data.name
            );
        }
        None
    };
    let mut trainer = Trainer::new(config.clone(), data, backend.device.clone())?;
    let mut score_rows: Vec<Scores> = Vec::new();
    let steps_per_epoch = trainer.data().train.len().div_ceil(config.hyper.batch_size) as u64;
    let bar = ProgressBar::new(steps_per_epoch * config.epochs as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  [{elapsed} < {eta}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut train_rows: Vec<StepMetrics> = Vec::new();
    let mut test_rows: Vec<TestMetrics> = Vec::new();
    let mut window = (Instant::now(), 0usize);
    let mut rate = 0.0;
    while !trainer.is_finished() {
        let m = trainer.step()?;
        window.1 += config.hyper.batch_size;
        let elapsed = window.0.elapsed().as_secs_f64();
        if elapsed > 1.0 {
            rate = window.1 as f64 / elapsed;
            window = (Instant::now(), 0);
        }
        bar.inc(1);
        if m.step % 10 == 0 {
            bar.set_message(format!(
                "epoch {} loss {:.2} (rec {:.2} + KL {:.2})  {:.0} samples/s",
                m.epoch, m.total, m.reconstruction, m.kl, rate
            ));
        }
        let epoch_done = m.epoch_progress >= 1.0;
        train_rows.push(m);
        if epoch_done {
            let test = trainer.evaluate(true);
            bar.suspend(|| print_test(&test));
            test_rows.push(test);
            if let Some(evaluator) = &evaluator {
                let snapshot = trainer.snapshot(false);
                let s = score(
                    evaluator,
                    &snapshot,
                    args.score_samples,
                    args.score_temperature,
                    config.seed,
                );
                bar.suspend(|| print_scores(&s));
                score_rows.push(s);
                atomic_write(
                    &args.out.join("scores.csv"),
                    csv::scores_csv(&score_rows).as_bytes(),
                )?;
            }
            // Everything is rewritten after each epoch, so a crash loses at most one epoch.
            write_run(
                &args.out,
                &trainer,
                &backend.description,
                &train_rows,
                &test_rows,
            )?;
        }
    }
    bar.finish_and_clear();
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// Writes the checkpoint, the CSV tables and every PNG view of the current model.
pub fn write_run(
    dir: &Path,
    trainer: &Trainer,
    backend: &str,
    train_rows: &[StepMetrics],
    test_rows: &[TestMetrics],
) -> anyhow::Result<()> {
    let d = trainer.config().latent_dim;
    checkpoint::save(dir, trainer.model(), &trainer.run_info(backend))?;
    atomic_write(
        &dir.join("metrics.csv"),
        csv::metrics_csv(train_rows.iter(), test_rows, d).as_bytes(),
    )?;
    let snapshot = trainer.snapshot(true);
    atomic_write(
        &dir.join("latent.csv"),
        csv::latent_csv(&snapshot).as_bytes(),
    )?;
    write_views(dir, &snapshot, trainer.config().seed)
}

/// Writes the PNG views of a snapshot.
pub fn write_views(dir: &Path, snapshot: &Snapshot, seed: u64) -> anyhow::Result<()> {
    let scene = Scene::build(snapshot, &SceneOptions::default());
    save_png(
        &dir.join("latent_plane.png"),
        &views::latent_plane(&scene, &Marks::default(), 800).0,
    )?;
    save_png(
        &dir.join("samples.png"),
        &views::prior_samples(&snapshot.decoder, &[0.5, 0.8, 1.0], seed),
    )?;
    save_png(
        &dir.join("reconstructions.png"),
        &views::reconstructions(snapshot, 32),
    )?;
    save_png(
        &dir.join("manifold.png"),
        &views::manifold(&snapshot.decoder, 20),
    )?;
    if let Some(coverage) = &snapshot.coverage {
        save_png(
            &dir.join("prior_coverage.png"),
            &views::coverage(coverage, 480),
        )?;
    }
    if snapshot.view.class_means.is_some() {
        save_png(
            &dir.join("class_samples.png"),
            &views::class_samples(snapshot, 10, 1.0, seed),
        )?;
    }
    let (a, b) = views::interpolation_ends(snapshot);
    save_png(
        &dir.join("interpolation.png"),
        &views::interpolation(snapshot, a, b, 10, PathKind::Linear),
    )?;
    Ok(())
}

fn eval(args: &EvalArgs) -> anyhow::Result<()> {
    let info = checkpoint::read_info(&args.run)?;
    let data = load_dataset(&info.config.dataset, info.config.seed)?;
    let backend = select_backend(args.backend)?;
    let mut trainer = Trainer::from_checkpoint(&args.run, data, backend.device)?;
    let mut config = trainer.config().clone();
    config.nll_samples = args.nll_samples.unwrap_or(config.nll_samples);
    config.nll_images = args.nll_images.unwrap_or(config.nll_images);
    trainer.set_eval(config.nll_samples, config.nll_images);
    print_test(&trainer.evaluate(true));
    Ok(())
}
