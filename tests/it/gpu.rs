//! The GPU path, run: every family trains on burn's wgpu backend as it does on the CPU from the
//! same weights, and everything that exists only for devices is exercised there (the training
//! images kept on the device, steps read back together with a rollback, the plain decoder copy
//! and snapshots taken from a device model, checkpoints moved between devices, the evaluator
//! trained on a device).
//!
//! On a machine without a GPU these take a software adapter (lavapipe through Vulkan, which
//! `.ci/run` installs, else llvmpipe through GL). With no adapter at all they fail, unless
//! `LATENT_ATLAS_SKIP_GPU_TESTS=1`: a GPU path that silently skips is a GPU path never run.
//!
//! They keep networks, batches and step counts small: on a software adapter most of their time
//! goes to compiling kernels, once per kernel for the whole test binary.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use burn::module::Module;
use burn::tensor::Device;
use latent_atlas::data::Dataset;
use latent_atlas::data::builtin::Builtin;
use latent_atlas::evaluator::Evaluator;
use latent_atlas::model::{Arch, Likelihood};
use latent_atlas::train::{ModelKind, StepMetrics, TrainConfig, TrainError, Trainer, checkpoint};

/// Relative tolerance between a step on the GPU and the same step on the CPU from the same
/// weights, batches and noise. The two backends sum in different orders (the CPU's fused
/// kernels by cache blocks, wgpu's by workgroup tiles), which in f32 moves a 784-term sum by
/// about 1e-5 of its size; Adam then moves every weight by about the learning rate whatever
/// the size of its gradient, so a gradient near zero whose sign rounding flips moves that
/// weight the other way. Over the few steps taken here that stays far inside 1%; a wrong
/// kernel, layout or gradient is off by far more from the first step.
const STEP_TOLERANCE: f32 = 0.01;

/// What the GPU runtime logs at warning level or above while the GPU tests run. cubecl reports
/// a kernel launch that failed, where nothing reads what it would have written, only by a
/// warning: a test that only compared results would miss it.
struct RuntimeLog(Mutex<Vec<String>>);

impl log::Log for RuntimeLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let line = format!("{} {}: {}", record.level(), record.target(), record.args());
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    }

    fn flush(&self) {}
}

static RUNTIME_LOG: RuntimeLog = RuntimeLog(Mutex::new(Vec::new()));

/// Fails when the GPU runtime has logged a warning or an error so far (in any GPU test: they
/// share the device, so a failure is not always the current test's).
fn assert_runtime_quiet() {
    let lines = RUNTIME_LOG.0.lock().unwrap_or_else(|p| p.into_inner());
    assert!(
        lines.is_empty(),
        "the GPU runtime logged {} warnings, the first: {}",
        lines.len(),
        lines.join("\n").chars().take(2000).collect::<String>()
    );
}

/// The wgpu device, or `None` (with a notice) when there is none and the skip is asked for.
fn gpu() -> Option<Device> {
    if log::set_logger(&RUNTIME_LOG).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    stage("opening the GPU");
    match latent_atlas::backend::wgpu(true) {
        Ok(backend) => {
            eprintln!("gpu tests on {}", backend.description);
            Some(backend.device)
        }
        Err(e) if std::env::var("LATENT_ATLAS_SKIP_GPU_TESTS").is_ok_and(|v| v == "1") => {
            eprintln!("skipped (LATENT_ATLAS_SKIP_GPU_TESTS=1): {e}");
            None
        }
        Err(e) => panic!("{e}. (LATENT_ATLAS_SKIP_GPU_TESTS=1 skips the GPU tests.)"),
    }
}

