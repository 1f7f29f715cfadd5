//! Carries out the export actions on their own thread ([`ExportTask`]), from a copy of the
//! state, so the window keeps drawing. The files are written by [`latent_atlas_view::export::folder`], the
//! same writer `train` uses.

use std::path::PathBuf;
#[cfg(not(target_arch = "wasm32"))]
use std::thread::JoinHandle;

use image::RgbaImage;

use super::action::View;
use super::state::AppState;
use latent_atlas_core::train::Snapshot;
use latent_atlas_view::export::folder;
pub use latent_atlas_view::export::folder::Progress;
use latent_atlas_view::scene::Census;

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

    /// Its steps, in order.
    fn steps(&self, state: &AppState) -> Vec<Step> {
        let parts = || folder::all_parts(&state.main).into_iter().map(Step::Part);
        match self {
            ExportJob::View(view) => vec![Step::Part(folder::Part::View(*view))],
            ExportJob::All => parts().collect(),
            ExportJob::Gif => (0..state.main.timeline.len())
                .map(Step::GifFrame)
                .chain([Step::GifEncode])
                .collect(),
            ExportJob::Run(files) => parts()
                .chain(
                    files
                        .iter()
                        .cloned()
                        .map(|(name, bytes)| Step::Put(name, bytes)),
                )
                .collect(),
        }
    }

    /// Runs the export into `sink`; returns the notice to show.
    pub fn run(
        &self,
        state: &AppState,
        sink: &mut dyn folder::Sink,
        progress: &Progress,
    ) -> anyhow::Result<String> {
        let steps = self.steps(state);
        progress.start(steps.len());
        let mut made = Made::default();
        for step in steps {
            step.run(state, sink, &mut made)?;
            progress.tick();
        }
        self.notice(made.written)
    }

    /// What the status bar says once every step is done.
    fn notice(&self, written: folder::Written) -> anyhow::Result<String> {
        let skipped = || match written.skipped.is_empty() {
            true => String::new(),
            false => format!(" (skipped: {})", written.skipped.join("; ")),
        };
        Ok(match self {
            // One view that cannot be drawn is an error, not a skip.
            ExportJob::View(_) => match (written.files.first(), written.skipped.first()) {
                (Some(p), _) => format!("wrote {p}"),
                (None, Some(why)) => anyhow::bail!("{why}"),
                (None, None) => anyhow::bail!("nothing was written"),
            },
            ExportJob::All => format!("wrote {} files{}", written.files.len(), skipped()),
            ExportJob::Gif => format!("wrote {}", written.files.join(", ")),
            ExportJob::Run(_) => format!("saved the run ({} files)", written.files.len()),
        })
    }
}

/// One step of an export: a page takes one (or a few) a frame.
enum Step {
    /// A part of every view's export.
    Part(folder::Part),
    /// One frame of the training GIF (the timeline's `i`-th snapshot).
    GifFrame(usize),
    /// The training GIF, encoded from its frames.
    GifEncode,
    /// A file already made (a checkpoint's).
    Put(String, Vec<u8>),
}

/// What an export's steps have made so far.
#[derive(Default)]
struct Made {
    written: folder::Written,
    /// The training GIF's frames.
    frames: Vec<RgbaImage>,
}

impl Step {
    fn run(
        &self,
        state: &AppState,
        sink: &mut dyn folder::Sink,
        made: &mut Made,
    ) -> anyhow::Result<()> {
        let (shown, choices) = (state.shown_snapshot(), state.view_choices());
        let written = &mut made.written;
        match self {
            Step::Part(part) => {
                folder::write_part(&state.main, shown, &choices, *part, sink, written)
            }
            Step::GifFrame(i) => {
                made.frames
                    .push(folder::gif_frame(&state.main, &choices, *i));
                Ok(())
            }
            Step::GifEncode => {
                written.files.push(folder::put_gif(&made.frames, sink)?);
                made.frames.clear();
                Ok(())
            }
            Step::Put(name, bytes) => {
                written.files.push(sink.put(name, bytes)?);
                Ok(())
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
    web: Option<Box<WebExport>>,
}

/// An export in a page: the steps left, and what they wrote so far.
#[cfg(target_arch = "wasm32")]
struct WebExport {
    job: ExportJob,
    state: AppState,
    steps: std::collections::VecDeque<Step>,
    sink: folder::Memory,
    made: Made,
}

/// How long a page's frame may spend on an export's steps (at least one step a frame).
#[cfg(target_arch = "wasm32")]
const WEB_EXPORT_SLICE: web_time::Duration = web_time::Duration::from_millis(30);

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

    /// Prepares `job`: its steps run a few at a time, each frame (see
    /// [`ExportTask::try_finish`]), and its files are then offered as one download (several as
    /// a zip).
    #[cfg(target_arch = "wasm32")]
    pub fn spawn(
        job: ExportJob,
        state: AppState,
        _dir: PathBuf,
        progress: Progress,
    ) -> anyhow::Result<Self> {
        let steps: std::collections::VecDeque<Step> = job.steps(&state).into();
        progress.start(steps.len());
        Ok(Self {
            title: job.title(),
            progress,
            web: Some(Box::new(WebExport {
                job,
                state,
                steps,
                sink: folder::Memory::default(),
                made: Made::default(),
            })),
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

    /// Runs the next steps, for a slice of the frame; the outcome once the last is done and
    /// its files are offered as a download (`None` while steps remain).
    #[cfg(target_arch = "wasm32")]
    pub fn try_finish(&mut self) -> Option<anyhow::Result<String>> {
        let web = self.web.as_mut()?;
        let start = web_time::Instant::now();
        while let Some(step) = web.steps.pop_front() {
            if let Err(e) = step.run(&web.state, &mut web.sink, &mut web.made) {
                self.web = None;
                return Some(Err(e));
            }
            self.progress.tick();
            if start.elapsed() > WEB_EXPORT_SLICE {
                break;
            }
        }
        if !web.steps.is_empty() {
            return None;
        }
        let web = self.web.take()?;
        let WebExport {
            job, sink, made, ..
        } = *web;
        Some(job.notice(made.written).and_then(|notice| {
            let name = latent_atlas_core::platform::offer_download(&sink.0, job.bundle_name())?;
            Ok(format!("{notice}; downloading {name}"))
        }))
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

    #[test]
    fn a_gif_without_snapshots_is_refused_and_takes_a_step_a_frame_otherwise() {
        let state = AppState::default();
        let err = ExportJob::Gif
            .run(&state, &mut folder::Memory::default(), &Progress::default())
            .unwrap_err();
        assert!(err.to_string().contains("no snapshots yet"), "{err}");
        // One step per timeline frame, then the encoding.
        assert_eq!(ExportJob::Gif.steps(&state).len(), 1);
    }
}
