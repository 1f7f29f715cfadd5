//! File dialogs and dropped files, each off the frame loop through the platform's
//! [`Shell`](super::shell::Shell): the frame loop never blocks on one, and the choice comes
//! back through a channel.

use std::sync::mpsc::TryRecvError;

use super::LatentAtlasApp;
use super::action::Action;
use super::shell::{Answer, DialogPurpose, Picked};
use latent_atlas_core::data::files::Source;
use latent_atlas_core::platform::HAS_FILES;

impl LatentAtlasApp {
    pub(super) fn open_dialog(&mut self, purpose: DialogPurpose) {
        if self.dialog.is_some() {
            return;
        }
        if !HAS_FILES {
            // In a browser a dataset or a saved run is uploaded; exports and saved runs arrive
            // as downloads instead of going to a folder.
            match purpose {
                DialogPurpose::Dataset | DialogPurpose::LoadRun => {}
                DialogPurpose::ExportDir => {
                    return self.state.notices.push(
                        "in the browser every export is a download: there is no folder to choose"
                            .into(),
                    );
                }
                // The checkpoint comes back from the worker as files, and downloads as a zip
                // with every view (`Event::RunFiles`).
                DialogPurpose::SaveRun => {
                    self.send(latent_atlas_core::worker::Command::SaveFiles);
                    return;
                }
            }
        }
        let answer = self.answer_channel(purpose);
        self.shell.pick(purpose, answer);
    }

    /// Where a dialog's (or a drop's) answer goes: the channel [`Self::poll_dialog`] reads,
    /// with a frame asked for.
    fn answer_channel(&mut self, purpose: DialogPurpose) -> Answer {
        let (tx, rx) = std::sync::mpsc::channel();
        let ctx = self.ctx.clone();
        self.dialog = Some((purpose, rx));
        Box::new(move |picked| {
            let _ = tx.send(picked);
            ctx.request_repaint();
        })
    }

    /// Files dropped on the window become the dataset, as if picked: one file or folder on
    /// the desktop by its path, several as an upload held in memory; in a browser (whose files
    /// have no path, and are read asynchronously) always as an upload. The files are read off
    /// the frame loop by the shell, and come back like a dialog's pick.
    pub(super) fn take_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped = ctx.input(|i| i.raw.dropped_files.clone());
        if dropped.is_empty() || self.dialog.is_some() {
            return;
        }
        if HAS_FILES && let [one] = dropped.as_slice() {
            return self.use_picked(DialogPurpose::Dataset, Picked::Path(one.path().to_owned()));
        }
        let answer = self.answer_channel(DialogPurpose::Dataset);
        self.shell.read_dropped(dropped, answer);
    }

    pub(super) fn poll_dialog(&mut self) {
        let Some((purpose, rx)) = &self.dialog else {
            return;
        };
        let picked = match rx.try_recv() {
            Ok(p) => p,
            Err(TryRecvError::Empty) => return,
            Err(TryRecvError::Disconnected) => {
                self.state
                    .errors
                    .push("the file dialog could not open (no portal or zenity?)".into());
                None
            }
        };
        let purpose = *purpose;
        self.dialog = None;
        if let Some(picked) = picked {
            self.use_picked(purpose, picked);
        }
    }

    /// Starts over on the dataset in `source` (on disk, or uploaded: the config then carries
    /// the upload itself).
    fn use_dataset(&mut self, source: Source) {
        let config = &mut self.state.settings.config;
        // The dataset trained on now, kept until the new one is ready (see `dataset_before`).
        self.dataset_before
            .get_or_insert_with(|| (config.dataset.clone(), config.upload.clone()));
        config.dataset = source.name();
        config.upload = match source {
            Source::Upload(upload) => Some(upload),
            Source::Disk(_) => None,
        };
        self.views.draft.dataset_path = config.dataset.clone();
        self.handle(Action::Reset);
    }

    fn use_picked(&mut self, purpose: DialogPurpose, picked: Picked) {
        use latent_atlas_core::train::checkpoint::is_saved_run;
        match (purpose, picked) {
            (_, Picked::Failed(error)) => self.state.errors.push(error),
            (DialogPurpose::ExportDir, Picked::Path(path)) => {
                self.views.draft.export_dir = Some(path.display().to_string());
                self.state.settings.export_dir = path;
            }
            (DialogPurpose::SaveRun, Picked::Path(path)) => {
                self.handle(Action::SaveRun(Some(path)))
            }
            // Folders to write into are never uploads.
            (DialogPurpose::ExportDir | DialogPurpose::SaveRun, Picked::Upload(_)) => {}
            (DialogPurpose::Dataset | DialogPurpose::LoadRun, picked) => {
                let Some(source) = picked.source() else {
                    return;
                };
                // A saved run given as a dataset (dropped, most often) is loaded as the run.
                match purpose == DialogPurpose::LoadRun || is_saved_run(&source) {
                    true => self.handle(Action::LoadRun(Some(source))),
                    false => self.use_dataset(source),
                }
            }
        }
    }
}