/// How long one GPU test may run before the watchdog fails it: `LATENT_ATLAS_GPU_TEST_DEADLINE`
/// seconds, 1200 by default (the GPU tests together took 15 minutes on lavapipe with an empty kernel
/// cache, beside the rest of the suite).
fn deadline() -> Duration {
    let secs = std::env::var("LATENT_ATLAS_GPU_TEST_DEADLINE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1200);
    Duration::from_secs(secs)
}

/// What each running GPU test is doing now, by test: what the watchdog reports when one stalls.
static STAGES: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// The first GPU test that ran past its deadline, if any: the device it stalled on is shared,
/// so the tests after it fail at once instead of each waiting out its own deadline.
static STALLED: Mutex<Option<String>> = Mutex::new(None);

/// Records what the current GPU test is about to do (read by [`watched`]'s watchdog).
fn stage(what: impl Into<String>) {
    let test = std::thread::current().name().unwrap_or("").to_owned();
    let mut stages = STAGES.lock().unwrap_or_else(|p| p.into_inner());
    match stages.iter_mut().find(|(t, _)| *t == test) {
        Some(entry) => entry.1 = what.into(),
        None => stages.push((test, what.into())),
    }
}

/// Runs a GPU test's body on a thread of its own with the wgpu device, under a watchdog: a body
/// that runs past [`deadline`] fails the test with the stage it was in, instead of holding the
/// suite for ever (its thread is left where it is stuck; the random stream it may hold is the
/// GPU's alone, so the CPU tests go on). After one stall the GPU tests still to come fail at
/// once: they would wait on the same device.
fn watched(test: &'static str, body: impl FnOnce(Device) + Send + 'static) {
    if let Some(earlier) = STALLED.lock().unwrap_or_else(|p| p.into_inner()).clone() {
        panic!("not run: an earlier GPU test stalled on the shared device ({earlier})");
    }
    let outcome = watch(test, deadline(), move || {
        if let Some(device) = gpu() {
            body(device);
        }
    });
    if let Err(stalled) = outcome {
        *STALLED.lock().unwrap_or_else(|p| p.into_inner()) = Some(stalled.clone());
        panic!(
            "{stalled}: the GPU stopped answering (see where it waits with \
             `gdb -p PID -batch -ex 'thread apply all bt 12'`; raise the deadline with \
             LATENT_ATLAS_GPU_TEST_DEADLINE=SECONDS)"
        );
    }
}

/// Runs `body` on a thread named `test` and waits at most `limit`: a panic in it is passed on;
/// running past the limit gives what it was doing then (its last [`stage`]).
fn watch(
    test: &'static str,
    limit: Duration,
    body: impl FnOnce() + Send + 'static,
) -> Result<(), String> {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(test.to_owned())
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
            let _ = done.send(result);
        })
        .expect("a thread for the test");
    match finished.recv_timeout(limit) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => {
            let doing = STAGES
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .find(|(t, _)| t == test)
                .map_or_else(|| "starting".to_owned(), |(_, s)| s.clone());
            Err(format!(
                "{test} ran past {} s while {doing}",
                limit.as_secs_f64()
            ))
        }
    }
}

#[test]
fn the_watchdog_ends_a_stuck_test_saying_where_it_was() {
    let (_never_sent, never) = std::sync::mpsc::channel::<()>();
    let outcome = watch("watchdog_probe", Duration::from_millis(300), move || {
        stage("waiting on a channel nobody sends on");
        let _ = never.recv();
    });
    let message = outcome.unwrap_err();
    assert!(
        message.contains("watchdog_probe") && message.contains("a channel nobody sends on"),
        "{message}"
    );
    // A body that ends in time gives its result, and its panic stays a panic.
    assert!(watch("watchdog_quick", Duration::from_secs(30), || {}).is_ok());
    let panicked = std::panic::catch_unwind(|| {
        let _ = watch("watchdog_panic", Duration::from_secs(30), || {
            panic!("deliberately")
        });
    });
    assert!(panicked.is_err());
}

/// A small piece of a built-in set: 512 training images, 128 test images.
fn small(which: Builtin) -> Arc<Dataset> {
    static MNIST: OnceLock<Arc<Dataset>> = OnceLock::new();
    static SHAPES: OnceLock<Arc<Dataset>> = OnceLock::new();
    let cell = match which {
        Builtin::Shapes => &SHAPES,
        _ => &MNIST,
    };
    cell.get_or_init(|| {
        let full = which.load(0).expect("built-in data loads");
        let first = |n: usize| (0..n).collect::<Vec<_>>();
        Arc::new(Dataset {
            train: full.train.select(&first(512)),
            test: full.test.select(&first(128)),
            ..full
        })
    })
    .clone()
}

fn config(model: ModelKind, arch: Arch) -> TrainConfig {
    let mut c = TrainConfig {
        arch,
        hidden: vec![64, 32],
        probe_size: 64,
        nll_samples: 4,
        nll_images: 16,
        ..TrainConfig::default()
    };
    c.set_model(model);
    c.hyper.batch_size = 32;
    c
}

