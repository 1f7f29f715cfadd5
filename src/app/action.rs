//! What the user asked for, returned by the panels and carried out by the app shell after
//! drawing. Panels never act directly: they return these values, so tests can drive the UI
//! without a worker thread or a file dialog.

use std::path::PathBuf;

/// The views that export as images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// The latent plane with every posterior.
    Plane,
    /// Loss curves.
    Curves,
    /// Prior samples at temperature T.
    Samples,
    /// The interpolation strip or grid.
    Interpolation,
    /// The decoded manifold.
    Manifold,
    /// Inputs beside reconstructions.
    Reconstructions,
    /// The aggregate posterior against the prior, with its holes.
    Coverage,
}

impl View {
    /// Every view.
    pub const ALL: [View; 7] = [
        View::Plane,
        View::Curves,
        View::Samples,
        View::Interpolation,
        View::Manifold,
        View::Reconstructions,
        View::Coverage,
    ];

    /// The exported file's name.
    pub fn file_name(self) -> &'static str {
        match self {
            View::Plane => "latent_plane.png",
            View::Curves => "curves.png",
            View::Samples => "samples.png",
            View::Interpolation => "interpolation.png",
            View::Manifold => "manifold.png",
            View::Reconstructions => "reconstructions.png",
            View::Coverage => "prior_coverage.png",
        }
    }

    /// A button label.
    pub fn title(self) -> &'static str {
        match self {
            View::Plane => "Latent plane",
            View::Curves => "Curves",
            View::Samples => "Samples",
            View::Interpolation => "Interpolation",
            View::Manifold => "Manifold",
            View::Reconstructions => "Reconstructions",
            View::Coverage => "Prior coverage",
        }
    }
}

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
    /// Load a saved run from a folder chosen with a dialog, or the given one.
    LoadRun(Option<PathBuf>),
    /// Export one view as PNG into the export folder.
    Export(View),
    /// Export every view, the metrics and the latent CSV into the export folder.
    ExportAll,
    /// Export an animated GIF of the latent plane over training.
    ExportGif,
    /// Score the generator with the dataset's evaluator now.
    Score,
    /// Train a second run of another family beside this one (`None` ends the comparison).
    Compare(Option<crate::train::ModelKind>),
}
