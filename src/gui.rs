//! Opening the window (with a renderer that suits the machine), the headless screenshot
//! command, and the UI benchmark.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::Harness;

use crate::app::action::Action;
use crate::app::state::{Endpoint, EvaluatorStatus, Tab};
use crate::app::{LatentAtlasApp, StartOptions};
use crate::backend::BackendChoice;
use crate::train::ModelKind;

/// Which renderer draws the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RendererChoice {
    /// wgpu on a hardware GPU, otherwise OpenGL (glow): wgpu on a software adapter is slow.
    #[default]
    Auto,
    /// OpenGL through glow.
    Glow,
    /// wgpu.
    Wgpu,
}

/// `latent-atlas` with no subcommand: the window.
#[derive(clap::Args, Debug, Default)]
pub struct GuiArgs {
    /// Renderer.
    #[arg(long, value_enum, default_value = "auto")]
    pub renderer: RendererChoice,
    /// Compute backend (default: the one remembered, else cpu).
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
    /// Dataset to open (default: the one remembered, else mnist).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Ignore remembered settings.
    #[arg(long)]
    pub fresh: bool,
    /// Test samples whose posteriors the plane draws (100 to 10,000; default: remembered,
    /// else 2,000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(100..=10_000))]
    pub probe_size: Option<u32>,
}

/// Opens the explorer; training starts at once.
pub fn run(args: GuiArgs) -> anyhow::Result<()> {
    let renderer = match args.renderer {
        RendererChoice::Glow => eframe::Renderer::Glow,
        RendererChoice::Wgpu => eframe::Renderer::Wgpu,
        RendererChoice::Auto => match crate::backend::hardware_adapter() {
            Ok(_) => eframe::Renderer::Wgpu,
            Err(_) => eframe::Renderer::Glow,
        },
    };
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Latent Atlas")
            .with_app_id("latent-atlas")
            .with_inner_size([1280.0, 820.0])
            .with_min_inner_size([800.0, 560.0]),
        renderer,
        ..Default::default()
    };
    let start = StartOptions {
        autostart: true,
        backend: args.backend,
        dataset: args.dataset,
        fresh: args.fresh,
        probe_size: args.probe_size.map(|n| n as usize),
    };
    eframe::run_native(
        "latent-atlas",
        options,
        Box::new(move |cc| Ok(Box::new(LatentAtlasApp::new(cc, start)))),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}

/// A headless harness around the app, training on the CPU from fresh settings.
pub fn harness(width: f32, height: f32, dataset: &str) -> Harness<'static, LatentAtlasApp> {
    harness_with_probe(width, height, dataset, None)
}

/// [`harness`] tracking `probe_size` probe samples (default: the settings' default).
pub fn harness_with_probe(
    width: f32,
    height: f32,
    dataset: &str,
    probe_size: Option<usize>,
) -> Harness<'static, LatentAtlasApp> {
    let dataset = dataset.to_owned();
    Harness::builder()
        .with_size(egui::vec2(width, height))
        .build_eframe(move |cc| {
            LatentAtlasApp::new(
                cc,
                StartOptions {
                    autostart: true,
                    backend: Some(BackendChoice::Cpu),
                    dataset: Some(dataset),
                    fresh: true,
                    probe_size,
                },
            )
        })
}