/// A trainer on the CPU and one on `gpu`, both loaded from one checkpoint of a fresh model:
/// the same weights (each backend draws its own initial ones), batches and noise.
fn twins(config: TrainConfig, data: &Arc<Dataset>, gpu: &Device) -> (Trainer, Trainer) {
    stage(format!(
        "building CPU and GPU twins of a {}",
        config.model.name()
    ));
    let fresh = Trainer::new(config, data.clone(), Device::flex()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    checkpoint::save(dir.path(), fresh.model(), &fresh.run_info("CPU (flex)")).unwrap();
    let cpu = Trainer::from_checkpoint(dir.path(), data.clone(), Device::flex()).unwrap();
    let gpu = Trainer::from_checkpoint(dir.path(), data.clone(), gpu.clone()).unwrap();
    (cpu, gpu)
}

/// The largest absolute difference between two equally long lists of values.
fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max)
}

fn relative(a: f32, b: f32) -> f32 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-3)
}

/// Steps both trainers `steps` times and checks that each step's loss agrees.
fn assert_same_steps(what: &str, cpu: &mut Trainer, gpu: &mut Trainer, steps: usize, tol: f32) {
    for s in 0..steps {
        stage(format!("{what}: step {s} of {steps}"));
        let (a, b) = (cpu.step().unwrap(), gpu.step().unwrap());
        assert!(b.total.is_finite(), "{what}: step {s} on the GPU: {b:?}");
        assert!(
            relative(a.total, b.total) < tol,
            "{what}: step {s}: CPU {} vs GPU {} (reconstruction {} vs {}, KL {} vs {})",
            a.total,
            b.total,
            a.reconstruction,
            b.reconstruction,
            a.kl,
            b.kl
        );
    }
}

#[test]
fn gpu_backend_takes_a_software_adapter_only_when_allowed_and_says_so() {
    watched(
        "gpu_backend_takes_a_software_adapter_only_when_allowed_and_says_so",
        |_| {
            let backend = latent_atlas::backend::wgpu(true).unwrap();
            match latent_atlas::backend::hardware_adapter() {
                Ok(_) => assert!(!backend.description.contains("software"), "{backend:?}"),
                Err(_) => {
                    assert!(
                        backend.description.contains("software adapter"),
                        "{}",
                        backend.description
                    );
                    assert!(backend.notice.is_some());
                    // `auto` never trains on a software adapter.
                    let auto = latent_atlas::backend::BackendChoice::Auto.select().unwrap();
                    assert!(auto.description.starts_with("CPU"), "{}", auto.description);
                    assert!(latent_atlas::backend::wgpu(false).is_err());
                }
            }
            assert!(backend.images_on_device);
            assert_runtime_quiet();
        },
    );
}

#[test]
fn gpu_every_likelihood_family_steps_as_on_the_cpu() {
    watched(
        "gpu_every_likelihood_family_steps_as_on_the_cpu",
        |device| {
            let data = small(Builtin::Mnist);
            for kind in ModelKind::ALL
                .into_iter()
                .filter(|k| !k.draws().adversarial)
            {
                let (mut cpu, mut gpu) = twins(config(kind, Arch::Mlp), &data, &device);
                // The GPU keeps its training images and cuts each batch there, as the app does.
                gpu.keep_images_on_device(true);
                assert_same_steps(kind.name(), &mut cpu, &mut gpu, 5, STEP_TOLERANCE);
                let (a, b) = (cpu.evaluate(true), gpu.evaluate(true));
                if let (Some(x), Some(y)) = (a.neg_elbo, b.neg_elbo) {
                    assert!(relative(x, y) < STEP_TOLERANCE, "{kind:?}: test {x} vs {y}");
                }
                if let (Some(x), Some(y)) = (a.nll, b.nll) {
                    assert!(relative(x, y) < STEP_TOLERANCE, "{kind:?}: NLL {x} vs {y}");
                }
                assert_eq!(a.neg_elbo.is_some(), b.neg_elbo.is_some(), "{kind:?}");
            }
            assert_runtime_quiet();
        },
    );
}

