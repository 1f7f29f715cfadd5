//! What the user asked for, returned by the panels and carried out by the app shell after
//! drawing. Panels never act directly: they return these values, so tests can drive the UI
//! without a worker thread or a file dialog.

use std::path::PathBuf;

pub use latent_atlas_view::export::folder::View;

/// Something for the app shell to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Start training.
    Start,
    /// Pause training.
    Pause,
    /// Resume training.
    Resume,
    /// Start over with the settings in the controls (a new dataset is loaded if it changed).
    Reset,
    /// Send the hyper-parameters in the controls to the running model.
    ApplyHyper,
    /// Pick a dataset folder with a dialog.
    OpenDatasetDialog,
    /// Choose the export folder with a dialog.
    ChooseExportDir,
    /// Save the run (checkpoint, config, metrics) into a folder chosen with a dialog, or the given one.
    SaveRun(Option<PathBuf>),
    /// Load a saved run chosen with a dialog, or the given one (a folder or a `.zip` of one, on
    /// disk or uploaded).
    LoadRun(Option<latent_atlas_core::data::files::Source>),
    /// Export one view as PNG into the export folder.
    Export(View),
    /// Export every view, the metrics and the latent CSV into the export folder.
    ExportAll,
    /// Export an animated GIF of the latent plane over training.
    ExportGif,
    /// Score the generator with the dataset's evaluator now.
    Score,
    /// Train a second run of another family beside this one (`None` ends the comparison).
    Compare(Option<latent_atlas_core::train::ModelKind>),
}
