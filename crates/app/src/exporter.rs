//! Carries out the export actions beside the frame loop ([`ExportTask`]: on a thread, or a few
//! steps a frame in a browser), from a copy of the state, so the window keeps drawing. The files are written by [`latent_atlas_view::export::folder`], the
//! same writer `train` uses.

use std::path::PathBuf;

use image::RgbaImage;

use super::action::View;
use super::state::AppState;
use latent_atlas_core::platform::{self, Runner, Step as WorkStep, Work};
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

/// An export under way, from a copy of the state, through the platform's
/// [`Runner`]: on a thread of its own on the desktops, into the chosen folder; in a browser a
/// few steps a frame ([`ExportTask::try_finish`]), its files then offered as one download
/// (several as a zip).
pub struct ExportTask {
    title: String,
    progress: Progress,
    runner: Runner<anyhow::Result<String>>,
}

/// How long a frame may spend on an export's steps where it has no thread (at least one step
/// a frame).
const EXPORT_SLICE: web_time::Duration = web_time::Duration::from_millis(30);

/// An export as steps ([`Work`]): the steps left, and what they wrote so far.
struct Exporting {
    job: ExportJob,
    state: AppState,
    steps: std::collections::VecDeque<Step>,
    /// Where the files go: a folder, or memory for a download.
    sink: Destination,
    made: Made,
    progress: Progress,
}

/// Where an export's files go.
enum Destination {
    Folder(folder::Folder),
    /// Kept in memory, then offered as one download (a browser's export).
    Download(folder::Memory),
}

impl Work for Exporting {
    type Output = anyhow::Result<String>;

    fn step(&mut self, _wait: bool) -> WorkStep<Self::Output> {
        let Some(step) = self.steps.pop_front() else {
            return WorkStep::Done(self.finish());
        };
        let sink: &mut dyn folder::Sink = match &mut self.sink {
            Destination::Folder(f) => f,
            Destination::Download(m) => m,
        };
        if let Err(e) = step.run(&self.state, sink, &mut self.made) {
            return WorkStep::Done(Err(e));
        }
        self.progress.tick();
        WorkStep::Worked
    }
}

impl Exporting {
    /// The notice once every step is done (a download is offered first).
    fn finish(&mut self) -> anyhow::Result<String> {
        let notice = self.job.notice(std::mem::take(&mut self.made.written))?;
        Ok(match (&self.sink, &self.job) {
            (Destination::Download(memory), _) => {
                let name = platform::offer_download(&memory.0, self.job.bundle_name())?;
                format!("{notice}; downloading {name}")
            }
            (Destination::Folder(dir), ExportJob::All) => {
                format!("{notice} into {}", dir.0.display())
            }
            _ => notice,
        })
    }
}

impl ExportTask {
    /// Starts `job`: into `dir` on a thread named `export` where there is a file system, else
    /// as a download once its steps are done.
    pub fn spawn(
        job: ExportJob,
        state: AppState,
        dir: PathBuf,
        progress: Progress,
    ) -> anyhow::Result<Self> {
        let steps: std::collections::VecDeque<Step> = job.steps(&state).into();
        progress.start(steps.len());
        let title = job.title();
        let sink = match platform::HAS_FILES {
            true => Destination::Folder(folder::Folder(dir)),
            false => Destination::Download(folder::Memory::default()),
        };
        let work = Exporting {
            job,
            state,
            steps,
            sink,
            made: Made::default(),
            progress: progress.clone(),
        };
        let runner = Runner::start("export", work)
            .map_err(|e| anyhow::anyhow!("cannot start the export: {e}"))?;
        Ok(Self {
            title,
            progress,
            runner,
        })
    }

    /// What is being exported and the share done.
    pub fn status(&self) -> (String, f32) {
        (self.title.clone(), self.progress.share())
    }

    /// The outcome, once the export has finished (`None` while it runs). Where the export has
    /// no thread, this runs its next steps first, for a slice of the frame.
    pub fn try_finish(&mut self) -> Option<anyhow::Result<String>> {
        self.runner.turn(EXPORT_SLICE);
        let outcome = self.runner.try_take()?;
        Some(
            outcome
                .map_err(anyhow::Error::msg)
                .and_then(|notice| notice),
        )
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