/// The adversarial families' discriminators draw dropout masks from each backend's own random
/// stream, so their steps agree only in distribution: the first step (untrained networks, the
/// discriminator near 1/2 everywhere) within 15% (the conv GAN's first losses were seen 9%
/// apart with other tests drawing from the CPU's stream beside it), later ones by staying
/// finite and in range.
fn adversarial_steps(kind: ModelKind, arch: Arch, data: &Arc<Dataset>, device: &Device) {
    let (mut cpu, mut gpu) = twins(config(kind, arch), data, device);
    let (a, b): (Vec<StepMetrics>, Vec<StepMetrics>) = (0..3)
        .map(|s| {
            stage(format!("{kind:?} {arch:?}: adversarial step {s} of 3"));
            (cpu.step().unwrap(), gpu.step().unwrap())
        })
        .unzip();
    assert!(
        relative(a[0].total, b[0].total) < 0.15,
        "{kind:?} {arch:?}: first step CPU {:?} vs GPU {:?}",
        a[0],
        b[0]
    );
    for m in &b {
        let d_loss = m.extra("d_loss").unwrap_or(f32::NAN);
        // The discriminator's loss: ln 4 for one that cannot tell, 0 for a perfect one.
        assert!(
            m.total.is_finite() && (0.0..10.0).contains(&d_loss),
            "{kind:?} {arch:?}: {m:?}"
        );
    }
}

#[test]
fn gpu_adversarial_families_step_as_on_the_cpu() {
    watched("gpu_adversarial_families_step_as_on_the_cpu", |device| {
        let data = small(Builtin::Mnist);
        for kind in ModelKind::ALL.into_iter().filter(|k| k.draws().adversarial) {
            adversarial_steps(kind, Arch::Mlp, &data, &device);
        }
        assert_runtime_quiet();
    });
}

#[test]
fn gpu_conv_vae_steps_as_on_the_cpu_on_grey_and_colour_images() {
    watched(
        "gpu_conv_vae_steps_as_on_the_cpu_on_grey_and_colour_images",
        |device| {
            for data in [small(Builtin::Mnist), small(Builtin::Shapes)] {
                let mut c = config(ModelKind::Vae, Arch::Conv);
                c.hyper.batch_size = 16;
                c.settle_likelihood(data.train.is_colour());
                let (mut cpu, mut gpu) = twins(c, &data, &device);
                gpu.keep_images_on_device(true);
                assert_same_steps(&data.name, &mut cpu, &mut gpu, 3, STEP_TOLERANCE);
                let (a, b) = (cpu.evaluate(true), gpu.evaluate(true));
                for (x, y) in [(a.neg_elbo, b.neg_elbo), (a.nll, b.nll)] {
                    let (x, y) = (x.unwrap(), y.unwrap());
                    assert!(
                        relative(x, y) < STEP_TOLERANCE,
                        "{}: test {x} vs {y}",
                        data.name
                    );
                }
                // The plain decoder copy, taken from the device model, decodes like it.
                let model = gpu.model().valid();
                let snap = gpu.snapshot(false);
                let (worst, len) = super::families::plain_copy_error(&snap, &model, &device);
                assert_eq!(len, data.dim());
                assert!(worst < 1e-4, "{}: plain copy differs by {worst}", data.name);
            }
            assert_runtime_quiet();
        },
    );
}

#[test]
fn gpu_conv_gan_steps_as_on_the_cpu() {
    watched("gpu_conv_gan_steps_as_on_the_cpu", |device| {
        adversarial_steps(ModelKind::Gan, Arch::Conv, &small(Builtin::Mnist), &device);
        assert_runtime_quiet();
    });
}

#[test]
fn gpu_snapshots_and_the_plain_decoder_copy_match_the_cpu_model() {
    watched(
        "gpu_snapshots_and_the_plain_decoder_copy_match_the_cpu_model",
        |device| {
            let data = small(Builtin::Mnist);
            for kind in [ModelKind::Vae, ModelKind::FVae, ModelKind::Cvae] {
                let (mut cpu, mut gpu) = twins(config(kind, Arch::Mlp), &data, &device);
                for _ in 0..3 {
                    cpu.step().unwrap();
                    gpu.step().unwrap();
                }
                let (sa, sb) = (cpu.snapshot(true), gpu.snapshot(true));
                assert_eq!(sa.mu.len(), sb.mu.len());
                let worst_mu = largest_difference(&sa.mu, &sb.mu);
                assert!(
                    worst_mu < 0.02,
                    "{kind:?}: posterior means differ by {worst_mu}"
                );
                let (da, db) = (
                    sa.decoder.decode(&[0.4, -0.8]),
                    sb.decoder.decode(&[0.4, -0.8]),
                );
                let worst_px = largest_difference(&da, &db);
                assert!(
                    worst_px < 0.02,
                    "{kind:?}: decoded pixels differ by {worst_px}"
                );
                let (worst, _) =
                    super::families::plain_copy_error(&sb, &gpu.model().valid(), &device);
                assert!(worst < 1e-4, "{kind:?}: plain copy differs by {worst}");
            }
            assert_runtime_quiet();
        },
    );
}

