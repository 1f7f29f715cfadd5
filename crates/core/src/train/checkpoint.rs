//! Saving and loading a run: `config.json` (what was trained, on what), `model.bpk` (burn's
//! burnpack weights) and `model.safetensors` (the same weights for PyTorch). Each file is written atomically.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use serde::{Deserialize, Serialize};

use super::TrainConfig;
use crate::data::files::{FileSource, Memory, Source};
use crate::fsio::atomic_write;
use crate::model::{ImageShape, Model};

/// File name of the weights inside a run folder (one of two slots: see [`save`]).
pub const MODEL_FILE: &str = "model.bpk";
/// The other slot for the weights.
pub const MODEL_FILE_ALT: &str = "model.alt.bpk";
/// File name of the weights as safetensors (PyTorch's names and layouts) inside a run folder.
pub const SAFETENSORS_FILE: &str = "model.safetensors";
/// File name of the run description inside a run folder.
pub const CONFIG_FILE: &str = "config.json";

/// The layout of `model.bpk` this version writes and reads: 2 since each family holds only
/// the networks it uses (separate encoder and decoder modules). Files without the field are
/// layout 1 (one shared encoder/decoder block in every family).
pub const LAYOUT: u32 = 2;

fn layout_1() -> u32 {
    1
}

/// What `config.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunInfo {
    /// The weights' layout ([`LAYOUT`] when written by this version).
    #[serde(default = "layout_1")]
    pub layout: u32,
    /// The training settings.
    pub config: TrainConfig,
    /// Pixels per image the model was built for.
    pub input_dim: usize,
    /// Image width.
    pub width: usize,
    /// Image height.
    pub height: usize,
    /// Steps completed.
    pub step: u64,
    /// Epochs completed.
    pub epoch: usize,
    /// The backend that trained it.
    pub backend: String,
    /// The weights file this description goes with ([`MODEL_FILE`] when absent).
    #[serde(default)]
    pub weights: Option<String>,
    /// FNV-1a 64 of that file's bytes, checked on loading (absent in older runs).
    #[serde(default)]
    pub weights_fnv64: Option<String>,
    /// What continuing the run exactly needs besides its weights (absent in runs saved
    /// without it, which continue with a fresh optimiser and stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumeState>,
}

/// The training state a run resumes from, besides its weights: Adam's moments and step counts
/// (in the slot's optimiser file, [`optimizer_file`]), the schedule's best weights (in
/// [`best_file`]), and, in `config.json`, the random stream and the schedule's state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResumeState {
    /// FNV-1a 64 of the optimiser file.
    pub optimizer_fnv64: String,
    /// FNV-1a 64 of the best weights' file, when the validation schedule has a best.
    #[serde(default)]
    pub best_fnv64: Option<String>,
    /// The host's random stream now (noise, binarisation).
    pub rng: crate::rng::Rng,
    /// The stream as it was when the current epoch began: it deals the epoch's order again.
    pub epoch_rng: crate::rng::Rng,
    /// Batches of the current epoch done.
    pub batch_index: usize,
    /// The validation schedule's state: best loss and epoch, patience left, decays.
    pub plateau: super::schedule::Plateau,
    /// The newest validation loss (finite only).
    #[serde(default)]
    pub validation_loss: Option<f32>,
}

/// A trainer's state as files and fields to save beside its weights ([`save_with`]).
pub struct TrainingState {
    /// The optimiser's state (burn's burnpack bytes).
    pub optimizer: Vec<u8>,
    /// The validation schedule's best weights so far (burnpack bytes), if any.
    pub best: Option<Vec<u8>>,
    /// The rest, for `config.json` (its fingerprints are filled in when written).
    pub state: ResumeState,
}

/// The bytes of a run's training state: the optimiser's, and the schedule's best weights' if
/// it has them.
pub type StateBytes = (Vec<u8>, Option<Vec<u8>>);

/// The optimiser's file that goes with the weights in `slot`.
pub fn optimizer_file(slot: &str) -> &'static str {
    match slot {
        MODEL_FILE_ALT => "optimizer.alt.bpk",
        _ => "optimizer.bpk",
    }
}

/// The schedule's best weights' file that goes with the weights in `slot`.
pub fn best_file(slot: &str) -> &'static str {
    match slot {
        MODEL_FILE_ALT => "best.alt.bpk",
        _ => "best.bpk",
    }
}

