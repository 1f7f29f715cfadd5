//! A weights file loaded into a small VAE.
#![no_main]

use burn::tensor::Device;
use latent_atlas::model::{Model, VaeConfig};
use latent_atlas::train::checkpoint::{load_record, parse_record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = parse_record(data.to_vec()) {
        let model = Model::Vae(VaeConfig::new(4).with_hidden(vec![3]).init(&Device::flex()));
        let _ = load_record(model, record);
    }
});