#[test]
fn gpu_checkpoints_move_from_the_gpu_to_the_cpu_and_back() {
    watched(
        "gpu_checkpoints_move_from_the_gpu_to_the_cpu_and_back",
        |device| {
            let data = small(Builtin::Mnist);
            let mut gpu = Trainer::new(
                config(ModelKind::Vae, Arch::Mlp),
                data.clone(),
                device.clone(),
            )
            .unwrap();
            for _ in 0..3 {
                gpu.step().unwrap();
            }
            let there = tempfile::tempdir().unwrap();
            checkpoint::save(there.path(), gpu.model(), &gpu.run_info("GPU")).unwrap();
            let mut cpu =
                Trainer::from_checkpoint(there.path(), data.clone(), Device::flex()).unwrap();
            assert_eq!(cpu.step_count(), 3);
            let (sg, sc) = (gpu.snapshot(false), cpu.snapshot(false));
            let worst = largest_difference(&sg.mu, &sc.mu);
            assert!(
                worst < 1e-3,
                "posterior means differ by {worst} after the move"
            );
            cpu.step().unwrap();
            let back = tempfile::tempdir().unwrap();
            checkpoint::save(back.path(), cpu.model(), &cpu.run_info("CPU (flex)")).unwrap();
            let gpu_device = device.clone();
            let again = Trainer::from_checkpoint(back.path(), data.clone(), device).unwrap();
            assert_eq!(again.step_count(), 4);
            let (a, b) = (cpu.evaluate(false), again.evaluate(false));
            let (a, b) = (a.neg_elbo.unwrap(), b.neg_elbo.unwrap());
            assert!(
                relative(a, b) < 1e-3,
                "test negative ELBO CPU {a} vs GPU {b}"
            );
            // With the optimiser's state: a run saved on the GPU goes on on the CPU (its state
            // is reloaded on the CPU whatever burn's default device is), and one saved on the
            // CPU goes on on the GPU (the state moves to the weights' device at the first
            // step), taking the same steps as the run it came from.
            let full = tempfile::tempdir().unwrap();
            gpu.save(full.path(), "GPU").unwrap();
            let mut on_cpu =
                Trainer::from_checkpoint(full.path(), data.clone(), Device::flex()).unwrap();
            assert_same_steps(
                "resumed on the CPU",
                &mut on_cpu,
                &mut gpu,
                3,
                STEP_TOLERANCE,
            );
            let full = tempfile::tempdir().unwrap();
            on_cpu.save(full.path(), "CPU (flex)").unwrap();
            let mut on_gpu = Trainer::from_checkpoint(full.path(), data, gpu_device).unwrap();
            assert_same_steps(
                "resumed on the GPU",
                &mut on_cpu,
                &mut on_gpu,
                3,
                STEP_TOLERANCE,
            );
            assert_runtime_quiet();
        },
    );
}

#[test]
fn gpu_batched_readback_from_device_images_matches_single_steps_and_rolls_back() {
    watched(
        "gpu_batched_readback_from_device_images_matches_single_steps_and_rolls_back",
        |device| {
            let data = small(Builtin::Mnist);
            let c = config(ModelKind::Vae, Arch::Mlp);
            let mut single = Trainer::new(c.clone(), data.clone(), device.clone()).unwrap();
            let mut batched = Trainer::new(c.clone(), data.clone(), device.clone()).unwrap();
            batched.keep_images_on_device(true);
            let one: Vec<StepMetrics> = (0..6).map(|_| single.step().unwrap()).collect();
            let mut many = batched.steps(3).unwrap();
            many.extend(batched.steps(3).unwrap());
            assert_eq!(many.len(), 6);
            for (a, b) in one.iter().zip(&many) {
                assert_eq!(a.step, b.step);
                assert!(
                    relative(a.total, b.total) < 1e-4,
                    "step {}: {} one at a time vs {} read back together",
                    a.step,
                    a.total,
                    b.total
                );
            }

            // A loss that overflows at the first step: the batch's updates went ahead, and the model
            // goes back to the copy before them.
            let bad = TrainConfig {
                likelihood: Likelihood::Gaussian { sigma: 1e-30 },
                ..c
            };
            let mut trainer = Trainer::new(bad, data, device).unwrap();
            trainer.keep_images_on_device(true);
            let before = trainer.snapshot(false);
            match trainer.steps(4) {
                Err(TrainError::NonFinite {
                    step: 1,
                    restored_step: 0,
                    ..
                }) => {}
                other => panic!("expected a non-finite loss error, got {other:?}"),
            }
            assert_eq!(trainer.step_count(), 0);
            let after = trainer.snapshot(false);
            assert_eq!(before.mu, after.mu, "the model was not restored");
            assert_runtime_quiet();
        },
    );
}