/// FNV-1a, 64 bits, as 16 hex digits: a cheap fingerprint that tells one save's weights from
/// another's.
pub fn fnv64(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// The largest image side a run may describe.
pub const MAX_RUN_SIDE: usize = 4096;

impl RunInfo {
    /// Checks everything read from `path` before anything is allocated for it: the settings,
    /// the image shape, the weights' layout, and the memory the model would need against what
    /// the machine has. The error names the file and the field.
    pub fn check(&self, path: &Path) -> anyhow::Result<()> {
        let bad = |field: &str, why: String| anyhow::anyhow!("{}: {field}: {why}", path.display());
        if let Some(w) = &self.weights
            && w != MODEL_FILE
            && w != MODEL_FILE_ALT
        {
            return Err(bad(
                "weights",
                format!("must be {MODEL_FILE} or {MODEL_FILE_ALT}, not {w:?}"),
            ));
        }
        self.config.validate().map_err(|e| bad("config", e))?;
        for (field, side) in [("width", self.width), ("height", self.height)] {
            if side == 0 || side > MAX_RUN_SIDE {
                return Err(bad(
                    field,
                    format!("must be 1 to {MAX_RUN_SIDE} pixels, not {side}"),
                ));
            }
        }
        let pixels = self.width * self.height;
        if self.input_dim != pixels && self.input_dim != 3 * pixels {
            return Err(bad(
                "input_dim",
                format!(
                    "{} is neither {pixels} (grey) nor {} (colour) for {}x{} images",
                    self.input_dim,
                    3 * pixels,
                    self.width,
                    self.height
                ),
            ));
        }
        let need = self.config.memory_estimate(self.shape());
        if let Some(have) = crate::platform::available_memory()
            && need > have
        {
            let gib = |b: u128| b as f64 / (1u128 << 30) as f64;
            return Err(bad(
                "hidden",
                format!(
                    "a model of these sizes ({:?}, latent {}) needs about {:.1} GiB, more than the {:.1} GiB this machine has available",
                    self.config.hidden,
                    self.config.latent_dim,
                    gib(need),
                    gib(have)
                ),
            ));
        }
        Ok(())
    }

    /// The shape of the images the model was built for.
    pub fn shape(&self) -> ImageShape {
        let pixels = (self.width * self.height).max(1);
        ImageShape::new(self.input_dim / pixels, self.height, self.width)
    }
}

/// A run's files in the order a save writes them: the weights into `slot`, the safetensors
/// copy, then `config.json` naming the slot and the weights' fingerprint.
pub fn run_files(
    model: &Model,
    info: &RunInfo,
    slot: &str,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    run_files_with(model, info, slot, None)
}

/// [`run_files`], with the training state to resume from (the optimiser and best weights in
/// the slot's files, before `config.json`, which records the rest).
pub fn run_files_with(
    model: &Model,
    info: &RunInfo,
    slot: &str,
    training: Option<&TrainingState>,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    // `valid()` first: it folds pending running-state updates (the BN-VAE's batch statistics)
    // into their values, which `into_record` alone would save one update late.
    let bytes = model
        .valid()
        .into_record()
        .into_bytes()
        .map_err(|e| anyhow::anyhow!("{slot}: cannot serialise the model: {e:?}"))?;
    let mut state_files = Vec::new();
    let resume = training.map(|t| {
        state_files.push((optimizer_file(slot).to_owned(), t.optimizer.clone()));
        if let Some(best) = &t.best {
            state_files.push((best_file(slot).to_owned(), best.clone()));
        }
        ResumeState {
            optimizer_fnv64: fnv64(&t.optimizer),
            best_fnv64: t.best.as_deref().map(fnv64),
            ..t.state.clone()
        }
    });
    let info = RunInfo {
        weights: Some(slot.to_owned()),
        weights_fnv64: Some(fnv64(&bytes)),
        resume,
        ..info.clone()
    };
    let meta = std::collections::BTreeMap::from([
        ("format".to_owned(), "pt".to_owned()),
        ("config".to_owned(), serde_json::to_string(&info)?),
    ]);
    let tensors = super::safetensors::tensors(model);
    let mut files = vec![(slot.to_owned(), bytes.to_vec())];
    files.extend(state_files);
    files.push((
        SAFETENSORS_FILE.to_owned(),
        super::safetensors::encode(&tensors, &meta),
    ));
    files.push((
        CONFIG_FILE.to_owned(),
        serde_json::to_string_pretty(&info)?.into_bytes(),
    ));
    Ok(files)
}

/// Writes the weights and the run description into `dir`, so that a crash at any moment leaves
/// a folder that loads as the last complete save: the weights go to whichever of the two slots
/// ([`MODEL_FILE`], [`MODEL_FILE_ALT`]) the current `config.json` does not name, and only then
/// is `config.json` replaced (atomically), naming the new slot and its fingerprint. Every file
/// is written to a temporary name and renamed.
pub fn save(dir: &Path, model: &Model, info: &RunInfo) -> anyhow::Result<()> {
    save_with(dir, model, info, None)
}

/// [`save`], with the training state to resume from ([`run_files_with`]).
pub fn save_with(
    dir: &Path,
    model: &Model,
    info: &RunInfo,
    training: Option<&TrainingState>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    // The slot the folder's current description names is left alone.
    let current = read_info(dir)
        .ok()
        .map(|i| i.weights.unwrap_or_else(|| MODEL_FILE.to_owned()));
    let slot = match current.as_deref() {
        Some(MODEL_FILE) => MODEL_FILE_ALT,
        _ => MODEL_FILE,
    };
    for (name, bytes) in run_files_with(model, info, slot, training)? {
        atomic_write(&dir.join(name), &bytes)?;
    }
    Ok(())
}

/// A saved run's files wherever they are: a folder on disk, a `.zip` of one (on disk or
/// uploaded into the page), or an upload of the folder's files.
#[derive(Debug)]
pub enum RunFiles {
    /// A folder on disk.
    Folder(PathBuf),
    /// Files in memory, and the folder among them that holds `config.json`.
    Memory(Memory, PathBuf),
}

impl RunFiles {
    /// Finds the run in `source`: a folder or a `.zip` file on disk, or an upload of either.
    pub fn of(source: &Source) -> anyhow::Result<Self> {
        match source {
            Source::Disk(path) => Self::open(path),
            Source::Upload(upload) => Self::within(upload.files.clone(), &upload.path),
        }
    }

    /// Finds the run at `path` on disk: a folder, or a `.zip` file.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => {
                let bytes =
                    std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                Self::unzip(path, &bytes)
            }
            _ => Ok(RunFiles::Folder(path.to_owned())),
        }
    }

    /// The run at `path` among in-memory files: a `.zip` among them is opened; a folder (or
    /// the root) holding `config.json`, directly or in its one top folder, is the run.
    fn within(files: Memory, path: &Path) -> anyhow::Result<Self> {
        if let Ok(crate::data::files::Entry::File(_)) = files.entry(path) {
            let bytes = files
                .read(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            return Self::unzip(path, &bytes);
        }
        let dir = match files.entry(&path.join(CONFIG_FILE)) {
            Ok(_) => path.to_owned(),
            Err(_) => files.lone_folder(),
        };
        Ok(RunFiles::Memory(files, dir))
    }

    /// A zip's entries, the run folder among them.
    fn unzip(path: &Path, bytes: &[u8]) -> anyhow::Result<Self> {
        if !path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
        {
            anyhow::bail!(
                "{}: not a run folder or a .zip of one (a saved run holds {CONFIG_FILE} and its weights)",
                path.display()
            );
        }
        let entries = crate::archive::read_entries(bytes, |_| true)
            .map_err(|m| anyhow::anyhow!("{}: not a readable zip archive: {m}", path.display()))?;
        let files = Memory::new(path, entries);
        let root = files.root().to_owned();
        let dir = match files.entry(&root.join(CONFIG_FILE)) {
            Ok(_) => root,
            Err(_) => files.lone_folder(),
        };
        Ok(RunFiles::Memory(files, dir))
    }

    /// Where the run is, as messages name it.
    pub fn name(&self) -> String {
        match self {
            RunFiles::Folder(dir) | RunFiles::Memory(_, dir) => dir.display().to_string(),
        }
    }

    /// Where the file `name` of the run is, as messages name it.
    pub fn path(&self, name: &str) -> PathBuf {
        match self {
            RunFiles::Folder(dir) | RunFiles::Memory(_, dir) => dir.join(name),
        }
    }

    /// The bytes of the run's file `name`.
    pub fn read(&self, name: &str) -> std::io::Result<Vec<u8>> {
        match self {
            RunFiles::Folder(dir) => std::fs::read(dir.join(name)),
            RunFiles::Memory(files, dir) => files.read(&dir.join(name)),
        }
    }

    /// Its `config.json`.
    pub fn info(&self) -> anyhow::Result<RunInfo> {
        let path = self.path(CONFIG_FILE);
        let bytes = self
            .read(CONFIG_FILE)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let info: RunInfo = serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: not a run description: {e}", path.display()))?;
        info.check(&path)?;
        Ok(info)
    }

    /// The optimiser's bytes and the schedule's best weights' bytes that `info`'s resume state
    /// names, each checked against its fingerprint (`None` for a run saved without them).
    pub fn training_bytes(&self, info: &RunInfo) -> anyhow::Result<Option<StateBytes>> {
        let Some(resume) = &info.resume else {
            return Ok(None);
        };
        let slot = info.weights.as_deref().unwrap_or(MODEL_FILE);
        let read = |name: &str, expected: &str| -> anyhow::Result<Vec<u8>> {
            let path = self.path(name);
            let bytes = self
                .read(name)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            if fnv64(&bytes) != expected {
                anyhow::bail!(
                    "{}: not the training state {CONFIG_FILE} was saved with (its fingerprint differs: the file was changed or damaged)",
                    path.display()
                );
            }
            Ok(bytes)
        };
        let optimizer = read(optimizer_file(slot), &resume.optimizer_fnv64)?;
        let best = match &resume.best_fnv64 {
            Some(expected) => Some(read(best_file(slot), expected)?),
            None => None,
        };
        Ok(Some((optimizer, best)))
    }

    /// Loads its weights into a model of the family and shape `info` describes (`classes`
    /// sizes the CVAE's class means).
    pub fn load_model(
        &self,
        info: &RunInfo,
        classes: usize,
        device: &Device,
    ) -> anyhow::Result<Model> {
        let name = info.weights.as_deref().unwrap_or(MODEL_FILE);
        let path = self.path(name);
        if info.layout != LAYOUT {
            anyhow::bail!(
                "{}: saved with weight layout {} but this version reads layout {LAYOUT} (the networks were reorganised); train the run again",
                path.display(),
                info.layout
            );
        }
        let bytes = self
            .read(name)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if let Some(expected) = &info.weights_fnv64
            && *expected != fnv64(&bytes)
        {
            anyhow::bail!(
                "{}: not the weights {CONFIG_FILE} was saved with (its fingerprint differs: the file was changed or damaged)",
                path.display()
            );
        }
        let record = parse_record(bytes)
            .map_err(|e| anyhow::anyhow!("{}: not a model file: {e}", path.display()))?;
        // The fresh model's random weights are replaced by the record's, but drawing them
        // still takes from the device's shared random stream.
        let model = {
            let _rng = crate::backend::device_rng_lock(device);
            let model = info.config.build_model(info.shape(), classes, device);
            crate::backend::initialise_now(&model);
            model
        };
        load_record(model, record).map_err(|e| {
            anyhow::anyhow!(
                "{}: does not fit the model in {CONFIG_FILE}: {e}",
                path.display()
            )
        })
    }
}

