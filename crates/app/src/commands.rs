//! Carrying out actions: run control, the comparison run, saving, loading and exports.

use std::path::PathBuf;
use std::sync::Arc;

use super::action::Action;
use super::shell::DialogPurpose;
use super::{LatentAtlasApp, TRAINING_REPAINT, exporter};
use latent_atlas_core::train::ModelKind;
use latent_atlas_core::worker::{Command, Worker};
use latent_atlas_view::run::RunView;

impl LatentAtlasApp {
    pub(super) fn spawn_worker(&mut self) {
        if let Some(mut w) = self.worker.take() {
            w.shutdown();
        }
        let waker = self.waker();
        self.worker_backend = self.state.settings.backend.clone();
        match Worker::spawn(
            self.state.settings.config.clone(),
            self.worker_backend.clone(),
            waker,
        ) {
            Ok(w) => self.worker = Some(w),
            Err(e) => self
                .state
                .errors
                .push(format!("cannot start the training thread: {e}")),
        }
    }

    /// What a worker calls after each event: a repaint soon, from a thread of its own; where
    /// there is none, a note for [`LatentAtlasApp::train_slice`] (which paces the frames).
    fn waker(&self) -> latent_atlas_core::worker::Waker {
        match latent_atlas_core::platform::HAS_THREADS {
            true => {
                let ctx = self.ctx.clone();
                Arc::new(move || ctx.request_repaint_after(TRAINING_REPAINT))
            }
            false => {
                let news = self.frames.news.clone();
                Arc::new(move || news.store(true, std::sync::atomic::Ordering::Relaxed))
            }
        }
    }

    pub(super) fn send(&mut self, command: Command) {
        let sent = self.worker.as_ref().is_some_and(|w| w.send(command));
        if !sent {
            self.state
                .errors
                .push("the training thread is not answering; press Reset".into());
        }
    }

    /// Starts (or, with `None`, ends) a comparison run of another family.
    pub(super) fn start_compare(&mut self, family: Option<ModelKind>) {
        if let Some(mut w) = self.compare_worker.take() {
            w.shutdown();
        }
        self.state.compare = None;
        let Some(family) = family else { return };
        let mut config = self.state.settings.config.clone();
        config.set_model(family);
        let waker = self.waker();
        let config_for_view = config.clone();
        match Worker::spawn(config, self.worker_backend.clone(), waker) {
            Ok(w) => {
                self.compare_worker = Some(w);
                self.state.compare = Some(RunView::new(config_for_view));
            }
            Err(e) => self
                .state
                .errors
                .push(format!("cannot start the comparison run: {e}")),
        }
    }

    /// Sends a run-control command to the comparison run too.
    pub(super) fn send_compare(&self, command: Command) {
        if let Some(w) = &self.compare_worker {
            w.send(command);
        }
    }

    /// Carries out one action.
    pub fn handle(&mut self, action: Action) {
        match action {
            Action::Start | Action::Resume => {
                self.send(Command::Resume);
                self.send_compare(Command::Resume);
            }
            Action::Pause => {
                self.send(Command::Pause);
                self.send_compare(Command::Pause);
            }
            Action::Score => self.send(Command::Score),
            Action::Compare(family) => self.start_compare(family),
            Action::Reset => {
                self.start_when_ready = true;
                if self.state.settings.backend != self.worker_backend {
                    self.spawn_worker();
                } else {
                    let config = Box::new(self.state.settings.config.clone());
                    self.send(Command::Reset(config));
                }
                // A comparison restarts with the new settings.
                if let Some(family) = self.state.compare.as_ref().map(|c| c.family()) {
                    self.start_compare(Some(family));
                }
            }
            Action::ApplyHyper => {
                let hyper = self.state.settings.config.hyper.clone();
                self.send_compare(Command::SetHyper(hyper.clone()));
                self.send(Command::SetHyper(hyper));
            }
            Action::OpenDatasetDialog => self.open_dialog(DialogPurpose::Dataset),
            Action::ChooseExportDir => self.open_dialog(DialogPurpose::ExportDir),
            Action::SaveRun(None) => self.open_dialog(DialogPurpose::SaveRun),
            Action::LoadRun(None) => self.open_dialog(DialogPurpose::LoadRun),
            Action::SaveRun(Some(dir)) => {
                self.send(Command::Save(dir.clone()));
                self.start_export(exporter::ExportJob::All, dir);
            }
            Action::LoadRun(Some(source)) => {
                // The curves come back from the run's metrics.csv once its model is ready.
                self.pending_history = latent_atlas_core::train::checkpoint::RunFiles::of(&source)
                    .ok()
                    .and_then(|files| files.read("metrics.csv").ok())
                    .map(|bytes| {
                        latent_atlas_view::export::csv::parse_metrics_csv(&String::from_utf8_lossy(
                            &bytes,
                        ))
                    });
                self.send(Command::Load(source));
            }
            Action::Export(view) => {
                let dir = self.state.settings.export_dir.clone();
                self.start_export(exporter::ExportJob::View(view), dir);
            }
            Action::ExportAll => {
                let dir = self.state.settings.export_dir.clone();
                self.start_export(exporter::ExportJob::All, dir);
            }
            Action::ExportGif => {
                let dir = self.state.settings.export_dir.clone();
                self.start_export(exporter::ExportJob::Gif, dir);
            }
        }
    }

    /// Starts an export on its own thread from a copy of the state; one at a time.
    pub(super) fn start_export(&mut self, job: exporter::ExportJob, dir: PathBuf) {
        if let Some(task) = &self.export {
            let (title, _) = task.status();
            self.state.notices.push(format!(
                "{title} is still running; try again when it is done"
            ));
            return;
        }
        let ctx = self.ctx.clone();
        let progress = exporter::Progress::new(Arc::new(move || ctx.request_repaint()));
        match exporter::ExportTask::spawn(job, self.state.clone(), dir, progress) {
            Ok(task) => {
                self.state.exporting = Some(task.status());
                self.export = Some(task);
            }
            Err(e) => self.state.errors.push(format!("{e:#}")),
        }
    }

    /// Whether an export is running.
    pub fn is_exporting(&self) -> bool {
        self.export.is_some()
    }

    /// Shows the running export's progress, and its outcome once done.
    pub(super) fn poll_export(&mut self) {
        let Some(task) = &mut self.export else {
            return;
        };
        match task.try_finish() {
            None => self.state.exporting = Some(task.status()),
            Some(outcome) => {
                match outcome {
                    Ok(notice) => self.state.notices.push(notice),
                    Err(e) => self.state.errors.push(format!("{e:#}")),
                }
                self.export = None;
                self.state.exporting = None;
            }
        }
    }
}
