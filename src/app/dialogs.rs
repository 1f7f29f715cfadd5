//! Native file dialogs, each on its own thread: the frame loop never blocks on one, and the
//! choice comes back through a channel.

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

impl LatentAtlasApp {
    pub(super) fn open_dialog(&mut self, purpose: DialogPurpose) {
        if self.dialog.is_some() {
            return;
        }
        #[cfg(target_arch = "wasm32")]
        {
            // The browser build has no folders to pick; uploads and downloads replace these.
            let _ = purpose;
            self.state
                .errors
                .push("folders cannot be picked in the browser build".into());
        }
        #[cfg(not(target_arch = "wasm32"))]
        self.open_native_dialog(purpose);
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
}
