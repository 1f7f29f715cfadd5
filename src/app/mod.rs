//! The desktop explorer: an eframe app over the training worker.
//!
//! `logic` drains worker events into [`state::AppState`] (with a time budget) and decodes the
//! pending preview; `ui` draws the panels, which return [`action::Action`]s; the shell carries
//! them out after drawing. File dialogs run on their own thread and report back through a
//! channel, so the frame loop never blocks.

pub mod action;
pub mod exporter;
pub mod images;
pub mod panels;
pub mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use crate::explore::samples::SampleRequest;
use action::Action;
use images::CachedTexture;
use panels::controls::ControlsDraft;
use panels::plane::PlaneView;
use state::{AppState, Settings, Tab};

use crate::backend::BackendChoice;
use crate::worker::{Command, RunState, Worker};

/// Time allowed per frame for folding worker events.
const EVENT_BUDGET: Duration = Duration::from_millis(10);

/// How the app starts.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// Start training as soon as the model is ready.
    pub autostart: bool,
    /// Use this backend instead of the remembered one.
    pub backend: Option<BackendChoice>,
    /// Use this dataset instead of the remembered one.
    pub dataset: Option<String>,
    /// Ignore remembered settings.
    pub fresh: bool,
    /// Track this many probe samples instead of the remembered number.
    pub probe_size: Option<usize>,
}

/// How often training's news repaints the window (about 30 frames a second): curves and
/// the plane move smoothly, and the UI thread leaves most of a core to training. Input still
/// repaints at once.
pub const TRAINING_REPAINT: Duration = Duration::from_millis(33);

/// What a pending file dialog was opened for.
#[derive(Clone, Copy, Debug)]
enum DialogPurpose {
    Dataset,
    ExportDir,
    SaveRun,
    LoadRun,
}

/// Textures and per-view state that only the screen needs.
struct Views {
    plane: PlaneView,
    samples: CachedTexture<SampleRequest>,
    recon: CachedTexture<u64>,
    strip: CachedTexture<panels::interp::StripKey>,
    preview: CachedTexture<Vec<u32>>,
    draft: ControlsDraft,
}

/// The eframe application.
pub struct LatentAtlasApp {
    /// The explorer state (public for tests and the screenshot command).
    pub state: AppState,
    worker: Option<Worker>,
    /// The second run of a side-by-side comparison.
    compare_worker: Option<Worker>,
    worker_backend: BackendChoice,
    start_when_ready: bool,
    views: Views,
    dialog: Option<(DialogPurpose, Receiver<Option<PathBuf>>)>,
    ctx: egui::Context,
    /// The export running on its own thread, if any.
    export: Option<exporter::ExportTask>,
    /// Curves of a run being loaded, restored once its model is ready.
    pending_history: Option<(
        Vec<crate::train::StepMetrics>,
        Vec<crate::train::TestMetrics>,
    )>,
}

impl LatentAtlasApp {
    /// Builds the app from eframe's creation context, restoring remembered settings.
    pub fn new(cc: &eframe::CreationContext<'_>, options: StartOptions) -> Self {
        let mut settings: Settings = if options.fresh {
            Settings::default()
        } else {
            cc.storage
                .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
                .unwrap_or_default()
        };
        if let Some(b) = options.backend {
            settings.backend = b;
        }
        if let Some(d) = options.dataset {
            settings.config.dataset = d;
        }
        if let Some(n) = options.probe_size {
            settings.config.probe_size = n;
        }
        let mut app = Self {
            worker_backend: settings.backend,
            state: AppState::new(settings),
            worker: None,
            compare_worker: None,
            start_when_ready: options.autostart,
            views: Views {
                plane: PlaneView::default(),
                samples: CachedTexture::new("samples"),
                recon: CachedTexture::new("reconstructions"),
                strip: CachedTexture::new("interpolation"),
                preview: CachedTexture::new("preview"),
                draft: ControlsDraft::default(),
            },
            dialog: None,
            ctx: cc.egui_ctx.clone(),
            export: None,
            pending_history: None,
        };
        app.spawn_worker();
        app
    }

    fn spawn_worker(&mut self) {
        if let Some(mut w) = self.worker.take() {
            w.shutdown();
        }
        let ctx = self.ctx.clone();
        let waker = Arc::new(move || ctx.request_repaint_after(TRAINING_REPAINT));
        self.worker_backend = self.state.settings.backend;
        match Worker::spawn(
            self.state.settings.config.clone(),
            self.worker_backend,
            waker,
        ) {
            Ok(w) => self.worker = Some(w),
            Err(e) => self
                .state
                .errors
                .push(format!("cannot start the training thread: {e}")),
        }
    }

