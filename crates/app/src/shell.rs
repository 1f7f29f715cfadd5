//! What the window asks of the platform it runs on beyond egui: file pickers, and the reading
//! of dropped files. The desktop launcher and the page each give their own [`Shell`] (rfd's
//! dialogs on a thread, or the browser's file picker awaited); the app itself never asks which
//! platform it is on. Answers come back off the frame loop, through the callback each call is
//! given, like a channel's message.

use std::path::PathBuf;
use std::sync::Arc;

use latent_atlas_core::data::files::{Source, Upload};

/// What a file dialog is opened for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialogPurpose {
    /// A dataset: a folder on the desktops; files uploaded into a page.
    Dataset,
    /// The folder exports go to (the desktops only: a page's exports are downloads).
    ExportDir,
    /// The folder a run is saved into (the desktops only: a page downloads it).
    SaveRun,
    /// A saved run: a folder on the desktops; the `.zip` that Save run downloaded in a page.
    LoadRun,
}

/// What a dialog, or a drop, came back with.
#[derive(Debug)]
pub enum Picked {
    /// A folder or file on disk (the desktops only).
    Path(PathBuf),
    /// Files held in memory (uploaded into a page, or several dropped at once).
    Upload(Arc<Upload>),
    /// Files that could not be read, and why.
    Failed(String),
}

impl Picked {
    /// Where the picked files are, as a value to load from (`None` for a failure).
    pub fn source(self) -> Option<Source> {
        match self {
            Picked::Path(path) => Some(Source::Disk(path)),
            Picked::Upload(upload) => Some(Source::Upload(upload)),
            Picked::Failed(_) => None,
        }
    }
}

/// Where a pick or a read is answered: `None` when the dialog was cancelled.
pub type Answer = Box<dyn FnOnce(Option<Picked>) + Send>;

/// The platform's side of file dialogs and dropped files.
pub trait Shell {
    /// Opens the picker for `purpose` without blocking the caller; the choice comes back
    /// through `answer`.
    fn pick(&self, purpose: DialogPurpose, answer: Answer);

    /// Reads `files`, dropped on the window, without blocking the caller; they come back
    /// through `answer` as one upload ([`upload_of`]).
    fn read_dropped(&self, files: Vec<egui::DroppedFileHandle>, answer: Answer);
}

/// Files read for an upload, held as one [`Upload`], or the first that could not be read.
pub fn upload_of(files: Vec<(String, Result<Vec<u8>, String>)>) -> Picked {
    let mut read = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        match bytes {
            Ok(bytes) => read.push((name, bytes)),
            Err(e) => return Picked::Failed(format!("{name}: cannot read: {e}")),
        }
    }
    Picked::Upload(Arc::new(Upload::new(read)))
}

/// A dropped file's name, as a notice gives it.
pub fn dropped_name(file: &egui::DroppedFileHandle) -> String {
    file.path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.path().display().to_string())
}

/// The shell of a window started without one (the tests'): no dialogs, and dropped files that
/// cannot be read, each said as such.
pub struct NoShell;

impl Shell for NoShell {
    fn pick(&self, purpose: DialogPurpose, answer: Answer) {
        answer(Some(Picked::Failed(format!(
            "no file dialog in this window (asked for {purpose:?})"
        ))));
    }

    fn read_dropped(&self, files: Vec<egui::DroppedFileHandle>, answer: Answer) {
        let names: Vec<String> = files.iter().map(dropped_name).collect();
        answer(Some(Picked::Failed(format!(
            "{}: dropped files cannot be read in this window",
            names.join(", ")
        ))));
    }
}
