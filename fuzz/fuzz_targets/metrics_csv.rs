//! `metrics.csv` as Load restores the curves from it.
#![no_main]

use latent_atlas::export::csv::parse_metrics_csv;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_metrics_csv(&String::from_utf8_lossy(data));
});
