//! The training loop on real data: the loss falls, runs are reproducible, a bad loss is caught
//! and the model rolled back, and checkpoints round-trip.

use std::sync::Arc;

use burn::tensor::Device;
use latent_atlas::data::Dataset;
use latent_atlas::data::builtin::Builtin;
use latent_atlas::model::Likelihood;
use latent_atlas::train::{TrainConfig, TrainError, Trainer, checkpoint};

fn mnist() -> Arc<Dataset> {
    Arc::new(Builtin::Mnist.load(0).expect("built-in MNIST loads"))
}

fn small_config() -> TrainConfig {
    TrainConfig {
        probe_size: 200,
        nll_samples: 20,
        nll_images: 50,
        ..TrainConfig::default()
    }
}

#[test]
fn loss_falls_over_200_steps_on_mnist() {
    let mut trainer = Trainer::new(small_config(), mnist(), Device::flex()).unwrap();
    let losses: Vec<f32> = (0..200).map(|_| trainer.step().unwrap().total).collect();
    let first = losses[..20].iter().sum::<f32>() / 20.0;
    let last = losses[180..].iter().sum::<f32>() / 20.0;
    // An untrained decoder costs about 543 nats (784 ln 2); a few hundred steps reach ~200.
    assert!(first > 250.0, "first {first}");
    assert!(last < 0.75 * first, "loss did not fall: {first} -> {last}");
    let test = trainer.evaluate(true);
    let elbo = test.neg_elbo.unwrap();
    assert!(elbo < 260.0 && elbo > 100.0, "{test:?}");
    let nll = test.nll.unwrap();
    // The importance-sampled bound is tighter than the ELBO, and finite.
    assert!(
        nll.is_finite() && nll < elbo + 1.0,
        "nll {nll} vs elbo {elbo}"
    );
}

#[test]
fn the_same_seed_gives_the_same_run_and_another_seed_does_not() {
    let data = mnist();
    let run = |seed| {
        let config = TrainConfig {
            seed,
            ..small_config()
        };
        let mut t = Trainer::new(config, data.clone(), Device::flex()).unwrap();
        (0..5)
            .map(|_| t.step().unwrap().total)
            .collect::<Vec<f32>>()
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
}

#[test]
fn an_infinite_loss_rolls_back_instead_of_corrupting_the_model() {
    // One step read back at once, and eight read back together (whose updates went ahead).
    for k in [1, 8] {
        let config = TrainConfig {
            likelihood: Likelihood::Gaussian { sigma: 1e-30 },
            ..small_config()
        };
        let mut trainer = Trainer::new(config, mnist(), Device::flex()).unwrap();
        let before = trainer.snapshot(false);
        match trainer.steps(k) {
            Err(TrainError::NonFinite {
                step: 1,
                restored_step: 0,
                ..
            }) => {}
            other => panic!("expected a non-finite loss error, got {other:?}"),
        }
        assert_eq!(trainer.step_count(), 0);
        assert_eq!(
            trainer.snapshot(false).mu,
            before.mu,
            "the model must be the one before the failed step ({k} at once)"
        );
    }
}

#[test]
fn steps_read_back_together_match_steps_read_one_by_one() {
    let data = mnist();
    let config = TrainConfig {
        model: latent_atlas::train::ModelKind::BnVae,
        ..small_config()
    };
    let mut one = Trainer::new(config.clone(), data.clone(), Device::flex()).unwrap();
    let mut many = Trainer::new(config, data, Device::flex()).unwrap();
    // The images on the device on one side only: the batches must be the same too.
    many.keep_images_on_device(true);
    let singles: Vec<_> = (0..60).map(|_| one.step().unwrap()).collect();
    let mut batched = Vec::new();
    while batched.len() < 60 {
        batched.extend(many.steps(60 - batched.len()).unwrap());
    }
    assert_eq!(batched.len(), 60);
    for (a, b) in singles.iter().zip(&batched) {
        assert_eq!((a.step, a.epoch), (b.step, b.epoch));
        assert!(
            (a.total - b.total).abs() <= 1e-4 * a.total.abs(),
            "{a:?} vs {b:?}"
        );
        assert_eq!(a.kl_per_dim.len(), b.kl_per_dim.len());
    }
    // The family's own values come with the last step of a batch.
    assert!(batched.last().unwrap().extra("kl_floor").is_some());
}

#[test]
fn checkpoints_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist();
    let mut trainer = Trainer::new(small_config(), data.clone(), Device::flex()).unwrap();
    for _ in 0..20 {
        trainer.step().unwrap();
    }
    checkpoint::save(dir.path(), trainer.model(), &trainer.run_info("CPU (flex)")).unwrap();
    let reloaded = Trainer::from_checkpoint(dir.path(), data, Device::flex()).unwrap();
    assert_eq!(reloaded.step_count(), 20);
    let (a, b) = (trainer.evaluate(false), reloaded.evaluate(false));
    let (a, b) = (a.neg_elbo.unwrap(), b.neg_elbo.unwrap());
    assert!((a - b).abs() < 1e-3, "{a} vs {b}");
    // A truncated model file is refused with its name.
    let model = dir.path().join(checkpoint::MODEL_FILE);
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
    let err = Trainer::from_checkpoint(dir.path(), mnist(), Device::flex())
        .err()
        .unwrap();
    assert!(err.to_string().contains("model.bpk"), "{err}");
}

