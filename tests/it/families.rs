//! Every model family on real MNIST: the loss is finite and falls over 200 steps, sampling at
//! T = 0 decodes the prior's mode, the plain decoder copy agrees with the model, checkpoints
//! round-trip, and each family's view carries what it draws.

use std::sync::{Arc, OnceLock};

use burn::module::Module;
use burn::tensor::Device;
use latent_atlas::data::Dataset;
use latent_atlas::data::batch::{to_tensor, to_vec};
use latent_atlas::data::builtin::Builtin;
use latent_atlas::model::{ImageShape, Likelihood};
use latent_atlas::scene::{Scene, SceneOptions};
use latent_atlas::train::{
    AdversarialParams, ModelKind, PosteriorShape, TrainConfig, Trainer, checkpoint,
};

fn mnist() -> Arc<Dataset> {
    static DATA: OnceLock<Arc<Dataset>> = OnceLock::new();
    DATA.get_or_init(|| Arc::new(Builtin::Mnist.load(0).expect("built-in MNIST loads")))
        .clone()
}

fn config(model: ModelKind) -> TrainConfig {
    TrainConfig {
        model,
        probe_size: 300,
        nll_samples: 10,
        nll_images: 30,
        ..TrainConfig::default()
    }
}

fn mean(v: &[f32]) -> f32 {
    v.iter().sum::<f32>() / v.len() as f32
}

#[test]
fn every_family_learns_on_mnist() {
    for kind in ModelKind::ALL
        .into_iter()
        .filter(|k| !k.draws().adversarial)
    {
        let mut trainer = Trainer::new(config(kind), mnist(), Device::flex()).unwrap();
        let steps: Vec<_> = (0..200).map(|_| trainer.step().unwrap()).collect();
        let totals: Vec<f32> = steps.iter().map(|m| m.total).collect();
        assert!(totals.iter().all(|v| v.is_finite()), "{kind:?}: {totals:?}");
        let (first, last) = (mean(&totals[..20]), mean(&totals[180..]));
        assert!(
            last < 0.8 * first,
            "{kind:?}: loss did not fall: {first} -> {last}"
        );
        let test = trainer.evaluate(true);
        assert_eq!(test.neg_elbo.is_some(), kind != ModelKind::Ae, "{kind:?}");
        assert_eq!(test.nll.is_some(), kind != ModelKind::Ae, "{kind:?}");
        if let (Some(elbo), Some(nll)) = (test.neg_elbo, test.nll) {
            assert!(
                nll.is_finite() && nll < elbo + 2.0,
                "{kind:?}: NLL {nll} vs negative ELBO {elbo}"
            );
        }
        let holes = test.hole_share.unwrap();
        assert!((0.0..=1.0).contains(&holes), "{kind:?}: {holes}");

        let snap = trainer.snapshot(true);
        let view = &snap.view;
        assert_eq!(view.class_means.is_some(), kind == ModelKind::Cvae);
        assert_eq!(view.gamma_mu.is_some(), kind == ModelKind::BnVae);
        assert_eq!(view.outlines.is_some(), kind == ModelKind::FVae);
        if kind == ModelKind::Ae {
            assert!(snap.sigma.iter().all(|&s| s == 0.0), "the AE has points");
        }
        if kind == ModelKind::BnVae {
            let floor = steps.last().unwrap().extra("kl_floor").unwrap();
            assert!((floor - view.kl_floor().unwrap()).abs() < 1e-5);
            // tau = 0.5 and d = 2: the floor is at least d tau / 2.
            assert!(floor >= 0.5 - 1e-6, "floor {floor}");
            for m in &steps {
                assert!(m.kl >= m.extra("kl_floor").unwrap() - 1e-3, "{m:?}");
            }
        }
    }
}

#[test]
fn sampling_at_zero_temperature_decodes_the_prior_mode_and_the_plain_copy_agrees() {
    let device = Device::flex();
    for kind in ModelKind::ALL {
        let mut trainer = Trainer::new(config(kind), mnist(), device.clone()).unwrap();
        for _ in 0..30 {
            trainer.step().unwrap();
        }
        let model = trainer.model().valid();
        let class = (kind == ModelKind::Cvae).then_some(3);
        let mode = model.prior_mode(class);
        let eps = to_tensor(vec![0.7, -1.3, 2.0, 0.1, -0.4, 0.9], 3, 2, &device);
        let samples = to_vec(model.sample(eps.clone(), 0.0, class));
        let at_mode = to_vec(burn::tensor::activation::sigmoid(model.decode(to_tensor(
            mode.clone(),
            1,
            2,
            &device,
        ))));
        for row in samples.chunks_exact(784) {
            let worst = row
                .iter()
                .zip(&at_mode)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-6, "{kind:?}: T = 0 sample differs by {worst}");
        }
        // At T = 1 the samples differ from one another.
        let spread = to_vec(model.sample(eps, 1.0, class));
        assert!(spread[..784] != spread[784..1568], "{kind:?}");

        // The plain decoder copy decodes like the model (through the flow for the f-VAE).
        let snap = trainer.snapshot(false);
        let (worst, _) = plain_copy_error(&snap, &model, &device);
        assert!(worst < 1e-4, "{kind:?}: plain decoder differs by {worst}");
        assert_eq!(snap.prior_mode(class), mode, "{kind:?}");
    }
}

