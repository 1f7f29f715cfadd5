//! Carries out the export actions: every view rendered with `image` (independent of the
//! screen and its resolution), the CSV tables, and the GIF of the training timeline. Each runs
//! on its own thread ([`ExportTask`]) from a copy of the state, so the window keeps drawing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

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
pub fn export_all(
    state: &AppState,
    dir: &Path,
    progress: &Progress,
) -> anyhow::Result<(Vec<PathBuf>, Vec<String>)> {
    let mut written = Vec::new();
    let mut skipped = Vec::new();
    progress.start(View::ALL.len() + 2);
    for view in View::ALL {
        match export_view(state, view, dir) {
            Ok(p) => written.push(p),
            Err(e) => skipped.push(format!("{}: {e}", view.title())),
        }
        progress.tick();
    }
    let d = state.settings.config.latent_dim;
    let metrics = dir.join("metrics.csv");
    atomic_write(
        &metrics,
        csv::metrics_csv(state.train_rows.iter(), &state.tests, d).as_bytes(),
    )?;
    written.push(metrics);
    progress.tick();
    if let Some(s) = state.shown_snapshot() {
        let latent = dir.join("latent.csv");
        atomic_write(&latent, csv::latent_csv(s).as_bytes())?;
        written.push(latent);
    }
    Ok((written, skipped))
}

/// Writes `latent_plane.gif`: the latent plane at every kept snapshot.
pub fn export_gif(state: &AppState, dir: &Path, progress: &Progress) -> anyhow::Result<PathBuf> {
    if state.timeline.is_empty() {
        anyhow::bail!("no snapshots yet to animate");
    }
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    // One tick per frame, and the encoding counted as a tenth of the work.
    progress.start(state.timeline.len() * 10 / 9 + 1);
    let frames: Vec<RgbaImage> = state
        .timeline
        .iter()
        .map(|f| {
            progress.tick();
            views::latent_plane(&state.plane_scene(&f.snapshot), &Marks::default(), 480).0
        })
        .collect();
    let path = dir.join("latent_plane.gif");
    atomic_write(&path, &views::gif(&frames, 120)?)?;
    Ok(path)
}

/// Progress of an export: steps done out of a total, shared with the window.
#[derive(Clone, Default)]
pub struct Progress {
    done: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
    repaint: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl Progress {
    /// Progress that asks for a repaint at each step.
    pub fn new(repaint: Arc<dyn Fn() + Send + Sync>) -> Self {
        Self {
            repaint: Some(repaint),
            ..Self::default()
        }
    }

    /// Starts counting `total` steps.
    pub fn start(&self, total: usize) {
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total.max(1), Ordering::Relaxed);
    }

    /// One step done.
    pub fn tick(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if let Some(r) = &self.repaint {
            r();
        }
    }

    /// The share done, in `[0, 1]`.
    pub fn share(&self) -> f32 {
        let total = self.total.load(Ordering::Relaxed).max(1);
        (self.done.load(Ordering::Relaxed) as f32 / total as f32).min(1.0)
    }
}

/// What an export writes.
#[derive(Clone, Debug, PartialEq)]
pub enum ExportJob {
    /// One view as a PNG.
    View(View),
    /// Every view, `metrics.csv` and `latent.csv`.
    All,
    /// `latent_plane.gif`.
    Gif,
}

impl ExportJob {
    /// What the status bar calls it.
    pub fn title(&self) -> String {
        match self {
            ExportJob::View(v) => format!("Exporting {}", v.title()),
            ExportJob::All => "Exporting all views".to_owned(),
            ExportJob::Gif => "Writing the training GIF".to_owned(),
        }
    }

    /// Runs the export; returns the notice to show.
    pub fn run(&self, state: &AppState, dir: &Path, progress: &Progress) -> anyhow::Result<String> {
        match self {
            ExportJob::View(view) => {
                progress.start(1);
                let p = export_view(state, *view, dir)?;
                progress.tick();
                Ok(format!("wrote {}", p.display()))
            }
            ExportJob::All => {
                let (files, skipped) = export_all(state, dir, progress)?;
                let note = if skipped.is_empty() {
                    String::new()
                } else {
                    format!(" (skipped: {})", skipped.join("; "))
                };
                Ok(format!(
                    "wrote {} files into {}{note}",
                    files.len(),
                    dir.display()
                ))
            }
            ExportJob::Gif => Ok(format!(
                "wrote {}",
                export_gif(state, dir, progress)?.display()
            )),
        }
    }
}

/// An export running on its own thread, from a copy of the state.
pub struct ExportTask {
    title: String,
    progress: Progress,
    handle: Option<JoinHandle<anyhow::Result<String>>>,
}

impl ExportTask {
    /// Starts `job` into `dir` on a thread named `export`.
    pub fn spawn(
        job: ExportJob,
        state: AppState,
        dir: PathBuf,
        progress: Progress,
    ) -> anyhow::Result<Self> {
        let title = job.title();
        let p = progress.clone();
        let handle = std::thread::Builder::new()
            .name("export".into())
            .spawn(move || job.run(&state, &dir, &p))
            .map_err(|e| anyhow::anyhow!("cannot start the export: {e}"))?;
        Ok(Self {
            title,
            progress,
            handle: Some(handle),
        })
    }

    /// What is being exported and the share done.
    pub fn status(&self) -> (String, f32) {
        (self.title.clone(), self.progress.share())
    }

    /// The outcome, once the thread has finished (`None` while it runs).
    pub fn try_finish(&mut self) -> Option<anyhow::Result<String>> {
        if !self.handle.as_ref()?.is_finished() {
            return None;
        }
        let handle = self.handle.take()?;
        Some(
            handle.join().unwrap_or_else(|_| {
                Err(anyhow::anyhow!("the export stopped with an internal error"))
            }),
        )
    }
}