/// The first `train` training and `test` test images of MNIST.
fn mnist_subset(train: usize, test: usize) -> Arc<Dataset> {
    let full = mnist();
    Arc::new(Dataset {
        train: full.train.select(&(0..train).collect::<Vec<_>>()),
        test: full.test.select(&(0..test).collect::<Vec<_>>()),
        ..(*full).clone()
    })
}

#[test]
fn a_long_run_validates_on_held_out_images_and_stops_with_its_best_weights() {
    use latent_atlas::train::Schedule;
    let config = TrainConfig {
        epochs: 200,
        binarize: true,
        // A big rate on few images: the validation loss soon stops falling.
        hyper: latent_atlas::train::HyperParams {
            batch_size: 50,
            lr: 3e-3,
            ..Default::default()
        },
        schedule: Schedule {
            validation: 100,
            patience: 2,
            lr_decay: 0.5,
            max_decays: 1,
        },
        ..small_config()
    };
    let mut trainer = Trainer::new(config, mnist_subset(300, 50), Device::flex()).unwrap();
    let mut losses = Vec::new();
    let mut notices = Vec::new();
    while !trainer.is_finished() {
        let before = trainer.epochs_done();
        trainer.step().unwrap();
        if trainer.epochs_done() > before {
            // 200 training images in batches of 50: the 100 held out are never trained on.
            assert_eq!(trainer.step_count(), 4 * trainer.epochs_done() as u64);
            losses.push(trainer.validation_loss().expect("validated every epoch"));
            notices.extend(trainer.take_notice());
        }
    }
    let epochs = trainer.epochs_done();
    assert!(epochs < 200, "never stopped: {losses:?}");
    assert_eq!(notices.len(), 2, "one decay, then the stop: {notices:?}");
    assert!(
        notices[0].contains("learning rate now 1.500e-3"),
        "{notices:?}"
    );
    assert!(notices[1].contains("stopped after epoch"), "{notices:?}");
    // The weights put back are the best epoch's: validating again gives its loss exactly.
    let best = losses.iter().copied().fold(f32::INFINITY, f32::min);
    let test = trainer.evaluate(false);
    assert_eq!(test.validation, Some(*losses.last().unwrap()));
    assert!(best < losses[0], "{losses:?}");
    assert_eq!(trainer.validate(), best, "{losses:?}");
}

#[test]
fn a_validation_split_that_leaves_no_batch_is_refused_naming_the_dataset() {
    let config = TrainConfig {
        schedule: latent_atlas::train::Schedule {
            validation: 290,
            ..Default::default()
        },
        ..small_config()
    };
    let err = Trainer::new(config, mnist_subset(300, 50), Device::flex())
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("mnist") && text.contains("290 validation images"),
        "{text}"
    );
}

