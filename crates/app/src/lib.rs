//! The desktop explorer: an eframe app over the training worker.
//!
//! The shell is split by job: [`state`] is the plain-data state (no egui); `events` folds the
//! workers' events into it each frame, within a time budget; [`panels`] draw it and return
//! [`action::Action`]s, which `commands` carries out after drawing; `dialogs` opens file
//! dialogs through the platform's [`shell::Shell`] and `shortcuts` reads the keyboard;
//! [`exporter`] writes files through the platform's runner. Nothing here blocks the frame loop,
//! and nothing here asks which platform it runs on: the launchers (the desktop's, the page's)
//! hand it what differs.

pub mod action;
mod commands;
mod dialogs;
mod events;
pub mod exporter;
pub mod images;
pub mod panels;
pub mod shell;
pub mod shortcuts;
pub mod state;

use std::sync::Arc;
use std::sync::mpsc::Receiver;
use web_time::Duration;

use images::CachedTexture;
use panels::controls::ControlsDraft;
use panels::plane::PlaneView;
use shell::DialogPurpose;
use state::{AppState, Settings, Tab};

use latent_atlas_core::backend::BackendChoice;
use latent_atlas_core::worker::Worker;
use latent_atlas_view::scene::samples::SampleRequest;

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
    pub arch: Option<latent_atlas_core::model::Arch>,
    /// Log every GPU kernel's time to the console (a page's `?profile`, a diagnostic).
    pub profile_kernels: bool,
}

impl StartOptions {
    /// What a page's address asks for (`?dataset=fashion-mnist&probes=500&fresh`): training
    /// starts at once; `dataset` names the dataset, `probes` the posteriors drawn (100 to
    /// 10,000), `backend` the device (`cpu`, `gpu` or `auto`), `arch` the networks (`mlp` or
    /// `conv`), `fresh` ignores remembered settings, and `profile` logs each GPU kernel's time. Unknown keys and bad values are ignored.
    pub fn from_query(query: &str) -> Self {
        let mut start = StartOptions {
            autostart: true,
            ..StartOptions::default()
        };
        for pair in query.trim_start_matches('?').split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "dataset" if !value.is_empty() => start.dataset = Some(value.to_owned()),
                "probes" => {
                    start.probe_size = value.parse().ok().filter(|n| (100..=10_000).contains(n))
                }
                "fresh" => start.fresh = true,
                "profile" => start.profile_kernels = true,
                "arch" => {
                    start.arch = latent_atlas_core::model::Arch::ALL
                        .into_iter()
                        .find(|a| format!("{a:?}").eq_ignore_ascii_case(value))
                }
                // The page's devices: its CPU, the browser's GPU, or the GPU when there is one.
                "backend" => {
                    start.backend = value
                        .parse::<BackendChoice>()
                        .ok()
                        .filter(|b| PAGE_BACKENDS.contains(b))
                }
                _ => {}
            }
        }
        start
    }
}

/// The devices a page offers: its CPU, the browser's GPU (WebGPU), or the GPU when there is
/// one and the CPU otherwise.
pub const PAGE_BACKENDS: [BackendChoice; 3] =
    [BackendChoice::Cpu, BackendChoice::Gpu, BackendChoice::Auto];

/// How often training's news repaints the window (about 30 frames a second): curves and
/// the plane move smoothly, and the UI thread leaves most of a core to training. Input still
/// repaints at once.
pub const TRAINING_REPAINT: Duration = Duration::from_millis(33);

/// How long frames take to reach the screen after drawing, smoothed, where training shares
/// their thread; and whether a worker has sent news since the last look.
#[derive(Default)]
struct FrameCost {
    last_end: Option<web_time::Instant>,
    cost: Duration,
    news: Arc<std::sync::atomic::AtomicBool>,
}

