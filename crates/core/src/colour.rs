//! Colours of pixels: the hue wheel (the shapes' colours, the plane's circular factors) and
//! an image's pixel read as RGB (every painter of images).

/// The full-saturation, full-value colour of hue `h` (in turns; any real number), channels
/// in [0, 1]. The plane's colour wheel for circular factors uses it too.
pub fn hue_rgb(h: f32) -> [f32; 3] {
    let h6 = h.rem_euclid(1.0) * 6.0;
    let sector = (h6.floor() as usize).min(5);
    let f = h6 - sector as f32;
    match sector {
        0 => [1.0, f, 0.0],
        1 => [1.0 - f, 1.0, 0.0],
        2 => [0.0, 1.0, f],
        3 => [0.0, 1.0 - f, 1.0],
        4 => [f, 0.0, 1.0],
        _ => [1.0, 0.0, 1.0 - f],
    }
}

/// The colour of pixel `(x, y)` of an image of values in `[0, 1]`: one per pixel (grey) or
/// three (RGB, interleaved), told apart by the slice's length. Missing values read as black.
pub fn rgb_at(img: &[f32], width: usize, height: usize, x: usize, y: usize) -> [u8; 3] {
    let byte =
        |i: usize| (img.get(i).copied().unwrap_or(0.0).clamp(0.0, 1.0) * 255.0).round() as u8;
    let at = y * width + x;
    if img.len() >= 3 * width * height && width * height > 0 {
        [byte(3 * at), byte(3 * at + 1), byte(3 * at + 2)]
    } else {
        let v = byte(at);
        [v, v, v]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_at_reads_grey_and_colour_by_length() {
        let grey = [0.0, 1.0, 0.5, 2.0];
        assert_eq!(rgb_at(&grey, 2, 2, 1, 0), [255, 255, 255]);
        assert_eq!(rgb_at(&grey, 2, 2, 0, 1), [128, 128, 128]);
        assert_eq!(rgb_at(&grey, 2, 2, 1, 1), [255, 255, 255], "clamped");
        let colour: Vec<f32> = (0..12).map(|i| i as f32 / 11.0).collect();
        assert_eq!(rgb_at(&colour, 2, 2, 1, 1), [209, 232, 255]);
        assert_eq!(rgb_at(&[], 2, 2, 1, 1), [0, 0, 0]);
    }

    #[test]
    fn the_hue_wheel_turns_through_the_primaries() {
        let close = |h: f32, rgb: [f32; 3]| {
            let got = hue_rgb(h);
            assert!(
                got.iter().zip(rgb).all(|(a, b)| (a - b).abs() < 1e-5),
                "{h}: {got:?}"
            );
        };
        close(0.0, [1.0, 0.0, 0.0]);
        close(1.0 / 6.0, [1.0, 1.0, 0.0]);
        close(1.0 / 3.0, [0.0, 1.0, 0.0]);
        close(2.0 / 3.0, [0.0, 0.0, 1.0]);
        close(-1.0, [1.0, 0.0, 0.0]);
        close(1.25, hue_rgb(0.25));
    }
}