#[test]
fn gpu_evaluator_trains_on_the_device_and_scores_a_device_model() {
    watched(
        "gpu_evaluator_trains_on_the_device_and_scores_a_device_model",
        |device| {
            let data = small(Builtin::Mnist);
            let evaluator = Evaluator::train(&data, &device, &mut |_| {}).unwrap();
            let on_cpu = Evaluator::train(&data, &Device::flex(), &mut |_| {}).unwrap();
            // 512 images, five passes: far better than chance (0.1) on either device, and alike.
            assert!(evaluator.test_accuracy > 0.6, "{}", evaluator.test_accuracy);
            assert!(
                (evaluator.test_accuracy - on_cpu.test_accuracy).abs() < 0.1,
                "accuracy on the GPU {} vs the CPU {}",
                evaluator.test_accuracy,
                on_cpu.test_accuracy
            );
            let mut trainer =
                Trainer::new(config(ModelKind::Vae, Arch::Mlp), data, device.clone()).unwrap();
            for _ in 0..10 {
                trainer.step().unwrap();
            }
            let scores = latent_atlas::evaluator::scores::score(
                &evaluator,
                &trainer.snapshot(false),
                64,
                1.0,
                0,
            );
            assert!(scores.frechet.is_finite(), "{scores:?}");
            assert!(
                (0.0..=scores.max_entropy + 1e-4).contains(&scores.entropy),
                "{scores:?}"
            );
            let total: f32 = scores.histogram.iter().sum();
            assert!((total - 1.0).abs() < 1e-3, "{scores:?}");
            let recon = scores
                .reconstruction_accuracy
                .expect("a VAE has an encoder");
            assert!((0.0..=1.0).contains(&recon), "{scores:?}");
            assert_runtime_quiet();
        },
    );
}

