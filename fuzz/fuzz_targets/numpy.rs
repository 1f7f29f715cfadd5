//! `.npy` arrays and `.npz` archives as datasets are read from them.
#![no_main]

use std::path::Path;

use latent_atlas::data::numpy::read_npz;
use latent_atlas::codec::npy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = npy::read(data) {
        let _ = (0..a.len().min(64)).map(|i| a.get(i)).sum::<f64>();
    }
    let _ = read_npz(Path::new("fuzz.npz"), data);
});
