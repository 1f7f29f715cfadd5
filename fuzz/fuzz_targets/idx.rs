//! The IDX reader on raw bytes and, when they start like gzip, through the decompressor.
#![no_main]

use std::path::Path;

use latent_atlas::data::idx::{IMAGES_MAGIC, LABELS_MAGIC, read_idx};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz-idx");
    for magic in [IMAGES_MAGIC, LABELS_MAGIC] {
        if data.starts_with(&[0x1f, 0x8b]) {
            let _ = read_idx(flate2::read::GzDecoder::new(data), path, magic, "images");
        } else {
            let _ = read_idx(data, path, magic, "images");
        }
    }
});
