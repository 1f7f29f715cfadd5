//! File dialogs, each off the frame loop (the desktops' on a thread of their own, the browser's
//! file picker as a future): the frame loop never blocks on one, and the choice comes back
//! through a channel.

use std::path::PathBuf;
use std::sync::mpsc::TryRecvError;

use super::LatentAtlasApp;
use super::action::Action;

/// What a pending file dialog was opened for.
#[derive(Clone, Copy, Debug)]
pub(super) enum DialogPurpose {
    Dataset,
    ExportDir,
    SaveRun,
    LoadRun,
}

/// What a dialog came back with.
#[derive(Debug)]
pub(super) enum Picked {
    /// A folder or file on disk (the desktops only).
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    Path(PathBuf),
    /// Files uploaded into the page, kept under this dataset value (`upload:` and a name).
    Upload(String),
    /// Files that could not be read, and why.
    Failed(String),
}

/// Files read for an upload, kept as one ([`latent_atlas_core::data::files::keep_upload`]), or the first
/// that could not be read.
fn upload_of(files: Vec<(String, Result<Vec<u8>, String>)>) -> Picked {
    let mut read = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        match bytes {
            Ok(bytes) => read.push((name, bytes)),
            Err(e) => return Picked::Failed(format!("{name}: cannot read: {e}")),
        }
    }
    Picked::Upload(latent_atlas_core::data::files::keep_upload(read))
}

impl LatentAtlasApp {
    pub(super) fn open_dialog(&mut self, purpose: DialogPurpose) {
        if self.dialog.is_some() {
            return;
        }
        #[cfg(target_arch = "wasm32")]
        self.open_web_dialog(purpose);
        #[cfg(not(target_arch = "wasm32"))]
        self.open_native_dialog(purpose);
    }

    /// In a browser a dataset is uploaded (the browser's file picker, several files at once:
    /// a `.npz`, a `.zip`, IDX files or images); exports arrive as downloads instead of going
    /// to a folder.
    #[cfg(target_arch = "wasm32")]
    fn open_web_dialog(&mut self, purpose: DialogPurpose) {
        match purpose {
            DialogPurpose::Dataset => {}
            DialogPurpose::ExportDir => {
                self.state.notices.push(
                    "in the browser every export is a download: there is no folder to choose"
                        .into(),
                );
                return;
            }
            // The checkpoint comes back from the worker as files, and downloads as a zip with
            // every view (`Event::RunFiles`).
            DialogPurpose::SaveRun => {
                self.send(latent_atlas_core::worker::Command::SaveFiles);
                return;
            }
            DialogPurpose::LoadRun => {}
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let ctx = self.ctx.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let dialog = rfd::AsyncFileDialog::new();
            let picked = match purpose {
                DialogPurpose::LoadRun => dialog
                    .set_title("A saved run: the .zip that Save run downloaded")
                    .add_filter("saved run", &["zip"])
                    .pick_file()
                    .await
                    .map(|one| vec![one]),
                _ => dialog
                    .set_title(
                        "Dataset: a .npz, a .zip of images or IDX files, or the files themselves",
                    )
                    .pick_files()
                    .await,
            };
            let mut files = Vec::new();
            for handle in picked.unwrap_or_default() {
                files.push((handle.file_name(), Ok(handle.read().await)));
            }
            // Nothing picked: the dialog was cancelled.
            let _ = tx.send((!files.is_empty()).then(|| upload_of(files)));
            ctx.request_repaint();
        });
        self.dialog = Some((purpose, rx));
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn open_native_dialog(&mut self, purpose: DialogPurpose) {
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
                let _ = tx.send(picked.map(Picked::Path));
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

    /// Files dropped on the window become the dataset, as if picked: one file or folder on
    /// the desktop by its path, several as an upload held in memory; in a browser (whose files
    /// have no path, and are read asynchronously) always as an upload. The files are read off
    /// the frame loop (a thread, or the browser's future), and come back like a dialog's pick.
    pub(super) fn take_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped = ctx.input(|i| i.raw.dropped_files.clone());
        if dropped.is_empty() || self.dialog.is_some() {
            return;
        }
        let file_name = |f: &egui::DroppedFileHandle| {
            f.path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| f.path().display().to_string())
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let ctx = ctx.clone();
        #[cfg(not(target_arch = "wasm32"))]
        {
            if let [one] = dropped.as_slice() {
                return self
                    .use_picked(DialogPurpose::Dataset, Picked::Path(one.path().to_owned()));
            }
            let spawned = std::thread::Builder::new()
                .name("dropped-files".into())
                .spawn(move || {
                    let files = dropped.iter().map(|f| (file_name(f), f.bytes())).collect();
                    let _ = tx.send(Some(upload_of(files)));
                    ctx.request_repaint();
                });
            if let Err(e) = spawned {
                return self
                    .state
                    .errors
                    .push(format!("cannot read the dropped files: {e}"));
            }
        }
        #[cfg(target_arch = "wasm32")]
        wasm_bindgen_futures::spawn_local(async move {
            let mut files = Vec::new();
            for f in &dropped {
                files.push((file_name(f), f.bytes_async().await));
            }
            let _ = tx.send(Some(upload_of(files)));
            ctx.request_repaint();
        });
        self.dialog = Some((DialogPurpose::Dataset, rx));
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

    /// Starts over on the dataset `value` (a path, or an upload's name).
    fn use_dataset(&mut self, value: String) {
        self.views.draft.dataset_path = value.clone();
        self.state.settings.config.dataset = value;
        self.handle(Action::Reset);
    }

    fn use_picked(&mut self, purpose: DialogPurpose, picked: Picked) {
        use latent_atlas_core::train::checkpoint::is_saved_run;
        match (purpose, picked) {
            (_, Picked::Failed(error)) => self.state.errors.push(error),
            // A saved run given as a dataset (dropped, most often) is loaded as the run.
            (DialogPurpose::Dataset, Picked::Path(path)) if is_saved_run(&path) => {
                self.handle(Action::LoadRun(Some(path)))
            }
            (DialogPurpose::Dataset, Picked::Upload(value))
                if is_saved_run(std::path::Path::new(&value)) =>
            {
                self.handle(Action::LoadRun(Some(PathBuf::from(value))))
            }
            (DialogPurpose::Dataset, Picked::Path(path)) => {
                self.use_dataset(path.display().to_string())
            }
            (DialogPurpose::Dataset, Picked::Upload(value)) => self.use_dataset(value),
            (DialogPurpose::ExportDir, Picked::Path(path)) => {
                self.views.draft.export_dir = Some(path.display().to_string());
                self.state.settings.export_dir = path;
            }
            (DialogPurpose::SaveRun, Picked::Path(path)) => {
                self.handle(Action::SaveRun(Some(path)))
            }
            (DialogPurpose::LoadRun, Picked::Path(path)) => {
                self.handle(Action::LoadRun(Some(path)))
            }
            (DialogPurpose::LoadRun, Picked::Upload(value)) => {
                self.handle(Action::LoadRun(Some(PathBuf::from(value))))
            }
            (_, Picked::Upload(_)) => {}
        }
    }
}
