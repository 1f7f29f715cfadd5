//! The desktop explorer: an eframe app over the training worker.
//!
//! The shell is split by job: [`state`] is the plain-data state (no egui); `events` folds the
//! workers' events into it each frame, within a time budget; [`panels`] draw it and return
//! [`action::Action`]s, which `commands` carries out after drawing; `dialogs` runs file
//! dialogs on their own threads and `shortcuts` reads the keyboard; [`exporter`] writes files
//! on a thread of its own. Nothing here blocks the frame loop.

pub mod action;
mod commands;
mod dialogs;
mod events;
pub mod exporter;
pub mod images;
pub mod panels;
mod shortcuts;
pub mod state;

use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use dialogs::DialogPurpose;
use images::CachedTexture;
use panels::controls::ControlsDraft;
use panels::plane::PlaneView;
use state::{AppState, Settings, Tab};

use crate::backend::BackendChoice;
use crate::explore::samples::SampleRequest;
use crate::worker::Worker;

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
    /// Use these networks instead of the remembered ones.
    pub arch: Option<crate::model::Arch>,
}

/// How often training's news repaints the window (about 30 frames a second): curves and
/// the plane move smoothly, and the UI thread leaves most of a core to training. Input still
/// repaints at once.
pub const TRAINING_REPAINT: Duration = Duration::from_millis(33);

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
            // Only a window with persistence remembers (tests run without it).
            cc.storage
                .and_then(|storage| {
                    state::settings_file()
                        .and_then(|p| state::read_settings(&p))
                        .or_else(|| eframe::get_value(storage, eframe::APP_KEY))
                })
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
        if let Some(arch) = options.arch {
            settings.config.arch = arch;
        }
        let mut app = Self {
            worker_backend: settings.backend.clone(),
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
            .min_size(180.0)
            .max_size(max_tabs)
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    for tab in Tab::ALL {
                        ui.selectable_value(&mut self.state.settings.tab, tab, tab.title());
                    }
                });
                ui.separator();
                // The tab's content gets the rest of the panel and the panel keeps that
                // height whatever the content uses; otherwise the panel shrinks to a short
                // tab and the next one opens squeezed.
                let rest = ui.available_rect_before_wrap();
                ui.scope_builder(egui::UiBuilder::new().max_rect(rest), |ui| {
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
                ui.advance_cursor_after_rect(rest);
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
        if let Some(path) = state::settings_file()
            && let Err(e) = state::write_settings(&path, &self.state.settings)
        {
            log::warn!("{}: cannot remember the settings: {e:#}", path.display());
        }
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.shutdown();
    }
}
