//! The headless harness shared by the UI tests, the screenshot command and the UI benchmark
//! (egui_kittest is a dev-dependency: none of this is in the app's binary).

#![allow(dead_code)] // each user takes what it needs

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use latent_atlas::app::{LatentAtlasApp, StartOptions};
use latent_atlas::backend::BackendChoice;

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
    harness_with(width, height, dataset, probe_size, None)
}

/// [`harness_with_probe`] with the networks chosen too.
pub fn harness_with(
    width: f32,
    height: f32,
    dataset: &str,
    probe_size: Option<usize>,
    arch: Option<latent_atlas::model::Arch>,
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
                    arch,
                    profile_kernels: false,
                },
            )
            .with_shell(Box::new(latent_atlas::gui::DesktopShell))
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
