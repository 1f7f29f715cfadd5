//! `latent-atlas bench`: training throughput of the reference model (784-512-256-2 MLP VAE,
//! batch 128, Adam, Bernoulli) on each CPU backend, idle and with another core kept busy, a
//! breakdown of where a step's time goes, and the latency of decoding one latent point.
//! Every figure is a median over rounds (or repetitions) measured in this run. A spinner on
//! stderr says which measurement is running.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::Device;

use crate::backend::BackendChoice;
use crate::data::batch::{EpochOrder, pixels, to_tensor, to_vec};
use crate::data::builtin::Builtin;
use crate::model::Likelihood;
use crate::rng::Rng;
use crate::train::{AdversarialParams, TrainConfig, Trainer};

/// `latent-atlas bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Seconds per timed round.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Timed rounds per backend and condition (rounds interleave the backends).
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// Backends to measure, comma-separated (`ndarray` needs a build with `--features ndarray`).
    #[arg(long, value_delimiter = ',', default_value = "flex")]
    pub backends: Vec<BackendChoice>,
    /// Skip the run with a second thread keeping one core busy.
    #[arg(long)]
    pub no_load: bool,
    /// The peer's training samples/s measured beside this run (`torch_vae.py speed`): prints
    /// `speedup_vs_peer`, the first backend's idle median over it.
    #[arg(long, value_name = "N")]
    pub peer_samples_per_sec: Option<f64>,
    /// Seconds to time each setting of the adversarial iteration (GAN, reference sizes; the
    /// settings take turns in six rounds; 0 skips it).
    #[arg(long, default_value_t = 5.0)]
    pub gan_seconds: f64,
    /// Seconds per timed round of the convolutional VAE (on MNIST and on the colour shapes;
    /// 0 skips it).
    #[arg(long, default_value_t = 5.0)]
    pub conv_seconds: f64,
    /// Instead of the speed table: train as the window does, folding every event and snapshot
    /// into the explorer's state without drawing, for this many seconds, and print resident
    /// memory and what the state holds each minute.
    #[arg(long, value_name = "SECONDS")]
    pub soak: Option<f64>,
}

/// The spinner on stderr that says what is being measured (hidden when stderr is not a
/// terminal); results go to stdout around it.
fn spinner() -> &'static indicatif::ProgressBar {
    static BAR: std::sync::OnceLock<indicatif::ProgressBar> = std::sync::OnceLock::new();
    BAR.get_or_init(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    })
}

/// Prints a result line without tearing the spinner.
macro_rules! say {
    ($($arg:tt)*) => {
        spinner().suspend(|| println!($($arg)*))
    };
}