/// The importance-weighted objective (Burda et al. 2016) at d = 50, K = 5, on dynamically
/// binarised MNIST: the loss trained on is the K-sample bound, the one-draw ELBO is reported
/// beside it, the bound is the tighter of the two, and both fall.
#[test]
fn the_importance_weighted_objective_trains_and_reports_the_elbo_beside_it() {
    let config = TrainConfig {
        latent_dim: 50,
        binarize: true,
        hyper: latent_atlas::train::HyperParams {
            iw_samples: 5,
            ..Default::default()
        },
        ..small_config()
    };
    let mut trainer = Trainer::new(config, mnist(), Device::flex()).unwrap();
    let steps: Vec<(f32, f32)> = (0..150)
        .map(|_| {
            let m = trainer.step().unwrap();
            let elbo = m
                .extra(latent_atlas::train::NEG_ELBO)
                .expect("the one-draw ELBO is reported");
            (m.total, elbo)
        })
        .collect();
    let mean = |from: usize, f: fn(&(f32, f32)) -> f32| {
        steps[from..from + 20].iter().map(f).sum::<f32>() / 20.0
    };
    let (bound_first, bound_last) = (mean(0, |s| s.0), mean(130, |s| s.0));
    let (elbo_first, elbo_last) = (mean(0, |s| s.1), mean(130, |s| s.1));
    assert!(
        bound_last < 0.75 * bound_first,
        "the bound falls: {bound_first} -> {bound_last}"
    );
    assert!(
        elbo_last < 0.75 * elbo_first,
        "the ELBO falls: {elbo_first} -> {elbo_last}"
    );
    // -log mean_k w_k <= -mean_k log w_k, in expectation: the bound is the tighter.
    assert!(
        bound_last < elbo_last,
        "negative bound {bound_last} against negative ELBO {elbo_last}"
    );
}

#[test]
fn the_importance_weighted_objective_is_refused_where_there_are_no_weights() {
    let mut config = small_config();
    config.hyper.iw_samples = 5;
    config.model = latent_atlas::train::ModelKind::Ae;
    let err = Trainer::new(config.clone(), mnist(), Device::flex())
        .err()
        .expect("the AE has no importance weights");
    assert!(err.to_string().contains("Gaussian posterior"), "{err}");
    // Choosing such a family through the menu drops back to one draw.
    config.set_model(latent_atlas::train::ModelKind::Gan);
    assert_eq!(config.hyper.iw_samples, 1);
    config.hyper.iw_samples = 0;
    config.model = latent_atlas::train::ModelKind::Vae;
    assert!(config.validate().unwrap_err().contains("1 to 1000"));
}

#[test]
fn importance_draws_sit_where_their_weights_say() {
    use latent_atlas::train::ModelKind;
    let config = TrainConfig {
        latent_dim: 3,
        ..small_config()
    };
    let mut trainer = Trainer::new(config, mnist_subset(2000, 300), Device::flex()).unwrap();
    for _ in 0..40 {
        trainer.step().unwrap();
    }
    let snapshot = trainer.snapshot(false);
    let probe = 7;
    let draws = trainer
        .importance_draws(probe, 64)
        .expect("a VAE has weights");
    assert_eq!((draws.k(), draws.z.len(), draws.probe), (64, 64 * 3, probe));
    // Brute force from the snapshot: the plain decoder, the Bernoulli likelihood on the grey
    // levels, the standard normal prior and the Gaussian posterior of the probe sample.
    let x: Vec<f64> = snapshot
        .probe
        .image(probe)
        .iter()
        .map(|&v| v as f64 / 255.0)
        .collect();
    let (mu, sigma) = (snapshot.mu_of(probe), snapshot.sigma_of(probe));
    let log_normal = |z: &[f32], m: &[f32], s: &[f32]| -> f64 {
        z.iter()
            .zip(m.iter().zip(s))
            .map(|(&z, (&m, &s))| {
                let (z, m, s) = (z as f64, m as f64, s as f64);
                -0.5 * ((z - m) / s).powi(2) - s.ln() - 0.5 * (std::f64::consts::TAU).ln()
            })
            .sum()
    };
    for (z, &log_w) in draws.z.chunks_exact(3).zip(&draws.log_w) {
        let p = snapshot.decoder.decode(z);
        let log_px: f64 = x
            .iter()
            .zip(&p)
            .map(|(&x, &p)| {
                let p = (p as f64).clamp(1e-7, 1.0 - 1e-7);
                x * p.ln() + (1.0 - x) * (1.0 - p).ln()
            })
            .sum();
        let expected = log_px + log_normal(z, &[0.0; 3], &[1.0; 3]) - log_normal(z, mu, sigma);
        assert!(
            (log_w as f64 - expected).abs() < 1e-3 * expected.abs().max(1.0),
            "log w {log_w} against {expected} by brute force"
        );
    }
    let w = draws.normalised();
    assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    assert!(
        draws.bound() >= draws.elbo(),
        "Jensen: the bound is above the ELBO"
    );
    // The same draws again for the same sample and model; another sample's differ.
    assert_eq!(trainer.importance_draws(probe, 64).unwrap(), draws);
    assert_ne!(trainer.importance_draws(probe + 1, 64).unwrap().z, draws.z);

    // The f-VAE's draws go through its flow, the CVAE's weights take the class mean: each
    // gives K finite draws; families without weights give none.
    for model in [ModelKind::FVae, ModelKind::Cvae, ModelKind::BnVae] {
        let mut config = small_config();
        config.set_model(model);
        let mut t = Trainer::new(config, mnist_subset(1000, 100), Device::flex()).unwrap();
        t.step().unwrap();
        let d = t.importance_draws(0, 8).expect("weights");
        assert_eq!(d.z.len(), 8 * 2, "{model:?}");
        assert!(
            d.z.iter().chain(&d.log_w).all(|v| v.is_finite()),
            "{model:?}"
        );
    }
    let mut config = small_config();
    config.set_model(ModelKind::Ae);
    let t = Trainer::new(config, mnist_subset(1000, 100), Device::flex()).unwrap();
    assert!(t.importance_draws(0, 8).is_none());
}