/// The case that once hung the suite: a machine with OpenGL (Mesa's llvmpipe) and no Vulkan
/// driver. Vulkan is hidden from the child process, so wgpu sees only GL adapters (or none):
/// `--backend gpu` must end at once, naming the packages to install, instead of training on GL.
#[cfg(target_os = "linux")]
#[test]
fn gpu_without_vulkan_is_refused_at_once_with_what_to_install() {
    let out = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_latent-atlas"))
        .args(["train", "--backend", "gpu", "--epochs", "1", "--out"])
        .arg(out.path())
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .env("LATENT_ATLAS_SOFTWARE_GPU", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            panic!("`train --backend gpu` without Vulkan ran past 180 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!status.success(), "it trained without Vulkan: {stderr}");
    assert!(
        stderr.contains(latent_atlas::backend::VULKAN_PACKAGES),
        "{stderr}"
    );
}

/// Polls a device read until it is here, as a page's turns do (at most a minute).
fn poll_until(mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "a device read took over a minute"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[test]
fn gpu_asynchronous_reads_take_the_same_steps_and_the_cpu_copy_matches_the_model() {
    // A page's WebGPU path on the desktop's wgpu: steps launched, their values polled for and
    // settled; then every parameter read back as one copy on the CPU, which snapshots read.
    watched(
        "gpu_asynchronous_reads_take_the_same_steps_and_the_cpu_copy_matches_the_model",
        |device| {
            let data = small(Builtin::Mnist);
            for kind in [ModelKind::Vae, ModelKind::BnVae, ModelKind::FVae] {
                let c = config(kind, Arch::Mlp);
                let mut sync = Trainer::new(c.clone(), data.clone(), device.clone()).unwrap();
                let mut pending = Trainer::new(c, data.clone(), device.clone()).unwrap();
                pending.set_async_reads(true);
                assert!(!pending.copy_is_fresh(), "no copy yet");
                let want: Vec<StepMetrics> = (0..2).flat_map(|_| sync.steps(4).unwrap()).collect();
                let mut got = Vec::new();
                while got.len() < want.len() {
                    let launched = pending.launch(4).unwrap();
                    let mut read = launched.read();
                    poll_until(|| read.poll());
                    let values = read.take().unwrap().unwrap();
                    got.extend(pending.settle(launched, &values).unwrap());
                }
                for (a, b) in want.iter().zip(&got) {
                    assert_eq!(a.step, b.step, "{kind:?}");
                    assert!(
                        relative(a.total, b.total) < 1e-4,
                        "{kind:?} step {}: {} read at once vs {} read later",
                        a.step,
                        a.total,
                        b.total
                    );
                    assert_eq!(a.extra.len(), b.extra.len(), "{kind:?}: {:?}", b.extra);
                }
                let mut copy = pending.start_copy();
                poll_until(|| copy.poll());
                pending.install_copy(copy).unwrap();
                assert!(pending.copy_is_fresh());
                let (sa, sb) = (sync.snapshot(false), pending.snapshot(false));
                let worst = largest_difference(&sa.mu, &sb.mu);
                assert!(
                    worst < 1e-3,
                    "{kind:?}: the copy's posteriors differ by {worst}"
                );
                let (da, db) = (
                    sa.decoder.decode(&[0.4, -0.8]),
                    sb.decoder.decode(&[0.4, -0.8]),
                );
                let worst = largest_difference(&da, &db);
                assert!(worst < 1e-3, "{kind:?}: the copy decodes {worst} apart");
            }
            assert_runtime_quiet();
        },
    );
}

/// The dense layers' product on a software adapter (`latent_atlas_kernels::gpu`): its values and
/// both gradients against burn's product on the same device, for every pair of transposes and
/// shapes that fill its 4x4 blocks, leave them ragged, or are a single element.
#[test]
fn gpu_blocked_product_and_its_gradients_match_burns() {
    watched(
        "gpu_blocked_product_and_its_gradients_match_burns",
        |device| {
            use burn::tensor::{Tensor, TensorData};
            use latent_atlas_kernels::gpu::{matmul, on_cube};
            let device = device.autodiff();
            let uneven = |rows: usize, cols: usize, seed: usize| {
                let v: Vec<f32> = (0..rows * cols)
                    .map(|i| (((i + seed) * 37 % 101) as f32 / 50.0 - 1.0) * 0.3)
                    .collect();
                Tensor::<2>::from_data(TensorData::new(v, [rows, cols]), &device).require_grad()
            };
            let values = |t: Tensor<2>| latent_atlas_kernels::to_vec(t);
            let worst = |a: &[f32], b: &[f32]| {
                assert_eq!(a.len(), b.len());
                let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                a.iter()
                    .zip(b)
                    .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
                    / scale
            };
            for (m, k, n) in [
                (1, 1, 1),
                (7, 5, 9),
                (8, 2, 4),
                (33, 100, 20),
                (100, 50, 130),
            ] {
                for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                    stage(format!("{m}x{k} by {k}x{n}, transposes {ta} {tb}"));
                    let a = if ta { uneven(k, m, 1) } else { uneven(m, k, 1) };
                    let b = if tb { uneven(n, k, 2) } else { uneven(k, n, 2) };
                    assert!(
                        on_cube(&a) && on_cube(&b),
                        "the product is taken on this device"
                    );
                    let ours = matmul(a.clone(), b.clone(), ta, tb);
                    let op = |t: Tensor<2>, flag: bool| if flag { t.transpose() } else { t };
                    let burns = op(a.clone(), ta).matmul(op(b.clone(), tb));
                    assert_eq!(ours.dims(), [m, n]);
                    let case = format!("{m}x{k} by {k}x{n}, transposes {ta} {tb}");
                    assert!(
                        worst(&values(ours.clone()), &values(burns.clone())) < 1e-5,
                        "{case}: values"
                    );
                    // An upstream gradient that is not all ones, so a transposed gradient shows.
                    let w = uneven(m, n, 3).detach();
                    let (g1, g2) = (
                        (ours * w.clone()).sum().backward(),
                        (burns * w).sum().backward(),
                    );
                    for (name, t) in [("a", &a), ("b", &b)] {
                        let (x, y) = (t.grad(&g1).expect("grad"), t.grad(&g2).expect("grad"));
                        assert!(
                            worst(&values(x), &values(y)) < 1e-5,
                            "{case}: gradient of {name}"
                        );
                    }
                }
            }
            assert_runtime_quiet();
        },
    );
}
