//! One image file as the folder loader decodes it, then scaled to the sizes it may be given.
#![no_main]

use latent_atlas::data::folder::{decode_image, to_pixels};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = decode_image(data) {
        let colour = img.color().has_color();
        let _ = to_pixels(img, 16, 12, colour);
    }
});
