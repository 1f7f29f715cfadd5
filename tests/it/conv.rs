//! The convolutional architecture for every family, on grey MNIST and on the colour shapes:
//! each trains (the likelihood families' loss falls), the plain decoder copy decodes like the
//! model, and a checkpoint round-trips.

use std::sync::{Arc, OnceLock};

use burn::module::Module;
use burn::tensor::Device;
use latent_atlas::data::Dataset;
use latent_atlas::data::builtin::Builtin;
use latent_atlas::model::Arch;
use latent_atlas::train::{ModelKind, TrainConfig, Trainer, checkpoint};

fn dataset(which: Builtin) -> Arc<Dataset> {
    static MNIST: OnceLock<Arc<Dataset>> = OnceLock::new();
    static SHAPES: OnceLock<Arc<Dataset>> = OnceLock::new();
    let cell = match which {
        Builtin::Shapes => &SHAPES,
        _ => &MNIST,
    };
    cell.get_or_init(|| Arc::new(which.load(0).expect("built-in data loads")))
        .clone()
}

fn config(model: ModelKind) -> TrainConfig {
    let mut c = TrainConfig {
        arch: Arch::Conv,
        probe_size: 100,
        nll_samples: 4,
        nll_images: 20,
        ..TrainConfig::default()
    };
    c.set_model(model);
    c.hyper.batch_size = 32;
    c
}

fn mean(v: &[f32]) -> f32 {
    v.iter().sum::<f32>() / v.len() as f32
}

#[test]
fn every_family_trains_with_convolutions_on_grey_and_colour_images() {
    let device = Device::flex();
    for data in [dataset(Builtin::Mnist), dataset(Builtin::Shapes)] {
        let dim = data.dim();
        for kind in ModelKind::ALL {
            let adversarial = kind.draws().adversarial;
            let mut trainer = Trainer::new(config(kind), data.clone(), device.clone()).unwrap();
            let steps = if adversarial { 10 } else { 40 };
            let totals: Vec<f32> = (0..steps).map(|_| trainer.step().unwrap().total).collect();
            assert!(
                totals.iter().all(|v| v.is_finite()),
                "{kind:?} on {}: {totals:?}",
                data.name
            );
            if !adversarial {
                let (first, last) = (mean(&totals[..8]), mean(&totals[steps - 8..]));
                assert!(
                    last < 0.9 * first,
                    "{kind:?} on {}: loss did not fall: {first} -> {last}",
                    data.name
                );
            }

            // The plain copy decodes like the model (through the flow for the f-VAE).
            let model = trainer.model().valid();
            let snap = trainer.snapshot(false);
            let (worst, len) = super::families::plain_copy_error(&snap, &model, &device);
            assert_eq!(len, dim, "{kind:?} on {}", data.name);
            assert!(
                worst < 1e-4,
                "{kind:?} on {}: the plain decoder differs by {worst}",
                data.name
            );

            // A checkpoint round-trips: same reconstruction and posteriors.
            let dir = tempfile::tempdir().unwrap();
            checkpoint::save(dir.path(), trainer.model(), &trainer.run_info("CPU (flex)")).unwrap();
            let reloaded = Trainer::from_checkpoint(dir.path(), data.clone(), device.clone())
                .unwrap_or_else(|e| panic!("{kind:?} on {}: {e}", data.name));
            assert_eq!(reloaded.config().arch, Arch::Conv);
            let (sa, sb) = (trainer.snapshot(false), reloaded.snapshot(false));
            assert_eq!(sa.mu, sb.mu, "{kind:?} on {}: posteriors differ", data.name);
            assert_eq!(
                sa.decoder.decode(&[0.4, -0.8]),
                sb.decoder.decode(&[0.4, -0.8]),
                "{kind:?} on {}: decoders differ",
                data.name
            );
        }
    }
}

#[test]
fn a_conv_checkpoint_refuses_images_of_another_shape() {
    let mnist = dataset(Builtin::Mnist);
    let mut trainer = Trainer::new(config(ModelKind::Vae), mnist, Device::flex()).unwrap();
    trainer.step().unwrap();
    let dir = tempfile::tempdir().unwrap();
    checkpoint::save(dir.path(), trainer.model(), &trainer.run_info("CPU (flex)")).unwrap();
    let err = Trainer::from_checkpoint(dir.path(), dataset(Builtin::Shapes), Device::flex())
        .err()
        .expect("a 28x28 grey model does not load for 32x32 colour images");
    let text = err.to_string();
    assert!(
        text.contains("28x28") && text.contains("32x32"),
        "the message names both shapes: {text}"
    );
}
