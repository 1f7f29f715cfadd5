//! Saving and loading a run: `config.json` (what was trained, on what) and `model.bpk`
//! (burn's burnpack weights). Each file is written atomically.

use std::path::Path;

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use serde::{Deserialize, Serialize};

use super::TrainConfig;
use crate::fsio::atomic_write;
use crate::model::{ImageShape, Model};

/// File name of the weights inside a run folder.
pub const MODEL_FILE: &str = "model.bpk";
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
}

impl RunInfo {
    /// The shape of the images the model was built for.
    pub fn shape(&self) -> ImageShape {
        let pixels = (self.width * self.height).max(1);
        ImageShape::new(self.input_dim / pixels, self.height, self.width)
    }
}

/// Writes the weights and the run description into `dir`.
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
    atomic_write(&dir.join(MODEL_FILE), &bytes)?;
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
    serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a run description: {e}", path.display()))
}

/// Loads the weights of a run folder into a model of the family and shape its config
/// describes (`classes` sizes the CVAE's class means).
pub fn load_model(
    dir: &Path,
    info: &RunInfo,
    classes: usize,
    device: &Device,
) -> anyhow::Result<Model> {
    let path = dir.join(MODEL_FILE);
    if info.layout != LAYOUT {
        anyhow::bail!(
            "{}: saved with weight layout {} but this version reads layout {LAYOUT} (the networks were reorganised); train the run again",
            path.display(),
            info.layout
        );
    }
    let bytes = std::fs::read(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| anyhow::anyhow!("{}: not a model file: {e:?}", path.display()))?;
    // The fresh model's random weights are replaced by the record's, but drawing them still
    // takes from the device's shared random stream.
    let model = {
        let _rng = crate::backend::device_rng_lock();
        let model = info.config.build_model(info.shape(), classes, device);
        crate::backend::initialise_now(&model);
        model
    };
    model.try_load_record(record).map_err(|e| {
        anyhow::anyhow!(
            "{}: does not fit the model in {CONFIG_FILE}: {e:?}",
            path.display()
        )
    })
}
