//! Carries out the export actions on their own thread ([`ExportTask`]), from a copy of the
//! state, so the window keeps drawing. The files are written by [`crate::export::folder`], the
//! same writer `train` uses.

use std::path::PathBuf;
#[cfg(not(target_arch = "wasm32"))]
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
    /// A saved run as one bundle: every view (as [`ExportJob::All`]), then the checkpoint's
    /// files, `config.json` last (where there is no folder to save into, as in a browser).
    Run(Vec<(String, Vec<u8>)>),
}

impl ExportJob {
    /// What the status bar calls it.
    pub fn title(&self) -> String {
        match self {
            ExportJob::View(v) => format!("Exporting {}", v.title()),
            ExportJob::All => "Exporting all views".to_owned(),
            ExportJob::Gif => "Writing the training GIF".to_owned(),
            ExportJob::Run(_) => "Saving the run".to_owned(),
        }
    }

    /// The name of the one download its files arrive as, when there are several.
    pub fn bundle_name(&self) -> &'static str {
        match self {
            ExportJob::Run(_) => "latent-atlas-run.zip",
            _ => "latent-atlas-export.zip",
        }
    }

    /// Runs the export into `sink`; returns the notice to show.
    pub fn run(
        &self,
        state: &AppState,
        sink: &mut dyn folder::Sink,
        progress: &Progress,
    ) -> anyhow::Result<String> {
        let (shown, choices) = (state.shown_snapshot(), state.view_choices());
        match self {
            ExportJob::View(view) => {
                progress.start(1);
                let p = folder::write_view(&state.main, shown, &choices, *view, sink)?;
                progress.tick();
                Ok(format!("wrote {p}"))
            }
            ExportJob::All => {
                let written = folder::write_all(&state.main, shown, &choices, sink, progress)?;
                let note = if written.skipped.is_empty() {
                    String::new()
                } else {
                    format!(" (skipped: {})", written.skipped.join("; "))
                };
                Ok(format!("wrote {} files{note}", written.files.len()))
            }
            ExportJob::Gif => Ok(format!(
                "wrote {}",
                folder::write_gif(&state.main, &choices, sink, progress)?
            )),
            ExportJob::Run(files) => {
                let written = folder::write_all(&state.main, shown, &choices, sink, progress)?;
                for (name, bytes) in files {
                    sink.put(name, bytes)?;
                }
                Ok(format!(
                    "saved the run ({} files)",
                    written.files.len() + files.len()
                ))
            }
        }
    }
}

/// An export running on its own thread, from a copy of the state (in a browser, where there
/// are no threads, one that ran to the end when it was started and became downloads).
pub struct ExportTask {
    title: String,
    progress: Progress,
    #[cfg(not(target_arch = "wasm32"))]
    handle: Option<JoinHandle<anyhow::Result<String>>>,
    #[cfg(target_arch = "wasm32")]
    outcome: Option<anyhow::Result<String>>,
}

impl ExportTask {
    /// Starts `job` into `dir` on a thread named `export`.
    #[cfg(not(target_arch = "wasm32"))]
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
            .spawn(move || {
                let notice = job.run(&state, &mut folder::Folder(dir.clone()), &p)?;
                Ok(match job {
                    ExportJob::All => format!("{notice} into {}", dir.display()),
                    _ => notice,
                })
            })
            .map_err(|e| anyhow::anyhow!("cannot start the export: {e}"))?;
        Ok(Self {
            title,
            progress,
            handle: Some(handle),
        })
    }

    /// Runs `job` to the end and offers its files as one download (several as a zip).
    #[cfg(target_arch = "wasm32")]
    pub fn spawn(
        job: ExportJob,
        state: AppState,
        _dir: PathBuf,
        progress: Progress,
    ) -> anyhow::Result<Self> {
        let mut files = folder::Memory::default();
        let outcome = job.run(&state, &mut files, &progress).and_then(|notice| {
            let name = crate::platform::offer_download(&files.0, job.bundle_name())?;
            Ok(format!("{notice}; downloading {name}"))
        });
        Ok(Self {
            title: job.title(),
            progress,
            outcome: Some(outcome),
        })
    }

    /// What is being exported and the share done.
    pub fn status(&self) -> (String, f32) {
        (self.title.clone(), self.progress.share())
    }

    /// The outcome, once the export has finished (`None` while it runs).
    #[cfg(not(target_arch = "wasm32"))]
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

    /// The outcome, once the export has finished (`None` while it runs).
    #[cfg(target_arch = "wasm32")]
    pub fn try_finish(&mut self) -> Option<anyhow::Result<String>> {
        self.outcome.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_bundle_holds_the_views_and_the_checkpoint_with_its_config_last() {
        let state = AppState::default();
        let files = vec![
            ("model.bpk".to_owned(), vec![1, 2, 3]),
            ("config.json".to_owned(), b"{}".to_vec()),
        ];
        let job = ExportJob::Run(files);
        let mut sink = folder::Memory::default();
        let notice = job.run(&state, &mut sink, &Progress::default()).unwrap();
        let names: Vec<&str> = sink.0.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"metrics.csv"), "{names:?}");
        assert_eq!(names[names.len() - 2..], ["model.bpk", "config.json"]);
        assert!(notice.starts_with("saved the run"), "{notice}");
        assert_eq!(job.bundle_name(), "latent-atlas-run.zip");
        assert_eq!(ExportJob::All.bundle_name(), "latent-atlas-export.zip");
    }
}
