//! A run folder's `config.json`: parsed, checked, and its memory estimated.
#![no_main]

use std::path::Path;

use latent_atlas::train::checkpoint::RunInfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = serde_json::from_slice::<RunInfo>(data)
        && info.check(Path::new("config.json")).is_ok()
    {
        let _ = info.config.memory_estimate(info.shape());
    }
});