    fn send(&mut self, command: Command) {
        let sent = self.worker.as_ref().is_some_and(|w| w.send(command));
        if !sent {
            self.state
                .errors
                .push("the training thread is not answering; press Reset".into());
        }
    }

    /// Folds pending worker events into the state, within a time budget.
    pub fn poll_worker(&mut self) {
        let Some(worker) = &self.worker else { return };
        let start = Instant::now();
        while start.elapsed() < EVENT_BUDGET {
            let Some(event) = worker.recv_timeout(Duration::ZERO) else {
                break;
            };
            let ready = matches!(event, crate::worker::Event::Ready { .. });
            let failed = matches!(event, crate::worker::Event::Failed(_));
            self.state.apply(event);
            if ready && std::mem::take(&mut self.start_when_ready) {
                worker.send(Command::Start);
            }
            if ready && let Some((train, tests)) = self.pending_history.take() {
                self.state.main.restore(train, tests);
            }
            if failed {
                self.start_when_ready = false;
                self.pending_history = None;
            }
        }
        if let Some(s) = worker.take_snapshot() {
            self.state.set_snapshot(s);
        }
        self.poll_compare();
    }

    /// Folds the comparison run's events; it follows the main run's start and pause.
    fn poll_compare(&mut self) {
        let (Some(worker), Some(compare)) = (&self.compare_worker, &mut self.state.compare) else {
            return;
        };
        let start = Instant::now();
        while start.elapsed() < EVENT_BUDGET {
            let Some(event) = worker.recv_timeout(Duration::ZERO) else {
                break;
            };
            if matches!(event, crate::worker::Event::Ready { .. })
                && self.state.main.state == Some(RunState::Running)
            {
                worker.send(Command::Start);
            }
            compare.apply(event);
        }
        if let Some(s) = worker.take_snapshot() {
            compare.set_snapshot(s);
        }
    }

    /// Starts (or, with `None`, ends) a comparison run of another family.
    fn start_compare(&mut self, family: Option<crate::train::ModelKind>) {
        if let Some(mut w) = self.compare_worker.take() {
            w.shutdown();
        }
        self.state.compare = None;
        let Some(family) = family else { return };
        let mut config = self.state.settings.config.clone();
        config.model = family;
        if family != crate::train::ModelKind::FVae
            && config.likelihood == crate::model::Likelihood::GaussianTrained
        {
            config.likelihood = crate::model::Likelihood::Bernoulli;
        }
        let ctx = self.ctx.clone();
        let waker = Arc::new(move || ctx.request_repaint_after(TRAINING_REPAINT));
        let config_for_view = config.clone();
        match Worker::spawn(config, self.worker_backend, waker) {
            Ok(w) => {
                self.compare_worker = Some(w);
                self.state.compare = Some(crate::run::RunView::new(config_for_view));
            }
            Err(e) => self
                .state
                .errors
                .push(format!("cannot start the comparison run: {e}")),
        }
    }