impl FrameCost {
    fn note(&mut self, took: Duration) {
        // Capped: one stall (a hidden tab) must not stop the frames for long.
        let took = took.min(Duration::from_millis(500));
        self.cost = (self.cost * 3 + took) / 4;
    }
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
    dialog: Option<(DialogPurpose, Receiver<Option<shell::Picked>>)>,
    /// The platform's file dialogs and dropped files.
    shell: Box<dyn shell::Shell>,
    ctx: egui::Context,
    /// The export running on its own thread, if any.
    export: Option<exporter::ExportTask>,
    /// What frames cost to draw, for pacing them where training shares their thread.
    frames: FrameCost,
    /// Families a page script asked for, taken up at the next frame.
    family_requests: Vec<latent_atlas_core::train::ModelKind>,
    /// The dataset (and its upload) trained on before a new one was asked for: put back in
    /// the settings if the new one is refused, so that the next reset does not ask for it
    /// again.
    dataset_before: Option<(
        String,
        Option<std::sync::Arc<latent_atlas_core::data::files::Upload>>,
    )>,
    /// Curves of a run being loaded, restored once its model is ready.
    pending_history: Option<(
        Vec<latent_atlas_core::train::StepMetrics>,
        Vec<latent_atlas_core::train::TestMetrics>,
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
            shell: Box::new(shell::NoShell),
            ctx: cc.egui_ctx.clone(),
            export: None,
            frames: FrameCost::default(),
            family_requests: Vec::new(),
            dataset_before: None,
            pending_history: None,
        };
        app.spawn_worker();
        app
    }

    /// The same app with the platform's file dialogs and dropped files: the desktop
    /// launcher's, or the page's (without one, dialogs say they are not available).
    pub fn with_shell(mut self, shell: Box<dyn shell::Shell>) -> Self {
        self.shell = shell;
        self
    }

    /// Turns the workers that have no thread of their own (in a browser) for about `budget`;
    /// the page calls it from a timer, between frames. Returns whether training goes on, so
    /// the caller knows to come back at once. Asks for a frame when an idle worker had news.
    pub fn train_slice(&mut self, budget: Duration) -> bool {
        if let Some(end) = self.frames.last_end.take() {
            // The first turn after a frame: what reaching the screen cost it after drawing.
            self.frames.note(end.elapsed());
        }
        let mut running = false;
        for worker in [&mut self.worker, &mut self.compare_worker]
            .into_iter()
            .flatten()
        {
            running |= worker.tick(budget);
        }
        // News (a state change, a new snapshot) needs a frame: at once when idle, at the
        // training pace when training.
        let news = self
            .frames
            .news
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        if news {
            self.ctx.request_repaint_after(match running {
                true => self.frame_interval(),
                false => Duration::ZERO,
            });
        }
        running
    }

    /// Starts over with another family at the next frame, by its command-line name or its
    /// label (`vae`, `f-vae`, `f-VAE`, ...), as the family menu and Reset would; an error names
    /// the families when `name` is none of them. A browser page calls it as
    /// `latentAtlasFamily(name)`.
    pub fn request_family(&mut self, name: &str) -> Result<(), String> {
        let families = latent_atlas_core::train::ModelKind::ALL;
        let kind = families
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name) || k.label().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                let names: Vec<&str> = families.iter().map(|k| k.name()).collect();
                format!(
                    "no family is called {name:?}; the families: {}",
                    names.join(", ")
                )
            })?;
        self.family_requests.push(kind);
        self.ctx.request_repaint();
        Ok(())
    }

    /// The main run's progress as JSON ([`state::Status`]). A browser page reads it through
    /// `latentAtlasStatus()`.
    pub fn status_json(&self) -> String {
        serde_json::to_string(&self.state.status()).unwrap_or_else(|_| "{}".to_owned())
    }

    /// How often training's news repaints the window. Without threads, training runs between
    /// frames: frames that are dear to draw (a software renderer) come less often, so that
    /// training keeps most of the time.
    fn frame_interval(&self) -> Duration {
        match latent_atlas_core::platform::HAS_THREADS {
            true => TRAINING_REPAINT,
            false => TRAINING_REPAINT.max(self.frames.cost * 4),
        }
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

/// Where there are no threads (a browser), how long each turn of training between frames may
/// take (a page's timer calls [`LatentAtlasApp::train_slice`] with it).
pub const TRAINING_SLICE: Duration = Duration::from_millis(20);

impl eframe::App for LatentAtlasApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        for family in std::mem::take(&mut self.family_requests) {
            self.state.settings.config.set_model(family);
            self.handle(action::Action::Reset);
        }
        self.poll_worker();
        self.poll_dialog();
        self.take_dropped_files(ctx);
        self.poll_export();
        self.state.fulfil_preview();
        for action in self.shortcuts(ctx) {
            self.handle(action);
        }
        if self.state.is_running() {
            ctx.request_repaint_after(self.frame_interval());
        }
        // A page's export takes its steps a frame at a time.
        if cfg!(target_arch = "wasm32") && self.export.is_some() {
            ctx.request_repaint();
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
        if let Some((probe, k)) = self.state.next_draws_request() {
            self.send(latent_atlas_core::worker::Command::Draws { probe, k });
        }
        shortcuts::shortcuts_ui(ui.ctx(), &mut self.state.shortcuts_open);
        for action in actions {
            self.handle(action);
        }
        self.frames.last_end = Some(web_time::Instant::now());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pages_address_gives_its_start_options() {
        let start = StartOptions::from_query(
            "?dataset=fashion-mnist&probes=800&fresh&x=1&backend=gpu&arch=conv",
        );
        assert!(start.autostart && start.fresh);
        assert_eq!(start.backend, Some(BackendChoice::Gpu));
        assert_eq!(start.arch, Some(latent_atlas_core::model::Arch::Conv));
        // A page offers no remote server and no other CPU backend; unknown ones are ignored.
        for bad in [
            "backend=remote:ws://x:1",
            "backend=ndarray",
            "backend=warp",
            "arch=rnn",
        ] {
            let start = StartOptions::from_query(bad);
            assert_eq!((start.backend, start.arch), (None, None), "{bad}");
        }
        assert_eq!(start.dataset.as_deref(), Some("fashion-mnist"));
        assert_eq!(start.probe_size, Some(800));
        // Bad values and empty ones are ignored.
        let start = StartOptions::from_query("probes=5&dataset=");
        assert_eq!(
            (start.probe_size, start.dataset, start.fresh),
            (None, None, false)
        );
        assert_eq!(StartOptions::from_query("").probe_size, None);
    }
}