/// Steps the harness until `done` holds (with real time passing for the worker).
pub fn step_until(
    h: &mut Harness<'static, LatentAtlasApp>,
    timeout: Duration,
    done: impl Fn(&LatentAtlasApp) -> bool,
) -> anyhow::Result<()> {
    let start = Instant::now();
    while !done(h.state()) {
        if start.elapsed() > timeout {
            anyhow::bail!("timed out after {timeout:?}");
        }
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// `latent-atlas screenshot`.
#[derive(clap::Args, Debug)]
pub struct ScreenshotArgs {
    /// Output folder.
    #[arg(long, default_value = "screenshots")]
    pub out: PathBuf,
    /// Training steps before the pictures are taken.
    #[arg(long, default_value_t = 1500)]
    pub steps: u64,
}

/// Trains briefly on MNIST and renders the window with each tab open, headlessly.
pub fn screenshot(args: &ScreenshotArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)?;
    let mut h = harness(1400.0, 900.0, "mnist");
    let steps = args.steps;
    eprintln!("training {steps} steps before the screenshots…");
    step_until(&mut h, Duration::from_secs(900), |a| {
        a.state.snapshot.as_ref().is_some_and(|s| s.step >= steps)
    })?;
    h.state_mut().handle(Action::Pause);
    step_until(&mut h, Duration::from_secs(30), |a| !a.state.is_running())?;
    {
        let app = h.state_mut();
        let s = app.state.snapshot.clone().expect("waited for it");
        let labels = &s.probe.labels;
        let a = 0;
        let b = (1..labels.len())
            .find(|&i| labels[i] != labels[a])
            .unwrap_or(1);
        app.state.pin(Endpoint::Sample(a));
        app.state.pin(Endpoint::Sample(b));
        app.state.set_handle(0.4);
    }
    for (tab, manifold) in [
        (Tab::Curves, false),
        (Tab::Samples, true),
        (Tab::Interpolation, false),
        (Tab::Reconstructions, false),
    ] {
        h.state_mut().state.settings.tab = tab;
        h.state_mut().state.settings.show_manifold = manifold;
        h.run_steps(4);
        let image = h
            .render()
            .map_err(|e| anyhow::anyhow!("cannot render headlessly: {e}"))?;
        let name = format!("window_{}.png", tab.title().to_lowercase());
        save(&args.out.join(&name), &image)?;
        eprintln!("wrote {}", args.out.join(name).display());
    }
    // Each family's own view, with the tab that shows what it adds.
    h.state_mut().state.clear_pins();
    for (kind, tab) in [
        (ModelKind::Ae, Tab::Curves),
        (ModelKind::Cvae, Tab::Samples),
        (ModelKind::BnVae, Tab::Curves),
        (ModelKind::FVae, Tab::Curves),
        (ModelKind::Gan, Tab::Samples),
        (ModelKind::Aae, Tab::Curves),
        (ModelKind::Ali, Tab::Reconstructions),
    ] {
        train_family(&mut h, kind, steps)?;
        h.state_mut().state.settings.tab = tab;
        h.state_mut().state.settings.show_manifold = false;
        // The BN-VAE's floor (under a nat) shows beside a loss of hundreds on a log axis.
        h.state_mut().state.settings.log_scale = kind == ModelKind::BnVae;
        shoot(&mut h, &args.out, &format!("window_{}.png", kind.name()))?;
    }
    // Side by side: the VAE's ellipses against the AE's points.
    h.state_mut().state.settings.tab = Tab::Curves;
    h.state_mut().state.settings.log_scale = false;
    train_family(&mut h, ModelKind::Vae, 0)?;
    h.state_mut().handle(Action::Compare(Some(ModelKind::Ae)));
    h.state_mut().handle(Action::Resume);
    step_until(&mut h, Duration::from_secs(900), |a| {
        let main = a.state.snapshot.as_ref().is_some_and(|s| s.step >= steps);
        let other = a.state.compare.as_ref().and_then(|c| c.snapshot.as_ref());
        main && other.is_some_and(|s| s.step >= steps)
    })?;
    h.state_mut().handle(Action::Pause);
    step_until(&mut h, Duration::from_secs(30), |a| !a.state.is_running())?;
    shoot(&mut h, &args.out, "window_compare.png")?;
    h.state_mut().shutdown();
    Ok(())
}

/// Resets the harness's app to `kind` and trains it `steps` steps (none: it is left paused
/// at step 0).
fn train_family(
    h: &mut Harness<'static, LatentAtlasApp>,
    kind: ModelKind,
    steps: u64,
) -> anyhow::Result<()> {
    eprintln!("training the {} {steps} steps…", kind.label());
    let config = &mut h.state_mut().state.settings.config;
    config.model = kind;
    // What choosing the family in the controls does.
    config.adversarial = crate::train::AdversarialParams::for_kind(kind);
    h.state_mut().handle(Action::Reset);
    step_until(h, Duration::from_secs(900), |a| {
        a.state
            .snapshot
            .as_ref()
            .is_some_and(|s| s.family == kind && s.step >= steps)
    })?;
    h.state_mut().handle(Action::Pause);
    step_until(h, Duration::from_secs(30), |a| !a.state.is_running())
}

fn shoot(h: &mut Harness<'static, LatentAtlasApp>, dir: &Path, name: &str) -> anyhow::Result<()> {
    h.run_steps(4);
    let image = h
        .render()
        .map_err(|e| anyhow::anyhow!("cannot render headlessly: {e}"))?;
    save(&dir.join(name), &image)?;
    eprintln!("wrote {}", dir.join(name).display());
    Ok(())
}

fn save(path: &Path, image: &image::RgbaImage) -> anyhow::Result<()> {
    crate::export::save_png(path, image)
}

/// `latent-atlas bench-ui`.
#[derive(clap::Args, Debug)]
pub struct BenchUiArgs {
    /// Frames to time.
    #[arg(long, default_value_t = 300)]
    pub frames: usize,
    /// Probe samples drawn in the plane (100 to 10,000).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(100..=10_000))]
    pub probe_size: u32,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Times the UI thread's frames while training runs with 2,000 ellipses drawn, and the frame
/// that turns a drag into a decoded preview.
pub fn bench_ui(args: &BenchUiArgs) -> anyhow::Result<()> {
    // A fresh evaluator cache, so the evaluator's first-time training is measured too.
    let cache = std::env::temp_dir().join(format!("latent-atlas-bench-ui-{}", std::process::id()));
    // SAFETY: set before the harness starts any thread; nothing else reads the environment now.
    unsafe { std::env::set_var("LATENT_ATLAS_CACHE", &cache) };
    let mut h = harness_with_probe(1280.0, 820.0, "mnist", Some(args.probe_size as usize));
    step_until(&mut h, Duration::from_secs(120), |a| {
        a.state.is_running() && a.state.snapshot.as_ref().is_some_and(|s| s.step > 0)
    })?;
    let probes = h
        .state()
        .state
        .snapshot
        .as_ref()
        .map_or(0, |s| s.probe.len());
    let mut frames = Vec::with_capacity(args.frames);
    let mut primitives = 0;
    for _ in 0..args.frames {
        // A frame's CPU work: egui's logic and ui passes, then tessellation into meshes (what
        // eframe does before handing the meshes to the renderer).
        let t = Instant::now();
        h.step();
        let output = h.output();
        let shapes = output.shapes.clone();
        let meshes = h.ctx.tessellate(shapes, output.pixels_per_point);
        frames.push(t.elapsed().as_secs_f64() * 1e3);
        primitives = meshes.len();
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut drags = Vec::new();
    for k in 0..100 {
        let z = vec![(k as f32 * 0.37).sin() * 2.0, (k as f32 * 0.23).cos() * 2.0];
        h.state_mut().state.request_preview(z.clone());
        let t = Instant::now();
        h.step();
        let output = h.output();
        let _ = h
            .ctx
            .tessellate(output.shapes.clone(), output.pixels_per_point);
        let done = h
            .state()
            .state
            .preview
            .as_ref()
            .is_some_and(|(pz, _)| *pz == z);
        if done {
            drags.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let rendered: Vec<f64> = (0..10)
        .filter_map(|_| {
            let t = Instant::now();
            h.render().ok().map(|_| t.elapsed().as_secs_f64() * 1e3)
        })
        .collect();
    let steps = h.state().state.last_step.as_ref().map_or(0, |m| m.step);
    println!(
        "ui_frame_ms_median {:.2} (egui logic + ui + tessellation while training, {probes} ellipses, {primitives} clipped primitives, {} frames; step {steps})",
        median(frames),
        args.frames
    );
    println!(
        "drag_decode_frame_ms_median {:.2} ({} drags: the frame that decodes the point, uploads it and tessellates)",
        median(drags.clone()),
        drags.len()
    );
    println!(
        "headless_render_ms_median {:.2} (software wgpu, for reference; not the UI thread's work)",
        median(rendered)
    );
    // The status bar's samples/s with the window drawing as training repaints it: while the
    // evaluator trains for the first time (from the first epoch's end), then once it is ready.
    let evaluator_training =
        |a: &LatentAtlasApp| matches!(a.state.evaluator, EvaluatorStatus::Training(_));
    let evaluator_ready =
        |a: &LatentAtlasApp| matches!(a.state.evaluator, EvaluatorStatus::Ready(_));
    step_until(&mut h, Duration::from_secs(120), |a| {
        evaluator_training(a) || evaluator_ready(a)
    })?;
    let with_evaluator = status_rate(&mut h, Duration::from_secs(8), evaluator_training);
    step_until(&mut h, Duration::from_secs(300), evaluator_ready)?;
    let idle = status_rate(&mut h, Duration::from_secs(8), evaluator_ready);
    println!(
        "status_samples_per_sec {:.0} (the status bar while the window draws, evaluator ready; {} readings)",
        median(idle.clone()),
        idle.len()
    );
    println!(
        "status_samples_per_sec_evaluator_training {:.0} (while the evaluator trains for the first time; {} readings)",
        median(with_evaluator.clone()),
        with_evaluator.len()
    );
    h.state_mut().shutdown();
    let _ = std::fs::remove_dir_all(&cache);
    Ok(())
}

/// The status bar's samples/s each frame, stepping at the rate training repaints the window,
/// for up to `span` while `during` holds, skipping its first 3 s (the rate is a 3 s window).
fn status_rate(
    h: &mut Harness<'static, LatentAtlasApp>,
    span: Duration,
    during: impl Fn(&LatentAtlasApp) -> bool,
) -> Vec<f64> {
    let start = Instant::now();
    let mut rates = Vec::new();
    while start.elapsed() < span + Duration::from_secs(3) && during(h.state()) {
        h.step();
        if start.elapsed() > Duration::from_secs(3) {
            rates.push(h.state().state.samples_per_sec as f64);
        }
        std::thread::sleep(crate::app::TRAINING_REPAINT);
    }
    rates
}
