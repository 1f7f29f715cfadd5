//! The UI thread's frame time while training draws the plane, the drag-to-decode frame, and
//! the status bar's training rate with the window drawing.
//!
//! `cargo run --release --example bench_ui -- --probe-size 10000`

mod support;

use std::time::{Duration, Instant};

use clap::Parser;
use egui_kittest::Harness;
use latent_atlas::app::LatentAtlasApp;
use latent_atlas::app::action::Action;
use latent_atlas::run::EvaluatorStatus;
use support::{harness_with, step_until};

fn main() -> anyhow::Result<()> {
    bench_ui(&BenchUiArgs::parse())
}

/// `cargo run --release --example bench_ui -- [--frames N] [--probe-size N] [--latent-dim N]`.
#[derive(clap::Parser, Debug)]
struct BenchUiArgs {
    /// Frames to time.
    #[arg(long, default_value_t = 300)]
    frames: usize,
    /// Probe samples drawn in the plane (100 to 10,000).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(100..=10_000))]
    probe_size: u32,
    /// The networks to train (`conv` for the convolutional VAE).
    #[arg(long, value_parser = latent_atlas::cli::arch_parser(), default_value = "mlp")]
    arch: latent_atlas::model::Arch,
    /// The latent dimension (above 2 the plane shows a PCA projection).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=512))]
    latent_dim: u32,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Times the UI thread's frames while training runs with 2,000 ellipses drawn, and the frame
/// that turns a drag into a decoded preview.
fn bench_ui(args: &BenchUiArgs) -> anyhow::Result<()> {
    // A fresh evaluator cache, so the evaluator's first-time training is measured too.
    let cache = std::env::temp_dir().join(format!("latent-atlas-bench-ui-{}", std::process::id()));
    // SAFETY: set before the harness starts any thread; nothing else reads the environment now.
    unsafe { std::env::set_var("LATENT_ATLAS_CACHE", &cache) };
    let mut h = harness_with(
        1280.0,
        820.0,
        "mnist",
        Some(args.probe_size as usize),
        Some(args.arch),
    );
    step_until(&mut h, Duration::from_secs(120), |a| {
        a.state.is_running() && a.state.main.snapshot.as_ref().is_some_and(|s| s.step > 0)
    })?;
    let d = args.latent_dim as usize;
    if d != 2 {
        let app = h.state_mut();
        app.state.settings.config.latent_dim = d;
        app.handle(Action::Reset);
        step_until(&mut h, Duration::from_secs(120), |a| {
            a.state.is_running()
                && a.state
                    .main
                    .snapshot
                    .as_ref()
                    .is_some_and(|s| s.latent_dim == d && s.step > 0)
        })?;
    }
    let probes = h
        .state()
        .state
        .main
        .snapshot
        .as_ref()
        .map_or(0, |s| s.probe.len());
    let mut frames = Vec::with_capacity(args.frames);
    let mut primitives = 0;
    for _ in 0..args.frames {
        let (ms, meshes) = timed_frame(&mut h);
        frames.push(ms);
        primitives = meshes;
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut drags = Vec::new();
    for k in 0..100 {
        // A point of the model's own dimension (above 2, where the plane's projection puts
        // the pointer; the decode costs the same).
        let mut z = vec![0.0f32; d.max(2)];
        z[0] = (k as f32 * 0.37).sin() * 2.0;
        z[1] = (k as f32 * 0.23).cos() * 2.0;
        z.truncate(d);
        h.state_mut().state.request_preview(z.clone());
        let (ms, _) = timed_frame(&mut h);
        let done = h
            .state()
            .state
            .preview
            .as_ref()
            .is_some_and(|(pz, _)| *pz == z);
        if done {
            drags.push(ms);
        }
    }
    // Exports run on their own thread: the frames while one runs.
    let export_dir = std::env::temp_dir().join(format!(
        "latent-atlas-bench-ui-export-{}",
        std::process::id()
    ));
    h.state_mut().state.settings.export_dir = export_dir.clone();
    for (name, action) in [
        ("export_all", Action::ExportAll),
        ("training_gif", Action::ExportGif),
    ] {
        let frames_kept = h.state().state.main.timeline.len();
        h.state_mut().handle(action);
        let start = Instant::now();
        let mut frames = Vec::new();
        while h.state().is_exporting() && start.elapsed() < Duration::from_secs(300) {
            frames.push(timed_frame(&mut h).0);
            std::thread::sleep(latent_atlas::app::TRAINING_REPAINT);
        }
        let max = frames.iter().copied().fold(0.0, f64::max);
        println!(
            "{name}_ui_frame_ms median {:.2} max {max:.2} ({} frames over {:.1} s; {frames_kept} snapshots kept)",
            median(frames.clone()),
            frames.len(),
            start.elapsed().as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&export_dir);
    let rendered: Vec<f64> = (0..10)
        .filter_map(|_| {
            let t = Instant::now();
            h.render().ok().map(|_| t.elapsed().as_secs_f64() * 1e3)
        })
        .collect();
    let steps = h
        .state()
        .state
        .main
        .last_step
        .as_ref()
        .map_or(0, |m| m.step);
    println!(
        "ui_frame_ms_median {:.2} (egui logic + ui + tessellation while training, {probes} ellipses at d = {d}, {primitives} clipped primitives, {} frames; step {steps})",
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
        |a: &LatentAtlasApp| matches!(a.state.main.evaluator, EvaluatorStatus::Training(_));
    let evaluator_ready =
        |a: &LatentAtlasApp| matches!(a.state.main.evaluator, EvaluatorStatus::Ready(_));
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
            rates.push(h.state().state.main.samples_per_sec as f64);
        }
        std::thread::sleep(latent_atlas::app::TRAINING_REPAINT);
    }
    rates
}

/// One frame's CPU work: egui's logic and ui passes, then tessellation into meshes (what
/// eframe does before handing them to the renderer). Its milliseconds and mesh count.
fn timed_frame(
    h: &mut egui_kittest::Harness<'static, latent_atlas::app::LatentAtlasApp>,
) -> (f64, usize) {
    let t = Instant::now();
    h.step();
    let output = h.output();
    let meshes = h
        .ctx
        .tessellate(output.shapes.clone(), output.pixels_per_point);
    (t.elapsed().as_secs_f64() * 1e3, meshes.len())
}
