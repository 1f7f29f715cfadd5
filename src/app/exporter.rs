//! Carries out the export actions: every view rendered with `image` (independent of the
//! screen and its resolution), the CSV tables, and the GIF of the training timeline.

use std::path::{Path, PathBuf};

use image::RgbaImage;

use super::action::View;
use super::state::AppState;
use crate::export::{csv, views};
use crate::fsio::{atomic_write, save_png};
use crate::scene::{Census, Marks};
use crate::train::Snapshot;

/// Renders one view of the current state, or says why it cannot.
pub fn render(state: &AppState, view: View) -> anyhow::Result<RgbaImage> {
    let size = state.settings.export_size.clamp(200, 8000);
    if view == View::Curves {
        let c = &state.curves;
        let series = [
            (
                "reconstruction",
                c.reconstruction.smoothed(0.05),
                [31, 119, 180, 255],
            ),
            ("KL", c.kl.smoothed(0.05), [214, 39, 40, 255]),
            ("total", c.total.smoothed(0.05), [44, 160, 44, 255]),
            (
                "test negative ELBO",
                c.test_elbo.points().to_vec(),
                [0, 0, 0, 255],
            ),
        ];
        return Ok(views::line_chart(
            "loss per step (nats)",
            &series,
            state.settings.log_scale,
            size,
            size * 5 / 8,
        ));
    }
    let snapshot = state
        .shown_snapshot()
        .ok_or_else(|| anyhow::anyhow!("nothing to export yet: the model has no snapshot"))?;
    let decoder = &snapshot.decoder;
    Ok(match view {
        View::Plane => plane_image(state, snapshot, size).0,
        View::Samples => {
            let t = state.settings.temperature;
            let request = state
                .sample_request()
                .ok_or_else(|| anyhow::anyhow!("no samples yet"))?;
            let z = super::panels::samples::sample_points(snapshot, &request);
            let scale = (size / 300).max(1);
            let title = match (snapshot.view.classes(snapshot.latent_dim), request.class) {
                (0, _) => format!("prior samples, T = {t:.2}"),
                (_, Some(c)) => format!("samples of class {c}, z ~ N(mu_y, T^2 I), T = {t:.2}"),
                (_, None) => format!("samples per class (a column each), T = {t:.2}"),
            };
            views::image_grid(
                &title,
                &decoder.decode_many(&z),
                decoder.width,
                decoder.height,
                super::panels::samples::sample_columns(snapshot, &request),
                scale,
            )
        }
        View::Coverage => {
            let c = snapshot.coverage.as_ref().ok_or_else(|| {
                anyhow::anyhow!("this snapshot has no prior coverage (it is computed with each snapshot while training)")
            })?;
            views::coverage(c, size / 2)
        }
        View::Interpolation => {
            let (points, n) = state.interpolation_points().ok_or_else(|| {
                anyhow::anyhow!(
                    "pin two samples (four in four-corner mode) to export an interpolation"
                )
            })?;
            let cols = if state.settings.four_corners {
                n
            } else {
                n.min(points.len())
            };
            let scale = (size / (cols as u32 * decoder.width as u32).max(1)).max(1);
            views::image_grid(
                "interpolation",
                &decoder.decode_many(&points),
                decoder.width,
                decoder.height,
                cols,
                scale,
            )
        }
        View::Manifold => views::manifold(decoder, 20),
        View::Reconstructions => views::reconstructions(snapshot, 32),
        View::Curves => unreachable!("handled above"),
    })
}

/// The latent plane of `snapshot` as the window shows it, `size` pixels wide, and a census of
/// what was painted.
pub fn plane_image(state: &AppState, snapshot: &Snapshot, size: u32) -> (RgbaImage, Census) {
    let scene = state.plane_scene(snapshot);
    views::latent_plane(&scene, &state.plane_marks(&scene), size)
}

/// Writes one view into `dir`; returns the file written.
pub fn export_view(state: &AppState, view: View, dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let path = dir.join(view.file_name());
    save_png(&path, &render(state, view)?)?;
    Ok(path)
}

/// Writes every view that can be rendered, `metrics.csv` and `latent.csv` into `dir`.
/// Returns the files written and the views skipped (with why).
pub fn export_all(state: &AppState, dir: &Path) -> anyhow::Result<(Vec<PathBuf>, Vec<String>)> {
    let mut written = Vec::new();
    let mut skipped = Vec::new();
    for view in View::ALL {
        match export_view(state, view, dir) {
            Ok(p) => written.push(p),
            Err(e) => skipped.push(format!("{}: {e}", view.title())),
        }
    }
    let d = state.settings.config.latent_dim;
    let metrics = dir.join("metrics.csv");
    atomic_write(
        &metrics,
        csv::metrics_csv(&state.train_rows, &state.tests, d).as_bytes(),
    )?;
    written.push(metrics);
    if let Some(s) = state.shown_snapshot() {
        let latent = dir.join("latent.csv");
        atomic_write(&latent, csv::latent_csv(s).as_bytes())?;
        written.push(latent);
    }
    Ok((written, skipped))
}

/// Writes `latent_plane.gif`: the latent plane at every kept snapshot.
pub fn export_gif(state: &AppState, dir: &Path) -> anyhow::Result<PathBuf> {
    if state.timeline.is_empty() {
        anyhow::bail!("no snapshots yet to animate");
    }
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let frames: Vec<RgbaImage> = state
        .timeline
        .iter()
        .map(|f| views::latent_plane(&state.plane_scene(&f.snapshot), &Marks::default(), 480).0)
        .collect();
    let path = dir.join("latent_plane.gif");
    atomic_write(&path, &views::gif(&frames, 120)?)?;
    Ok(path)
}