/// Whether `source` (a folder, a `.zip`, or an upload of either) holds a saved run rather
/// than a dataset: a `config.json` that reads as a run description, at its top or in its one
/// top folder. Only that file is read (a zip's other entries are not inflated).
pub fn is_saved_run(source: &Source) -> bool {
    let describes_run = |bytes: &[u8]| serde_json::from_slice::<RunInfo>(bytes).is_ok();
    let zip_holds_run = |bytes: &[u8]| {
        crate::archive::read_entries(bytes, |name| {
            name.rsplit('/').next() == Some(CONFIG_FILE) && name.matches('/').count() <= 1
        })
        .is_ok_and(|entries| entries.iter().any(|(_, b)| describes_run(b)))
    };
    let is_zip = |p: &Path| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    let path = match source {
        Source::Disk(path) => path,
        Source::Upload(upload) => {
            let files = &upload.files;
            return match files.entry(&upload.path) {
                Ok(crate::data::files::Entry::File(_)) => {
                    is_zip(&upload.path)
                        && files.read(&upload.path).is_ok_and(|b| zip_holds_run(&b))
                }
                _ => [
                    upload.path.join(CONFIG_FILE),
                    files.lone_folder().join(CONFIG_FILE),
                ]
                .iter()
                .any(|p| files.read(p).is_ok_and(|b| describes_run(&b))),
            };
        }
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            std::fs::read(path.join(CONFIG_FILE)).is_ok_and(|b| describes_run(&b))
        }
        Ok(_) if is_zip(path) => std::fs::read(path).is_ok_and(|b| zip_holds_run(&b)),
        _ => false,
    }
}

/// Reads `config.json` from a run folder (or a `.zip` of one).
pub fn read_info(dir: &Path) -> anyhow::Result<RunInfo> {
    RunFiles::open(dir)?.info()
}

/// Loads the weights of a run folder (or a `.zip` of one) into a model of the
/// family and shape its config describes (`classes` sizes the CVAE's class means).
pub fn load_model(
    dir: &Path,
    info: &RunInfo,
    classes: usize,
    device: &Device,
) -> anyhow::Result<Model> {
    RunFiles::open(dir)?.load_model(info, classes, device)
}

/// Parses a weights file's bytes; a panic inside the parser becomes an error.
pub fn parse_record(bytes: Vec<u8>) -> Result<ModuleRecord, String> {
    std::panic::catch_unwind(|| ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes)))
        .map_err(|_| "the weights could not be parsed".to_owned())?
        .map_err(|e| format!("{e:?}"))
}

/// Loads `record` into `model`; a panic inside burn becomes an error.
pub fn load_record(model: Model, record: ModuleRecord) -> Result<Model, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        model.try_load_record(record)
    }))
    .map_err(|_| "the weights could not be loaded".to_owned())?
    .map_err(|e| format!("{e:?}"))
}
