//! The README's screenshots: trains briefly on MNIST and renders the real window with each tab
//! and each family, headlessly (wgpu on any adapter, a software one included).
//!
//! `cargo run --release --example screenshot -- --out screenshots`

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use egui_kittest::Harness;
use latent_atlas::app::LatentAtlasApp;
use latent_atlas::app::action::Action;
use latent_atlas::app::state::{Endpoint, Tab};
use latent_atlas::train::ModelKind;
use support::{harness, step_until};

fn main() -> anyhow::Result<()> {
    screenshot(&ScreenshotArgs::parse())
}

/// `cargo run --release --example screenshot -- [--out DIR] [--steps N]`.
#[derive(clap::Parser, Debug)]
struct ScreenshotArgs {
    /// Output folder.
    #[arg(long, default_value = "screenshots")]
    out: PathBuf,
    /// Training steps before the pictures are taken.
    #[arg(long, default_value_t = 1500)]
    steps: u64,
    /// Only the colour dataset's pictures.
    #[arg(long)]
    shapes_only: bool,
    /// Only the importance draws' picture.
    #[arg(long)]
    iw_only: bool,
    /// Only the shortcuts overlay's picture (F1).
    #[arg(long)]
    shortcuts_only: bool,
}

/// Trains briefly on MNIST and renders the window with each tab open, headlessly.
fn screenshot(args: &ScreenshotArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)?;
    if args.shapes_only {
        return shapes(args);
    }
    if args.iw_only {
        let mut h = harness(1400.0, 900.0, "mnist");
        importance_draws(&mut h, args)?;
        h.state_mut().shutdown();
        return Ok(());
    }
    if args.shortcuts_only {
        return shortcuts(args);
    }
    let mut h = harness(1400.0, 900.0, "mnist");
    let steps = args.steps;
    eprintln!("training {steps} steps before the screenshots…");
    step_until(&mut h, Duration::from_secs(900), |a| {
        a.state
            .main
            .snapshot
            .as_ref()
            .is_some_and(|s| s.step >= steps)
    })?;
    h.state_mut().handle(Action::Pause);
    step_until(&mut h, Duration::from_secs(30), |a| !a.state.is_running())?;
    {
        let app = h.state_mut();
        let s = app.state.main.snapshot.clone().expect("waited for it");
        let labels = &s.probe.labels;
        let a = 0;
        let b = (1..labels.len())
            .find(|&i| labels[i] != labels[a])
            .unwrap_or(1);
        app.state.pin(Endpoint::Sample(a));
        app.state.pin(Endpoint::Sample(b));
        app.state.set_handle(0.4);
    }
    // A's importance draws (the plane shows those of the first pinned image).
    step_until(&mut h, Duration::from_secs(60), |a| {
        a.state.draws.as_ref().is_some_and(|d| d.probe == 0)
    })?;
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
        let main = a
            .state
            .main
            .snapshot
            .as_ref()
            .is_some_and(|s| s.step >= steps);
        let other = a.state.compare.as_ref().and_then(|c| c.snapshot.as_ref());
        main && other.is_some_and(|s| s.step >= steps)
    })?;
    h.state_mut().handle(Action::Pause);
    step_until(&mut h, Duration::from_secs(30), |a| !a.state.is_running())?;
    shoot(&mut h, &args.out, "window_compare.png")?;
    h.state_mut().handle(Action::Compare(None));
    importance_draws(&mut h, args)?;
    h.state_mut().shutdown();
    shortcuts(args)?;
    shapes(args)
}

/// The overlay F1 opens, over a window a few hundred steps into training.
fn shortcuts(args: &ScreenshotArgs) -> anyhow::Result<()> {
    let mut h = harness(1400.0, 900.0, "mnist");
    step_until(&mut h, Duration::from_secs(300), |a| {
        a.state
            .main
            .snapshot
            .as_ref()
            .is_some_and(|s| s.step >= 300)
    })?;
    h.state_mut().handle(Action::Pause);
    step_until(&mut h, Duration::from_secs(30), |a| !a.state.is_running())?;
    h.key_press(egui::Key::F1);
    h.run_steps(4);
    shoot(&mut h, &args.out, "window_shortcuts.png")?;
    h.state_mut().shutdown();
    Ok(())
}

/// The built-in colour dataset with the convolutional VAE: the window with posteriors coloured by a factor, and the
/// pictures `train --dataset shapes` writes (the same writer).
fn shapes(args: &ScreenshotArgs) -> anyhow::Result<()> {
    let mut h = harness(1400.0, 900.0, "shapes");
    eprintln!("training on shapes {} steps…", args.steps);
    // The convolutional networks, as `train --dataset shapes --arch conv` trains them.
    h.state_mut().state.settings.config.arch = latent_atlas::model::Arch::Conv;
    train_family(&mut h, ModelKind::Vae, args.steps)?;
    let app = h.state_mut();
    // Colour by horizontal position (factor 4), reconstructions open: colour in, colour out.
    app.state.settings.colour_by = Some(4);
    app.state.settings.tab = Tab::Reconstructions;
    shoot(&mut h, &args.out, "window_shapes.png")?;
    let state = &h.state().state;
    let mut files = latent_atlas::export::folder::Memory::default();
    latent_atlas::export::folder::write_all(
        &state.main,
        state.main.snapshot.as_ref(),
        &Default::default(),
        &mut files,
        &Default::default(),
    )?;
    for name in ["samples.png", "reconstructions.png"] {
        let to = args.out.join(format!("cli_shapes_{name}"));
        let (_, bytes) = files
            .0
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| anyhow::anyhow!("the export wrote no {name}"))?;
        latent_atlas::fsio::atomic_write(&to, bytes)?;
        eprintln!("wrote {}", to.display());
    }
    h.state_mut().shutdown();
    Ok(())
}

/// The importance-weighted bound: a VAE trained on K = 20 draws, the image nearest the origin
/// pinned and the posteriors drawn as points, its draws sized by their weights.
fn importance_draws(
    h: &mut Harness<'static, LatentAtlasApp>,
    args: &ScreenshotArgs,
) -> anyhow::Result<()> {
    h.state_mut().state.settings.config.hyper.iw_samples = 20;
    train_family(h, ModelKind::Vae, args.steps)?;
    let pinned = {
        let s = h.state().state.main.snapshot.clone().expect("trained");
        (0..s.probe.len())
            .min_by(|&a, &b| {
                let norm = |i: usize| s.mu_of(i).iter().map(|v| v * v).sum::<f32>();
                norm(a).total_cmp(&norm(b))
            })
            .unwrap_or(0)
    };
    h.state_mut().state.pin(Endpoint::Sample(pinned));
    h.state_mut().state.settings.show_ellipses = false;
    step_until(h, Duration::from_secs(60), |a| {
        a.state
            .draws
            .as_ref()
            .is_some_and(|d| d.probe == pinned && d.k() == 20)
    })?;
    shoot(h, &args.out, "window_iw.png")?;
    h.state_mut().state.settings.show_ellipses = true;
    h.state_mut().state.settings.config.hyper.iw_samples = 1;
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
    // What choosing the family in the controls does.
    let before = h.state().state.main.snapshot.as_ref().map(|s| s.run);
    h.state_mut().state.settings.config.set_model(kind);
    h.state_mut().handle(Action::Reset);
    // The new run's snapshots, not the last run's (which may be of the same family).
    step_until(h, Duration::from_secs(900), |a| {
        a.state
            .main
            .snapshot
            .as_ref()
            .is_some_and(|s| Some(s.run) != before && s.family == kind && s.step >= steps)
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
    latent_atlas::fsio::save_png(path, image)
}
