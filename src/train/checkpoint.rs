//! Saving and loading a run: `config.json` (what was trained, on what), `model.bpk` (burn's
//! burnpack weights) and `model.safetensors` (the same weights for PyTorch). Each file is written atomically.

use std::path::Path;

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use serde::{Deserialize, Serialize};

use super::TrainConfig;
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

/// Writes the weights and the run description into `dir`, so that a crash at any moment leaves
/// a folder that loads as the last complete save: the weights go to whichever of the two slots
/// ([`MODEL_FILE`], [`MODEL_FILE_ALT`]) the current `config.json` does not name, and only then
/// is `config.json` replaced (atomically), naming the new slot and its fingerprint. Every file
/// is written to a temporary name and renamed.
pub fn save(dir: &Path, model: &Model, info: &RunInfo) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    // `valid()` first: it folds pending running-state updates (the BN-VAE's batch statistics)
    // into their values, which `into_record` alone would save one update late.
    let bytes = model.valid().into_record().into_bytes().map_err(|e| {
        anyhow::anyhow!(
            "{}: cannot serialise the model: {e:?}",
            dir.join(MODEL_FILE).display()
        )
    })?;
    // The slot the folder's current description names is left alone.
    let current = read_info(dir)
        .ok()
        .map(|i| i.weights.unwrap_or_else(|| MODEL_FILE.to_owned()));
    let slot = match current.as_deref() {
        Some(MODEL_FILE) => MODEL_FILE_ALT,
        _ => MODEL_FILE,
    };
    atomic_write(&dir.join(slot), &bytes)?;
    let info = RunInfo {
        weights: Some(slot.to_owned()),
        weights_fnv64: Some(fnv64(&bytes)),
        ..info.clone()
    };
    let info = &info;
    let meta = std::collections::BTreeMap::from([
        ("format".to_owned(), "pt".to_owned()),
        ("config".to_owned(), serde_json::to_string(info)?),
    ]);
    let tensors = crate::export::safetensors::tensors(model);
    atomic_write(
        &dir.join(SAFETENSORS_FILE),
        &crate::export::safetensors::encode(&tensors, &meta),
    )?;
    atomic_write(
        &dir.join(CONFIG_FILE),
        serde_json::to_string_pretty(info)?.as_bytes(),
    )?;
    Ok(())
}

/// Reads `config.json` from a run folder.
pub fn read_info(dir: &Path) -> anyhow::Result<RunInfo> {
    let path = dir.join(CONFIG_FILE);
    let text =
        std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let info: RunInfo = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a run description: {e}", path.display()))?;
    info.check(&path)?;
    Ok(info)
}

/// Loads the weights of a run folder into a model of the family and shape its config
/// describes (`classes` sizes the CVAE's class means).
pub fn load_model(
    dir: &Path,
    info: &RunInfo,
    classes: usize,
    device: &Device,
) -> anyhow::Result<Model> {
    let path = dir.join(info.weights.as_deref().unwrap_or(MODEL_FILE));
    if info.layout != LAYOUT {
        anyhow::bail!(
            "{}: saved with weight layout {} but this version reads layout {LAYOUT} (the networks were reorganised); train the run again",
            path.display(),
            info.layout
        );
    }
    let bytes = std::fs::read(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
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
    // The fresh model's random weights are replaced by the record's, but drawing them still
    // takes from the device's shared random stream.
    let model = {
        let _rng = crate::backend::device_rng_lock();
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