    /// Sends a run-control command to the comparison run too.
    fn send_compare(&self, command: Command) {
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
            Action::LoadRun(Some(dir)) => {
                // The curves come back from the run's metrics.csv once its model is ready.
                self.pending_history = std::fs::read_to_string(dir.join("metrics.csv"))
                    .ok()
                    .map(|text| crate::export::csv::parse_metrics_csv(&text));
                self.send(Command::Load(dir));
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
    fn start_export(&mut self, job: exporter::ExportJob, dir: PathBuf) {
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
    fn poll_export(&mut self) {
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

    fn open_dialog(&mut self, purpose: DialogPurpose) {
        if self.dialog.is_some() {
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let ctx = self.ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("file-dialog".into())
            .spawn(move || {
                let dialog = rfd::FileDialog::new();
                let picked = match purpose {
                    DialogPurpose::Dataset => dialog
                        .set_title("Dataset folder (IDX files or images)")
                        .pick_folder(),
                    DialogPurpose::ExportDir => dialog.set_title("Export folder").pick_folder(),
                    DialogPurpose::SaveRun => {
                        dialog.set_title("Save the run into a folder").pick_folder()
                    }
                    DialogPurpose::LoadRun => {
                        dialog.set_title("Load a saved run folder").pick_folder()
                    }
                };
                let _ = tx.send(picked);
                ctx.request_repaint();
            });
        match spawned {
            Ok(_) => self.dialog = Some((purpose, rx)),
            Err(e) => self
                .state
                .errors
                .push(format!("cannot open a file dialog: {e}")),
        }
    }

    fn poll_dialog(&mut self) {
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
        let Some(path) = picked else { return };
        match purpose {
            DialogPurpose::Dataset => {
                self.views.draft.dataset_path = path.display().to_string();
                self.state.settings.config.dataset = path.display().to_string();
                self.handle(Action::Reset);
            }
            DialogPurpose::ExportDir => {
                self.views.draft.export_dir = Some(path.display().to_string());
                self.state.settings.export_dir = path;
            }
            DialogPurpose::SaveRun => self.handle(Action::SaveRun(Some(path))),
            DialogPurpose::LoadRun => self.handle(Action::LoadRun(Some(path))),
        }
    }

    fn shortcuts(&mut self, ctx: &egui::Context) -> Vec<Action> {
        let mut actions = Vec::new();
        if ctx.egui_wants_keyboard_input() {
            return actions;
        }
        let (space, save, export, reset, home, down, up) = ctx.input_mut(|i| {
            (
                i.consume_key(egui::Modifiers::NONE, egui::Key::Space),
                i.consume_key(egui::Modifiers::COMMAND, egui::Key::S),
                i.consume_key(egui::Modifiers::COMMAND, egui::Key::E),
                i.consume_key(egui::Modifiers::COMMAND, egui::Key::R),
                i.consume_key(egui::Modifiers::NONE, egui::Key::Home),
                i.consume_key(egui::Modifiers::NONE, egui::Key::OpenBracket),
                i.consume_key(egui::Modifiers::NONE, egui::Key::CloseBracket),
            )
        });
        if ctx.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::Q)) {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        if space {
            actions.push(match self.state.main.state {
                Some(RunState::Running) => Action::Pause,
                _ => Action::Resume,
            });
        }
        if save {
            actions.push(Action::SaveRun(None));
        }
        if export {
            actions.push(Action::ExportAll);
        }
        if reset {
            actions.push(Action::Reset);
        }
        if home {
            self.views.plane.reset = true;
        }
        if down || up {
            let t = self.state.settings.temperature + if up { 0.05 } else { -0.05 };
            self.state.set_temperature(t);
        }
        actions
    }

    /// Stops and joins the training thread.
    pub fn shutdown(&mut self) {
        if let Some(mut w) = self.compare_worker.take() {
            w.shutdown();
        }
        if let Some(mut w) = self.worker.take() {
            w.shutdown();
        }
    }
}

impl eframe::App for LatentAtlasApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.poll_worker();
        self.poll_dialog();
        self.poll_export();
        self.state.fulfil_preview();
        for action in self.shortcuts(ctx) {
            self.handle(action);
        }
        if self.state.is_running() {
            ctx.request_repaint_after(TRAINING_REPAINT);
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let mut actions = Vec::new();
        let mut dismiss = false;
        egui::Panel::bottom("status").show(ui, |ui| {
            dismiss = panels::status::status_ui(ui, &self.state)
        });
        if dismiss {
            self.state.errors.clear();
        }
        egui::Panel::left("controls")
            .resizable(true)
            .default_size(250.0)
            .show(ui, |ui| {
                actions = panels::controls::controls_ui(ui, &mut self.state, &mut self.views.draft);
            });
        // The latent plane keeps at least 40% of the height whatever the tabs' content asks.
        let max_tabs = (ui.available_height() * 0.6).max(200.0);
        egui::Panel::bottom("tabs")
            .resizable(true)
            .default_size(270.0)
            .max_size(max_tabs)
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    for tab in Tab::ALL {
                        ui.selectable_value(&mut self.state.settings.tab, tab, tab.title());
                    }
                });
                ui.separator();
                match self.state.settings.tab {
                    Tab::Curves => panels::curves::curves_ui(ui, &mut self.state),
                    Tab::Samples => {
                        let a = panels::samples::samples_ui(
                            ui,
                            &mut self.state,
                            &mut self.views.samples,
                        );
                        actions.extend(a);
                    }
                    Tab::Interpolation => panels::interp::interp_ui(
                        ui,
                        &mut self.state,
                        &mut self.views.strip,
                        &mut self.views.preview,
                    ),
                    Tab::Reconstructions => {
                        panels::recon::recon_ui(ui, &self.state, &mut self.views.recon)
                    }
                }
            });
        egui::CentralPanel::default().show(ui, |ui| {
            panels::plane::plane_ui(ui, &mut self.state, &mut self.views.plane);
        });
        // A drag decoded this frame is shown in this frame's preview, not the next one.
        self.state.fulfil_preview();
        for action in actions {
            self.handle(action);
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.state.settings);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.shutdown();
    }
}
