//! Carries out the export actions on their own thread ([`ExportTask`]), from a copy of the
//! state, so the window keeps drawing. The files are written by [`crate::export::folder`], the
//! same writer `train` uses.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use image::RgbaImage;

use super::action::View;
use super::state::AppState;
use crate::export::folder;
pub use crate::export::folder::Progress;
use crate::scene::Census;
use crate::train::Snapshot;

/// The latent plane of `snapshot` as the window shows it, `size` pixels wide, and a census of
/// what was painted.
pub fn plane_image(state: &AppState, snapshot: &Snapshot, size: u32) -> (RgbaImage, Census) {
    state.view_choices().plane(snapshot, size)
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
        let (shown, choices) = (state.shown_snapshot(), state.view_choices());
        match self {
            ExportJob::View(view) => {
                progress.start(1);
                let p = folder::write_view(&state.main, shown, &choices, *view, dir)?;
                progress.tick();
                Ok(format!("wrote {}", p.display()))
            }
            ExportJob::All => {
                let written = folder::write_all(&state.main, shown, &choices, dir, progress)?;
                let note = if written.skipped.is_empty() {
                    String::new()
                } else {
                    format!(" (skipped: {})", written.skipped.join("; "))
                };
                Ok(format!(
                    "wrote {} files into {}{note}",
                    written.files.len(),
                    dir.display()
                ))
            }
            ExportJob::Gif => Ok(format!(
                "wrote {}",
                folder::write_gif(&state.main, &choices, dir, progress)?.display()
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