/// The largest difference between the snapshot's plain decoder copy and the model at one
/// latent point (through the flow for the f-VAE), and the number of values decoded.
pub(crate) fn plain_copy_error(
    snap: &latent_atlas::train::Snapshot,
    model: &latent_atlas::model::Model,
    device: &Device,
) -> (f32, usize) {
    let z = [0.4f32, -0.8];
    let plain = snap.decoder.decode(&z);
    let burn = to_vec(burn::tensor::activation::sigmoid(model.decode(to_tensor(
        z.to_vec(),
        1,
        2,
        device,
    ))));
    let worst = plain
        .iter()
        .zip(&burn)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    (worst, plain.len())
}

#[test]
fn every_family_in_the_catalogue_has_a_view_help_defaults_and_a_checkpoint_round_trip() {
    let mut names = std::collections::HashSet::new();
    for kind in ModelKind::ALL {
        let info = kind.info();
        assert!(
            names.insert(info.name),
            "{kind:?}: name {} taken twice",
            info.name
        );
        assert!(!info.label.is_empty() && !info.help.is_empty(), "{kind:?}");
        assert_eq!(
            serde_json::to_string(&kind).unwrap(),
            format!("\"{}\"", info.name),
            "{kind:?}: saved configs and the command line name it differently"
        );
        let defaults = TrainConfig {
            model: kind,
            adversarial: AdversarialParams::for_kind(kind),
            ..TrainConfig::default()
        };
        defaults
            .validate()
            .unwrap_or_else(|e| panic!("{kind:?}: defaults invalid: {e}"));
        let dir = tempfile::tempdir().unwrap();
        let mut trainer = Trainer::new(config(kind), mnist(), Device::flex()).unwrap();
        for _ in 0..15 {
            trainer.step().unwrap();
        }
        checkpoint::save(dir.path(), trainer.model(), &trainer.run_info("CPU (flex)")).unwrap();
        let reloaded = Trainer::from_checkpoint(dir.path(), mnist(), Device::flex()).unwrap();
        assert_eq!(reloaded.config().model, kind);
        let (a, b) = (trainer.evaluate(false), reloaded.evaluate(false));
        assert!(
            (a.reconstruction - b.reconstruction).abs() < 1e-3
                || (a.reconstruction.is_nan() && b.reconstruction.is_nan()),
            "{kind:?}: {} vs {}",
            a.reconstruction,
            b.reconstruction
        );
        let (sa, sb) = (trainer.snapshot(false), reloaded.snapshot(false));
        assert_eq!(sa.mu, sb.mu, "{kind:?}: posteriors differ after reloading");
        // A view: every probe sample is in the plane, as a disc or an outline.
        let scene = Scene::build(&trainer.snapshot(true), &SceneOptions::default());
        assert_eq!(
            scene.discs.len() + scene.outlines.len(),
            sa.probe.len(),
            "{kind:?}: the plane misses samples"
        );
        assert_eq!(
            !scene.prior_points.is_empty()
                || kind.draws().posterior == PosteriorShape::PriorSamples,
            kind.draws().prior_samples || !kind.draws().encoder,
            "{kind:?}: prior samples"
        );
    }
}

#[test]
fn the_cvae_refuses_unlabelled_data_and_the_trained_sigma_is_the_f_vaes() {
    let data = mnist();
    let mut unlabelled = (*data).clone();
    unlabelled.class_names = vec!["all".into()];
    let err = Trainer::new(
        config(ModelKind::Cvae),
        Arc::new(unlabelled),
        Device::flex(),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("needs class labels"), "{err}");
    let mut c = config(ModelKind::Vae);
    c.likelihood = Likelihood::GaussianTrained;
    assert!(c.validate().unwrap_err().contains("f-VAE"));
    c.model = ModelKind::FVae;
    assert!(c.validate().is_ok());
    c.latent_dim = 1;
    assert!(c.validate().unwrap_err().contains("at least 2"));
}