/// Says what is being measured now.
fn phase(what: impl Into<String>) {
    spinner().set_message(what.into());
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn reference_config() -> TrainConfig {
    TrainConfig {
        probe_size: 16,
        nll_samples: 0,
        ..TrainConfig::default()
    }
}

/// Median milliseconds of one GAN iteration for each of `settings` on `device`, in the same
/// order: every setting gets a trainer, and the timing goes round them in `rounds` turns of
/// about `seconds / rounds` each, so a slow spell of the machine falls on all of them alike.
fn gan_iteration_ms(
    data: &Arc<crate::data::Dataset>,
    device: &Device,
    settings: &[AdversarialParams],
    seconds: f64,
    rounds: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut trainers = Vec::new();
    for adversarial in settings {
        let config = TrainConfig {
            model: crate::train::ModelKind::Gan,
            adversarial: adversarial.clone(),
            ..reference_config()
        };
        let mut trainer = Trainer::new(config, data.clone(), device.clone())?;
        for _ in 0..5 {
            trainer.step()?;
        }
        trainers.push(trainer);
    }
    let rounds = rounds.max(1);
    let mut times = vec![Vec::new(); trainers.len()];
    for _ in 0..rounds {
        for (trainer, times) in trainers.iter_mut().zip(&mut times) {
            let start = Instant::now();
            let mut taken = 0;
            while start.elapsed().as_secs_f64() < seconds / rounds as f64 || taken < 3 {
                let t = Instant::now();
                trainer.step()?;
                times.push(t.elapsed().as_secs_f64() * 1e3);
                taken += 1;
            }
        }
    }
    Ok(times.into_iter().map(median).collect())
}

/// Trains for `seconds` and returns samples per second.
fn timed_round(trainer: &mut Trainer, seconds: f64) -> anyhow::Result<f64> {
    let batch = trainer.config().hyper.batch_size;
    let start = Instant::now();
    let mut samples = 0usize;
    while start.elapsed().as_secs_f64() < seconds {
        trainer.step()?;
        samples += batch;
        spinner().set_position(samples as u64);
    }
    Ok(samples as f64 / start.elapsed().as_secs_f64())
}

/// A thread spinning on one core until dropped, like a UI thread busy while training runs.
struct BusyCore {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BusyCore {
    fn start() -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("bench-busy-core".into())
            .spawn(move || {
                let mut x = 1u64;
                while !flag.load(Ordering::Relaxed) {
                    for _ in 0..10_000 {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for BusyCore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Median milliseconds of each phase of a training step: batch preparation, forward with the
/// loss read back, backward, optimiser update.
fn step_profile(device: &Device, steps: usize) -> [f64; 4] {
    let data = Builtin::Mnist.load(0).map(Arc::new);
    let Ok(data) = data else { return [f64::NAN; 4] };
    let device = device.clone().autodiff();
    device.seed(0);
    let config = reference_config();
    let mut model = config
        .vae_config(crate::model::ImageShape::new(1, 28, 28))
        .init(&device);
    let mut optim = crate::fused::FusedAdam::default().init();
    let mut rng = Rng::new(0);
    let order = EpochOrder::shuffled(data.train.len(), 128, &mut rng);
    let mut phases: [Vec<f64>; 4] = Default::default();
    for s in 0..steps + 10 {
        let t0 = Instant::now();
        let x = to_tensor(
            pixels(&data.train, order.batch(s % order.batch_count()), None),
            128,
            784,
            &device,
        );
        let eps = to_tensor(rng.normals(256), 128, 2, &device);
        let t1 = Instant::now();
        let out = model.forward(x, eps, Likelihood::Bernoulli);
        let loss = out.reconstruction.mean() + out.kl_per_dim.sum_dim(1).mean();
        let _ = to_vec(loss.clone().detach());
        let t2 = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let t3 = Instant::now();
        model = optim.step(1e-3, model, grads);
        // Force the update to finish (eager CPU backends already have; this reads one value).
        let _ = to_vec(
            model
                .decoder
                .output
                .bias
                .as_ref()
                .map(|b| b.val())
                .unwrap_or_else(|| model.decoder.output.weight.val().sum()),
        );
        let t4 = Instant::now();
        if s >= 10 {
            for (i, (a, b)) in [(t0, t1), (t1, t2), (t2, t3), (t3, t4)]
                .into_iter()
                .enumerate()
            {
                phases[i].push(b.duration_since(a).as_secs_f64() * 1e3);
            }
        }
    }
    phases.map(median)
}

/// Mean bytes sent to and received from remote servers per training step over `steps` steps,
/// with the images kept on the device or sent with each batch (after 10 steps to settle, which
/// include the upload when the images stay on the device).
fn bytes_per_step(
    trainer: &mut Trainer,
    on_device: bool,
    steps: u64,
) -> anyhow::Result<(f64, f64)> {
    trainer.keep_images_on_device(on_device);
    for _ in 0..10 {
        trainer.step()?;
    }
    let (sent, received) = crate::remote::traffic();
    for _ in 0..steps {
        trainer.step()?;
    }
    let (sent2, received2) = crate::remote::traffic();
    Ok((
        (sent2 - sent) as f64 / steps as f64,
        (received2 - received) as f64 / steps as f64,
    ))
}

/// Resident memory of this process in MiB (Linux; `None` elsewhere).
pub fn resident_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// The window's work without drawing, for `seconds`: the explorer's settings on the first
/// backend, every event folded into an [`AppState`](crate::app::state::AppState), the newest
/// snapshot taken as often as a 60 Hz window would, the evaluator asked to score each minute.
/// Prints resident memory and the state's holdings each minute and at the end.
fn soak(seconds: f64, choice: BackendChoice) -> anyhow::Result<()> {
    use crate::app::state::{AppState, Settings};
    use crate::worker::{Command, Event, Worker};
    let mut settings = Settings {
        backend: choice.clone(),
        ..Settings::default()
    };
    // Enough epochs to train the whole time.
    settings.config.epochs = 1_000_000;
    let mut state = AppState::new(settings.clone());
    let mut worker = Worker::spawn(settings.config.clone(), choice, Arc::new(|| {}))?;
    say!("soak: explorer settings, {seconds} s; cpu {}", cpu_model());
    say!(
        "{:>7} {:>9} {:>6} {:>9} {:>10} {:>8} {:>9}",
        "seconds",
        "step",
        "epoch",
        "rss MiB",
        "state MiB",
        "frames",
        "decoders"
    );
    let start = Instant::now();
    let mut next_report = 0.0;
    let report = |state: &AppState, t: f64| {
        let run = &state.main;
        let decoders: std::collections::HashSet<u64> =
            run.timeline.iter().map(|f| f.decoder_step).collect();
        say!(
            "{:>7.0} {:>9} {:>6} {:>9.1} {:>10.1} {:>8} {:>9}",
            t,
            run.last_step.as_ref().map_or(0, |m| m.step),
            run.last_step.as_ref().map_or(0, |m| m.epoch),
            resident_mib().unwrap_or(f64::NAN),
            run.held_bytes() as f64 / (1 << 20) as f64,
            run.timeline.len(),
            decoders.len()
        );
    };
    loop {
        let t = start.elapsed().as_secs_f64();
        phase(format!("soak {t:.0} of {seconds} s"));
        if t >= next_report {
            report(&state, t);
            if t > 0.0 {
                worker.send(Command::Score);
            }
            next_report += 60.0;
        }
        if t >= seconds {
            break;
        }
        let frame = Instant::now();
        while frame.elapsed() < std::time::Duration::from_millis(16) {
            let Some(event) = worker.recv_timeout(std::time::Duration::from_millis(4)) else {
                continue;
            };
            if let Event::Failed(e) = &event {
                anyhow::bail!("the worker failed: {e}");
            }
            let ready = matches!(event, Event::Ready { .. });
            state.apply(event);
            if ready {
                worker.send(Command::Start);
            }
        }
        if let Some(s) = worker.take_snapshot() {
            state.set_snapshot(s);
        }
    }
    report(&state, start.elapsed().as_secs_f64());
    worker.shutdown();
    Ok(())
}

/// Runs the benchmark and prints its table.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if let Some(seconds) = args.soak {
        let choice = args.backends.first().cloned().unwrap_or_default();
        return soak(seconds, choice);
    }
    // The trainers step where the explorer's training thread steps them.
    crate::backend::on_compute_pool(|| table(args))
}

/// The speed table.
fn table(args: &BenchArgs) -> anyhow::Result<()> {
    let data = Arc::new(Builtin::Mnist.load(0)?);
    let mut trainers = Vec::new();
    for choice in &args.backends {
        phase(format!("warming up {choice}"));
        let backend = choice.select()?;
        let mut trainer = Trainer::new(reference_config(), data.clone(), backend.device.clone())?;
        trainer.keep_images_on_device(backend.images_on_device);
        for _ in 0..30 {
            trainer.step()?;
        }
        trainers.push((backend, trainer));
    }
    say!(
        "reference model 784-512-256-2 VAE, batch 128, Adam, Bernoulli; {} rounds of {} s, median",
        args.rounds,
        args.seconds
    );
    say!(
        "cpu {}; allocator tuned: {}",
        cpu_model(),
        // Applied already by the command line; asking again says whether it is in force.
        if crate::backend::tune_allocator() {
            "yes"
        } else {
            "no (LATENT_ATLAS_DEFAULT_MALLOC, or not glibc)"
        }
    );
    let mut first_idle = None;
    let mut conditions = vec![("idle", false)];
    if !args.no_load {
        conditions.push(("one core busy", true));
    }
    for (name, loaded) in conditions {
        let _busy = if loaded {
            Some(BusyCore::start()?)
        } else {
            None
        };
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); trainers.len()];
        for round in 0..args.rounds {
            for (i, (backend, trainer)) in trainers.iter_mut().enumerate() {
                phase(format!(
                    "training samples/s, {}, {name}, round {} of {}",
                    backend.description,
                    round + 1,
                    args.rounds
                ));
                rates[i].push(timed_round(trainer, args.seconds)?);
            }
        }
        if !loaded {
            first_idle = rates.first().map(|r| median(r.clone()));
        }
        for ((backend, _), r) in trainers.iter().zip(rates) {
            let spread = format!(
                "{:.0}-{:.0}",
                r.iter().copied().fold(f64::INFINITY, f64::min),
                r.iter().copied().fold(0.0, f64::max)
            );
            say!(
                "train_samples_per_sec {:<16} {:<14} {:>8.0}   (rounds {spread})",
                backend.description,
                name,
                median(r)
            );
        }
    }
    if let (Some(peer), Some(ours)) = (args.peer_samples_per_sec, first_idle) {
        say!(
            "speedup_vs_peer {:.2}   ({ours:.0} / {peer:.0} samples/s)",
            ours / peer
        );
    }
    for (choice, (backend, trainer)) in args.backends.iter().zip(trainers.iter_mut()) {
        if matches!(choice, BackendChoice::Remote(_)) {
            phase(format!("bytes per step, {}", backend.description));
            for on_device in [false, true] {
                let (sent, received) = bytes_per_step(trainer, on_device, 100)?;
                say!(
                    "bytes_per_step {:<16} images {:<10} sent {sent:.0}   received {received:.0}",
                    backend.description,
                    if on_device { "on server" } else { "sent" }
                );
            }
            trainer.keep_images_on_device(backend.images_on_device);
        }
        let trainer = &*trainer;
        phase(format!("step profile, {}", backend.description));
        let [prep, fwd, bwd, opt] = step_profile(&backend.device, 100);
        say!(
            "step_ms {:<16} batch {prep:.2}  forward+loss {fwd:.2}  backward {bwd:.2}  adam {opt:.2}  total {:.2}",
            backend.description,
            prep + fwd + bwd + opt
        );
        let (plain, burn_us) = decode_latency(trainer, &backend.device, 2000, 500);
        say!(
            "decode_one_point_us {:<16} plain-data decoder copy {:.1}   burn model {:.1}",
            backend.description,
            plain,
            burn_us
        );
        phase(format!(
            "the explorer's training thread, {}",
            backend.description
        ));
        let worker_rate = worker_samples_per_sec(choice.clone(), 8.0)?;
        say!(
            "worker_samples_per_sec {:<16} {worker_rate:.0}   (the explorer's training thread with its snapshots and evaluations, no window)",
            backend.description
        );
        let (snapshot_ms, evaluation_ms) = app_overheads(&data, &backend.device)?;
        say!(
            "app_overheads_ms {:<16} snapshot {snapshot_ms:.1} (2,000 probes with coverage)   epoch evaluation {evaluation_ms:.0} (the explorer's settings)",
            backend.description
        );
        if args.conv_seconds > 0.0 {
            phase(format!("the convolutional VAE, {}", backend.description));
            conv_figures(&backend.description, &backend.device, args)?;
        }
        if args.gan_seconds > 0.0 {
            phase(format!("the GAN iteration, {}", backend.description));
            let defaults = AdversarialParams::for_kind(crate::train::ModelKind::Gan);
            // The plain networks and one discriminator step, as before the GAN's defaults
            // gained their normalisations.
            let plain = AdversarialParams {
                d_steps: 1,
                generator_batch_norm: false,
                spectral_norm: false,
                ..defaults.clone()
            };
            // Each of the defaults' changes alone, to see what each costs.
            let one_step = AdversarialParams {
                d_steps: 1,
                ..defaults.clone()
            };
            let no_norms = AdversarialParams {
                generator_batch_norm: false,
                spectral_norm: false,
                ..defaults.clone()
            };
            let sn_only = AdversarialParams {
                generator_batch_norm: false,
                ..defaults.clone()
            };
            let bn_only = AdversarialParams {
                spectral_norm: false,
                ..defaults.clone()
            };
            let settings = [
                ("default", defaults),
                ("sn-only", sn_only),
                ("bn-only", bn_only),
                ("1-d-step", one_step),
                ("no-norms", no_norms),
                ("plain", plain),
            ];
            let params: Vec<_> = settings.iter().map(|(_, a)| a.clone()).collect();
            let ms = gan_iteration_ms(&data, &backend.device, &params, args.gan_seconds, 6)?;
            for ((what, adversarial), ms) in settings.iter().zip(ms) {
                say!(
                    "gan_iteration_ms {:<16} {what:<8} {ms:.2}   ({} discriminator and {} generator steps, batch 128)",
                    backend.description,
                    adversarial.d_steps,
                    adversarial.g_steps
                );
            }
        }
    }
    spinner().finish_and_clear();
    Ok(())
}

/// Median microseconds to decode one latent point with the snapshot's plain copy (`plain`
/// times) and with burn's model (`burn` times).
fn decode_latency(trainer: &Trainer, device: &Device, plain: usize, burn: usize) -> (f64, f64) {
    let time = |n: usize, f: &dyn Fn()| {
        let us: Vec<f64> = (0..n)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        median(us)
    };
    let decoder = trainer.snapshot(false).decoder;
    let model = trainer.model().valid();
    (
        time(plain, &|| {
            std::hint::black_box(decoder.decode(std::hint::black_box(&[0.3, -0.2])));
        }),
        time(burn, &|| {
            let z = to_tensor(vec![0.3, -0.2], 1, 2, device);
            std::hint::black_box(to_vec(model.decode(z)));
        }),
    )
}

/// The convolutional VAE (latent 2, batch 128) on grey MNIST and on the colour shapes:
/// training samples/s (median of the rounds) and the latency of decoding one point with the
/// plain copy and with burn. The first two are the peer's networks (`torch_conv_vae.py`:
/// Bernoulli, no colour offset); the third is the colour default (the colour offset and the
/// Gaussian likelihood).
fn conv_figures(name: &str, device: &Device, args: &BenchArgs) -> anyhow::Result<()> {
    let peer = TrainConfig {
        arch: crate::model::Arch::Conv,
        colour_offset: false,
        ..reference_config()
    };
    let colour_default = TrainConfig {
        colour_offset: true,
        likelihood: TrainConfig::default_likelihood(true),
        ..peer.clone()
    };
    for (builtin, config, label) in [
        (Builtin::Mnist, peer.clone(), ""),
        (Builtin::Shapes, peer, ""),
        (Builtin::Shapes, colour_default, " default"),
    ] {
        let data = Arc::new(builtin.load(0)?);
        let mut trainer = Trainer::new(config, data.clone(), device.clone())?;
        for _ in 0..10 {
            trainer.step()?;
        }
        let rates: Vec<f64> = (0..args.rounds)
            .map(|_| timed_round(&mut trainer, args.conv_seconds))
            .collect::<anyhow::Result<_>>()?;
        let shape = data.train.shape();
        let what = format!(
            "{} {}x{}x{}{label}",
            builtin.name(),
            shape.width,
            shape.height,
            shape.channels
        );
        say!(
            "conv_train_samples_per_sec {name:<16} {what:<22} {:>8.0}",
            median(rates)
        );
        let (plain, burn_us) = decode_latency(&trainer, device, 500, 200);
        say!(
            "conv_decode_one_point_us {name:<16} {what:<22} plain-data decoder copy {:.1}   burn model {:.1}",
            plain,
            burn_us
        );
    }
    Ok(())
}

/// Training samples/s as the explorer's worker thread reports them (its settings, snapshots,
/// end-of-epoch evaluation and scores included, no window), over the last `seconds` of a run
/// of `seconds + 4`.
fn worker_samples_per_sec(choice: BackendChoice, seconds: f64) -> anyhow::Result<f64> {
    use crate::worker::{Command, Event, Worker};
    let config = crate::train::TrainConfig::explorer();
    let mut worker = Worker::spawn(config, choice, std::sync::Arc::new(|| {}))?;
    worker.send(Command::Start);
    let start = Instant::now();
    let mut rates = Vec::new();
    while start.elapsed().as_secs_f64() < seconds + 4.0 {
        if let Some(event) = worker.recv_timeout(std::time::Duration::from_millis(100)) {
            match event {
                Event::Progress {
                    samples_per_sec, ..
                } if start.elapsed().as_secs_f64() > 4.0 => rates.push(samples_per_sec as f64),
                Event::Failed(e) => anyhow::bail!("the worker failed: {e}"),
                _ => {}
            }
        }
        // What the window does each frame: take the newest snapshot.
        let _ = worker.take_snapshot();
    }
    worker.shutdown();
    Ok(median(rates))
}

/// Median milliseconds of a snapshot (the explorer's default probe set, with coverage) and of
/// one end-of-epoch evaluation at the explorer's settings: the work the window's training does
/// beyond the steps.
fn app_overheads(data: &Arc<crate::data::Dataset>, device: &Device) -> anyhow::Result<(f64, f64)> {
    let config = crate::train::TrainConfig::explorer();
    let trainer = Trainer::new(config, data.clone(), device.clone())?;
    let time = |f: &dyn Fn()| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64() * 1e3
    };
    let snapshots: Vec<f64> = (0..5)
        .map(|_| {
            time(&|| {
                std::hint::black_box(trainer.snapshot(true));
            })
        })
        .collect();
    let evaluation = time(&|| {
        std::hint::black_box(trainer.evaluate(true));
    });
    Ok((median(snapshots), evaluation))
}

/// The CPU's model name, as `lscpu` shows it, so a figure names the machine it came from.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned())
}