#[test]
fn an_evaluation_in_small_chunks_gives_the_whole_evaluation_s_metrics() {
    let config = TrainConfig {
        nll_samples: 30,
        nll_images: 40,
        ..small_config()
    };
    let mut trainer = Trainer::new(config, mnist_subset(2000, 300), Device::flex()).unwrap();
    for _ in 0..20 {
        trainer.step().unwrap();
    }
    let job = trainer.evaluation();
    let whole = job.run(true);
    let run = |rows: usize, nll_rows: usize| {
        let mut steps = latent_atlas::train::EvaluationSteps::new(&job, true, rows, nll_rows);
        let mut chunks = 0;
        loop {
            chunks += 1;
            if let Some(m) = steps.step() {
                break (m, chunks);
            }
        }
    };
    // Chunks of 7 test images; the sampling in one chunk, as the whole evaluation takes it.
    let (sliced, chunks) = run(7, 5000);
    assert!(chunks > 2 * 300 / 7, "{chunks} chunks");
    // 13 rows a chunk: one image at a time. Its draws are laid out by chunk, so the estimate
    // is another draw of the same quantity.
    let (one_by_one, chunks) = run(300, 13);
    assert!(chunks > 40, "{chunks} chunks");
    let (a, b) = (whole.nll.unwrap(), one_by_one.nll.unwrap());
    assert!((a - b).abs() < 0.02 * a, "{a} against {b}");
    let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * a.abs().max(1.0);
    assert!(
        close(whole.reconstruction, sliced.reconstruction),
        "{whole:?} {sliced:?}"
    );
    assert!(close(whole.kl, sliced.kl));
    assert!(
        close(whole.nll.unwrap(), sliced.nll.unwrap()),
        "{whole:?} {sliced:?}"
    );
    assert_eq!(whole.hole_share, sliced.hole_share);
    assert_eq!(whole.mean_activity, sliced.mean_activity);
    assert_eq!(
        (whole.step, whole.nll_images),
        (sliced.step, sliced.nll_images)
    );
}

#[test]
fn a_run_on_the_importance_weighted_bound_validates_that_bound() {
    let config = TrainConfig {
        latent_dim: 8,
        binarize: true,
        schedule: latent_atlas::train::Schedule {
            validation: 500,
            ..Default::default()
        },
        ..small_config()
    };
    let mut trainer = Trainer::new(config, mnist_subset(3000, 100), Device::flex()).unwrap();
    for _ in 0..60 {
        trainer.step().unwrap();
    }
    let elbo = trainer.validate();
    let mut hyper = trainer.config().hyper.clone();
    hyper.iw_samples = 10;
    trainer.set_hyper(hyper).unwrap();
    let bound = trainer.validate();
    assert!(elbo.is_finite() && bound.is_finite());
    // -log mean_k w_k <= -mean_k log w_k: the K-sample bound is the tighter, by a margin over
    // 500 images.
    assert!(
        bound < elbo - 0.5,
        "negative bound {bound} against negative ELBO {elbo}"
    );
}