#[test]
fn the_f_vae_trains_its_sigmas_under_the_trained_gaussian() {
    let mut c = config(ModelKind::FVae);
    c.likelihood = Likelihood::GaussianTrained;
    let mut trainer = Trainer::new(c, mnist(), Device::flex()).unwrap();
    let first = trainer.step().unwrap();
    let mut last = first.clone();
    for _ in 0..100 {
        last = trainer.step().unwrap();
    }
    assert!(
        last.total.is_finite() && last.total < first.total,
        "{first:?} -> {last:?}"
    );
    let s2 = (
        first.extra("sigma2").unwrap(),
        last.extra("sigma2").unwrap(),
    );
    assert!(s2.0 != s2.1, "sigma2 did not move: {s2:?}");
    assert!(last.extra("sigma1").unwrap() > 0.0);
    // Under a Bernoulli likelihood sigma2 is not trained, so it is not reported.
    let mut bernoulli = Trainer::new(config(ModelKind::FVae), mnist(), Device::flex()).unwrap();
    let m = bernoulli.step().unwrap();
    assert!(
        m.extra("sigma1").is_some() && m.extra("sigma2").is_none(),
        "{m:?}"
    );
}

#[test]
fn the_adversarial_families_train_and_report_their_terms() {
    for kind in [ModelKind::Gan, ModelKind::Aae, ModelKind::Ali] {
        let mut trainer = Trainer::new(config(kind), mnist(), Device::flex()).unwrap();
        let steps: Vec<_> = (0..120).map(|_| trainer.step().unwrap()).collect();
        for m in &steps {
            for key in ["d_loss", "g_loss", "d_real_accuracy", "d_fake_accuracy"] {
                let v = m.extra(key).unwrap_or(f32::NAN);
                assert!(v.is_finite(), "{kind:?} step {}: {key} = {v}", m.step);
            }
        }
        let last = steps.last().unwrap();
        let snap = trainer.snapshot(true);
        let test = trainer.evaluate(false);
        match kind {
            ModelKind::Gan => {
                // Two generator steps per phase: the first one's regulariser is exactly zero,
                // the phase's mean is not.
                assert!(
                    steps
                        .iter()
                        .all(|m| m.extra("regulariser_first_step") == Some(0.0))
                );
                assert!(last.extra("regulariser").unwrap() > 0.0, "{last:?}");
                assert!(test.reconstruction.is_nan() && test.hole_share.is_none());
                assert!(snap.coverage.is_none());
                assert!(snap.sigma.iter().all(|&s| s == 0.0));
            }
            ModelKind::Aae => {
                let (first, late) = (
                    mean(
                        &steps[..10]
                            .iter()
                            .map(|m| m.reconstruction)
                            .collect::<Vec<_>>(),
                    ),
                    mean(
                        &steps[110..]
                            .iter()
                            .map(|m| m.reconstruction)
                            .collect::<Vec<_>>(),
                    ),
                );
                assert!(late < 0.8 * first, "AAE reconstruction {first} -> {late}");
                assert!(test.reconstruction.is_finite() && test.hole_share.is_some());
            }
            ModelKind::Ali => {
                assert_eq!(
                    snap.view.prior_points.as_ref().map(Vec::len),
                    Some(snap.mu.len())
                );
                assert!(test.reconstruction.is_finite());
            }
            _ => unreachable!(),
        }
    }
}

#[test]
fn a_single_generator_step_per_phase_leaves_the_regulariser_at_zero() {
    let mut c = config(ModelKind::Gan);
    c.adversarial.g_steps = 1;
    let mut trainer = Trainer::new(c, mnist(), Device::flex()).unwrap();
    for _ in 0..20 {
        let m = trainer.step().unwrap();
        assert_eq!(m.extra("regulariser"), Some(0.0), "{m:?}");
    }
}

