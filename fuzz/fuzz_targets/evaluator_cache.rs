//! The evaluator's cache file.
#![no_main]

use latent_atlas::evaluator::parse_cache;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = parse_cache(data)
        && let Some(first) = c.layers.first()
        && first.inputs <= 4096
    {
        let _ = c.run(&vec![0.5; first.inputs]);
    }
});