#[test]
fn a_run_saved_mid_epoch_goes_on_exactly_as_it_would_have() {
    // Binarised batches draw from the stream too; the schedule's state rides along.
    let config = TrainConfig {
        binarize: true,
        ..small_config()
    };
    let dir = tempfile::tempdir().unwrap();
    let data = mnist();
    let mut trainer = Trainer::new(config, data.clone(), Device::flex()).unwrap();
    for _ in 0..7 {
        trainer.step().unwrap();
    }
    trainer.save(dir.path(), "CPU (flex)").unwrap();
    let mut resumed = Trainer::from_checkpoint(dir.path(), data, Device::flex()).unwrap();
    for _ in 0..5 {
        let (a, b) = (trainer.step().unwrap(), resumed.step().unwrap());
        assert_eq!((a.step, a.total), (b.step, b.total), "the steps differ");
    }
    let weights = |t: &Trainer| latent_atlas::train::safetensors::tensors(t.model());
    assert!(weights(&trainer) == weights(&resumed), "the weights differ");
    // A run saved with weights only starts a fresh optimiser: its next step differs.
    let plain = tempfile::tempdir().unwrap();
    checkpoint::save(
        plain.path(),
        trainer.model(),
        &trainer.run_info("CPU (flex)"),
    )
    .unwrap();
    let mut fresh = Trainer::from_checkpoint(plain.path(), mnist(), Device::flex()).unwrap();
    let (a, b) = (trainer.step().unwrap(), fresh.step().unwrap());
    assert_eq!(a.step, b.step);
    assert!(
        weights(&trainer) != weights(&fresh),
        "a fresh optimiser moves the weights otherwise"
    );
}

#[test]
fn burdas_protocol_starts_from_the_datas_mean_and_trains() {
    use latent_atlas::fused::Activation;
    use latent_atlas::train::HiddenActivation;
    use latent_atlas::train::schedule::LrSchedule;
    let config = TrainConfig {
        activation: HiddenActivation::Tanh,
        glorot_init: true,
        mean_output_bias: true,
        adam_epsilon: 1e-4,
        lr_schedule: LrSchedule::Burda,
        hidden: vec![200, 200],
        latent_dim: 50,
        binarize: true,
        ..small_config()
    };
    let data = mnist();
    let mut trainer = Trainer::new(config, data.clone(), Device::flex()).unwrap();
    let decoder = trainer.model().decoder();
    assert_eq!(decoder.act, Activation::Tanh);
    // The output bias: the logit of each pixel's mean over all 60,000 training images,
    // clipped to [0.001, 0.999].
    let bias = latent_atlas::fused::to_vec(decoder.output.bias.as_ref().unwrap().val());
    let n = data.train.len();
    for pixel in [0, 350, 406, 783] {
        let mean = (0..n)
            .map(|i| f64::from(data.train.image(i)[pixel]) / 255.0)
            .sum::<f64>()
            / n as f64;
        let m = mean.clamp(0.001, 0.999);
        let want = (m / (1.0 - m)).ln() as f32;
        assert!(
            (bias[pixel] - want).abs() < 1e-4,
            "pixel {pixel}: {} against {want}",
            bias[pixel]
        );
    }
    // Glorot's uniform draw, zero biases.
    let first = &decoder.layers[0];
    let bound = (6.0f32 / (50.0 + 200.0)).sqrt();
    let w = latent_atlas::fused::to_vec(first.weight.val());
    assert!(w.iter().all(|v| v.abs() <= bound) && w.iter().any(|v| v.abs() > bound / 2.0));
    let b = latent_atlas::fused::to_vec(first.bias.as_ref().unwrap().val());
    assert!(b.iter().all(|&v| v == 0.0));
    // A decoder started at the mean begins near the data's own entropy, not at 784 ln 2.
    let losses: Vec<f32> = (0..150).map(|_| trainer.step().unwrap().total).collect();
    let first = losses[..10].iter().sum::<f32>() / 10.0;
    let last = losses[140..].iter().sum::<f32>() / 10.0;
    assert!(first < 300.0, "first {first}");
    assert!(last < first, "loss did not fall: {first} -> {last}");
}