#[test]
fn each_family_holds_only_the_networks_it_uses() {
    let device = Device::flex();
    let c = config(ModelKind::Vae);
    let (pixels, d) = (784, c.latent_dim);
    let dense = |a: usize, b: usize| a * b + b;
    let mut back = vec![d];
    back.extend(c.hidden.iter().rev());
    back.push(pixels);
    let decoder: usize = back.windows(2).map(|w| dense(w[0], w[1])).sum();
    let head = dense(*c.hidden.last().unwrap(), d);
    // Parameters outside the discriminator.
    let own = |kind: ModelKind| {
        let mut c = config(kind);
        c.set_model(kind);
        let model = c.build_model(ImageShape::new(1, 28, 28), 10, &device);
        model.num_params() - model.discriminator().map_or(0, |m| m.num_params())
    };
    // The GAN's generator normalises each hidden layer: a scale and a shift per unit, and its
    // running mean and variance (burn counts running state among a module's parameters).
    let norms = 4 * c.hidden.iter().sum::<usize>();
    assert_eq!(
        own(ModelKind::Gan),
        decoder + norms,
        "the GAN is a generator alone"
    );
    let (ae, vae) = (own(ModelKind::Ae), own(ModelKind::Vae));
    assert_eq!(vae - ae, head, "the AE has no log-variance head");
    assert_eq!(
        own(ModelKind::Aae),
        ae,
        "the AAE's encoder is a point encoder"
    );
    assert_eq!(own(ModelKind::Ali), ae, "ALI's encoder is a point encoder");

    // A run saved before the networks were split names its file and the layout.
    let dir = tempfile::tempdir().unwrap();
    let trainer = Trainer::new(config(ModelKind::Vae), mnist(), Device::flex()).unwrap();
    checkpoint::save(dir.path(), trainer.model(), &trainer.run_info("CPU (flex)")).unwrap();
    let path = dir.path().join("config.json");
    let mut info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    info.as_object_mut().unwrap().remove("layout");
    std::fs::write(&path, info.to_string()).unwrap();
    let err = Trainer::from_checkpoint(dir.path(), mnist(), Device::flex())
        .err()
        .expect("an old layout is refused")
        .to_string();
    assert!(
        err.contains("model.bpk") && err.contains("layout 1"),
        "{err}"
    );
}

#[test]
fn the_bn_vae_trains_on_whole_batches_only_and_refuses_a_batch_of_one() {
    // 300 training images in batches of 128: two whole batches, and a ragged 44 dropped.
    let mut data = (*mnist()).clone();
    data.train = data.train.select(&(0..300).collect::<Vec<_>>());
    let data = Arc::new(data);
    let mut c = config(ModelKind::BnVae);
    c.hyper.batch_size = 128;
    let mut trainer = Trainer::new(c.clone(), data.clone(), Device::flex()).unwrap();
    for _ in 0..6 {
        let m = trainer.step().unwrap();
        // With batch statistics over a whole batch the KL is at least the floor.
        let floor = m.extra("kl_floor").unwrap();
        assert!(
            m.kl >= floor - 1e-3,
            "step {}: KL {} below the floor {floor}",
            m.step,
            m.kl
        );
    }
    assert_eq!(trainer.epochs_done(), 3, "two steps per epoch");
    // Any other family visits the ragged batch too.
    let mut vae = Trainer::new(config(ModelKind::Vae), data, Device::flex()).unwrap();
    for _ in 0..6 {
        vae.step().unwrap();
    }
    assert_eq!(vae.epochs_done(), 2, "three steps per epoch");
    c.hyper.batch_size = 1;
    let err = c.validate().unwrap_err();
    assert!(err.contains("at least 2"), "{err}");
}

#[test]
fn the_cvae_class_means_step_at_their_own_rate() {
    // Adam's first step moves each parameter by about its learning rate.
    let moved = |scale: f64| {
        let mut c = config(ModelKind::Cvae);
        c.hyper.class_mean_lr_scale = scale;
        let mut trainer = Trainer::new(c, mnist(), Device::flex()).unwrap();
        let before = trainer.model().class_means().unwrap();
        trainer.step().unwrap();
        let after = trainer.model().class_means().unwrap();
        before
            .iter()
            .zip(&after)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max)
    };
    let (one, five) = (moved(1.0), moved(5.0));
    assert!((one - 1e-3).abs() < 2e-4, "{one}");
    assert!((five / one - 5.0).abs() < 0.5, "{one} vs {five}");
}

#[test]
fn ali_with_a_gaussian_encoder_trains_draws_posteriors_and_round_trips() {
    let mut c = config(ModelKind::Ali);
    c.set_model(ModelKind::Ali);
    c.adversarial.ali_gaussian_encoder = true;
    c.adversarial.ali_loss = latent_atlas::model::adversarial::AliLoss::NonSaturating;
    let mut trainer = Trainer::new(c, mnist(), Device::flex()).unwrap();
    for _ in 0..20 {
        let m = trainer.step().unwrap();
        assert!(m.extra("g_loss").unwrap().is_finite(), "{m:?}");
    }
    let s = trainer.snapshot(true);
    assert!(
        s.sigma.iter().all(|&v| v > 0.0),
        "a Gaussian encoder's posteriors have a spread"
    );
    let dir = tempfile::tempdir().unwrap();
    checkpoint::save(dir.path(), trainer.model(), &trainer.run_info("CPU (flex)")).unwrap();
    let reloaded = Trainer::from_checkpoint(dir.path(), mnist(), Device::flex()).unwrap();
    assert_eq!(reloaded.snapshot(false).mu, trainer.snapshot(false).mu);
}
