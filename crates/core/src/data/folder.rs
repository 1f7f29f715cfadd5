//! Image folders: one subfolder per class, or a flat folder of unlabelled images.
//! PNG, JPEG and BMP files are decoded and resized to one common size: in colour (RGB) when
//! any image has colour, otherwise grey.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use image::GenericImageView;

use super::files::{Disk, FileSource};
use super::{DataError, Dataset, HOLD_OUT_FRACTION, ImageSet};

/// Largest side of the common image size chosen by default.
pub const MAX_SIDE: usize = 64;

const EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn sorted_entries(src: &dyn FileSource, dir: &Path) -> Result<Vec<(PathBuf, bool)>, DataError> {
    src.list(dir).map_err(|source| DataError::Io {
        path: dir.to_owned(),
        source,
    })
}

/// Loads an image folder; 10% (seeded) is held out as the test split.
///
/// `max_side` caps the common size: the most common image size, scaled down so that neither
/// side exceeds it. Files that do not decode are skipped and counted in a warning.
pub fn load(dir: &Path, name: String, seed: u64, max_side: usize) -> Result<Dataset, DataError> {
    load_scaled(&Disk, dir, name, seed, max_side, false)
}

/// [`load`] with the most common size scaled, up or down, so that its larger side is `side`.
pub fn load_exact(dir: &Path, name: String, seed: u64, side: usize) -> Result<Dataset, DataError> {
    load_scaled(&Disk, dir, name, seed, side, true)
}

/// An image folder from `src`: scaled to at most `max_side` (with `upscale`, to exactly).
pub(super) fn load_scaled(
    src: &dyn FileSource,
    dir: &Path,
    name: String,
    seed: u64,
    max_side: usize,
    upscale: bool,
) -> Result<Dataset, DataError> {
    let entries = sorted_entries(src, dir)?;
    let class_dirs: Vec<&PathBuf> = entries
        .iter()
        .filter(|(_, is_dir)| *is_dir)
        .map(|(p, _)| p)
        .collect();
    // (path, label) of every candidate file.
    let mut files: Vec<(PathBuf, u8)> = Vec::new();
    let mut class_names = Vec::new();
    if class_dirs.is_empty() {
        files.extend(
            entries
                .iter()
                .filter(|(p, is_dir)| !is_dir && is_image(p))
                .map(|(p, _)| (p.clone(), 0)),
        );
        class_names.push("unlabelled".to_owned());
    } else {
        for class_dir in class_dirs.iter().take(256) {
            let label = class_names.len() as u8;
            let images = sorted_entries(src, class_dir)?;
            let before = files.len();
            files.extend(
                images
                    .into_iter()
                    .filter(|(p, is_dir)| !is_dir && is_image(p))
                    .map(|(p, _)| (p, label)),
            );
            if files.len() > before {
                class_names.push(
                    class_dir
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut decoded = Vec::with_capacity(files.len());
    let mut skipped = Vec::new();
    for (path, label) in &files {
        let read = src.read(path).map_err(|e| e.to_string());
        match read.and_then(|bytes| decode_image(&bytes)) {
            Ok(img) => decoded.push((img, *label)),
            Err(e) => skipped.push(format!("{}: {e}", path.display())),
        }
    }
    if decoded.is_empty() {
        let reason = if files.is_empty() {
            "no PNG, JPEG or BMP images found (expected one subfolder per class, or images directly inside)".to_owned()
        } else {
            format!(
                "none of the {} image files could be decoded (first: {})",
                files.len(),
                skipped[0]
            )
        };
        return Err(DataError::NoData {
            path: dir.to_owned(),
            reason,
        });
    }
    if decoded.len() < 2 {
        return Err(DataError::NoData {
            path: dir.to_owned(),
            reason: "only one usable image; at least two are needed to hold one out for testing"
                .into(),
        });
    }
    let sizes = decoded.iter().map(|(img, _)| img.dimensions());
    let (width, height) = match upscale {
        true => scaled_size(common_size(sizes, usize::MAX), max_side),
        false => common_size(sizes, max_side),
    };
    let colour = decoded.iter().any(|(img, _)| img.color().has_color());
    let channels = if colour { 3 } else { 1 };
    let mut set = ImageSet {
        width,
        height,
        channels,
        pixels: Vec::with_capacity(decoded.len() * width * height * channels),
        labels: Vec::with_capacity(decoded.len()),
        factors: Vec::new(),
    };
    for (img, label) in decoded {
        set.pixels
            .extend_from_slice(&to_pixels(img, width, height, colour));
        set.labels.push(label);
    }
    let mut warnings = Vec::new();
    if !skipped.is_empty() {
        warnings.push(format!(
            "{}: skipped {} of {} image files that could not be decoded (first: {})",
            dir.display(),
            skipped.len(),
            files.len(),
            skipped[0]
        ));
    }
    let (train, test) = set.hold_out(HOLD_OUT_FRACTION, seed);
    Ok(Dataset {
        name,
        source: dir.display().to_string(),
        train,
        test,
        class_names,
        warnings,
        factor_info: Vec::new(),
    })
}

/// The most bytes one image may decode to (the image crate refuses larger ones up front).
const MAX_DECODED: u64 = 256 << 20;

/// Decodes one image file's bytes (PNG, JPEG, BMP or GIF, told by their content), refusing
/// images whose claimed size would take more than 256 MiB before decoding them.
pub fn decode_image(bytes: &[u8]) -> Result<image::DynamicImage, String> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODED);
    limits.max_image_width = Some(1 << 16);
    limits.max_image_height = Some(1 << 16);
    reader.limits(limits);
    reader.decode().map_err(|e| e.to_string())
}

/// An image's values at `width` x `height` (resized when it differs), RGB interleaved with
/// `colour`, else grey.
pub fn to_pixels(img: image::DynamicImage, width: usize, height: usize, colour: bool) -> Vec<u8> {
    let img = if img.dimensions() == (width as u32, height as u32) {
        img
    } else {
        img.resize_exact(
            width as u32,
            height as u32,
            image::imageops::FilterType::Triangle,
        )
    };
    match colour {
        true => img.to_rgb8().into_raw(),
        false => img.to_luma8().into_raw(),
    }
}

/// The most common size among `sizes` (ties: the first seen), scaled so neither side exceeds
/// `max_side`.
pub fn common_size(sizes: impl Iterator<Item = (u32, u32)>, max_side: usize) -> (usize, usize) {
    let mut counts: HashMap<(u32, u32), (usize, usize)> = HashMap::new();
    for (order, size) in sizes.enumerate() {
        counts.entry(size).or_insert((0, order)).0 += 1;
    }
    let (w, h) = counts
        .into_iter()
        .max_by_key(|&(_, (count, order))| (count, std::cmp::Reverse(order)))
        .map_or((1, 1), |(size, _)| size);
    let (w, h) = (w as usize, h as usize);
    match w.max(h) > max_side {
        true => scaled_size((w, h), max_side),
        false => (w, h),
    }
}

/// `(w, h)` scaled so that its larger side is `side` (the other at least 1).
fn scaled_size((w, h): (usize, usize), side: usize) -> (usize, usize) {
    let scale = side as f64 / w.max(h).max(1) as f64;
    (
        ((w as f64 * scale).round() as usize).max(1),
        ((h as f64 * scale).round() as usize).max(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn save(path: &Path, w: u32, h: u32, value: u8) {
        image::GrayImage::from_pixel(w, h, image::Luma([value]))
            .save(path)
            .unwrap();
    }

    #[test]
    fn class_folders_become_labels_and_sizes_are_unified() {
        let dir = tempfile::tempdir().unwrap();
        for (class, value) in [("cats", 10u8), ("dogs", 200)] {
            let sub = dir.path().join(class);
            std::fs::create_dir(&sub).unwrap();
            for i in 0..6 {
                save(&sub.join(format!("{i}.png")), 8, 8, value);
            }
        }
        save(&dir.path().join("dogs/odd.png"), 16, 12, 200);
        std::fs::write(dir.path().join("dogs/broken.png"), b"not a png").unwrap();
        let ds = load(dir.path(), "pets".into(), 0, MAX_SIDE).unwrap();
        assert_eq!(ds.class_names, vec!["cats", "dogs"]);
        assert_eq!((ds.train.width, ds.train.height), (8, 8));
        assert_eq!(ds.train.len() + ds.test.len(), 13);
        assert_eq!(ds.warnings.len(), 1);
        assert!(
            ds.warnings[0].contains("skipped 1 of 14"),
            "{}",
            ds.warnings[0]
        );
        // Labels follow folders: every "dogs" image is bright.
        let all = [&ds.train, &ds.test];
        for set in all {
            for i in 0..set.len() {
                assert_eq!(set.image(i)[0] > 100, set.labels[i] == 1);
            }
        }
    }

    #[test]
    fn colour_images_of_mixed_sizes_and_formats_stay_in_colour() {
        let dir = tempfile::tempdir().unwrap();
        for (class, rgb) in [("red", [220u8, 20, 20]), ("blue", [20, 20, 220])] {
            let sub = dir.path().join(class);
            std::fs::create_dir(&sub).unwrap();
            for i in 0..4 {
                let img = image::RgbImage::from_pixel(12, 10, image::Rgb(rgb));
                img.save(sub.join(format!("{i}.png"))).unwrap();
            }
            // A JPEG of another size, resized to the common one.
            image::RgbImage::from_pixel(24, 20, image::Rgb(rgb))
                .save(sub.join("big.jpg"))
                .unwrap();
        }
        // A grey image among colour ones is read as colour (grey RGB).
        save(&dir.path().join("red/grey.png"), 12, 10, 128);
        let ds = load(dir.path(), "colours".into(), 0, MAX_SIDE).unwrap();
        assert_eq!(ds.class_names, vec!["blue", "red"]);
        assert_eq!(
            (ds.train.width, ds.train.height, ds.train.channels),
            (12, 10, 3)
        );
        assert_eq!(ds.train.dim(), 12 * 10 * 3);
        assert_eq!(ds.train.len() + ds.test.len(), 11);
        for set in [&ds.train, &ds.test] {
            for i in 0..set.len() {
                let px = &set.image(i)[..3];
                let grey = px[0] == px[1] && px[1] == px[2];
                // Blue images are blue, red ones red or the one grey; JPEG moves colours a little.
                match set.labels[i] {
                    0 => assert!(px[2] > 180 && px[0] < 60, "{px:?}"),
                    _ => assert!(grey || (px[0] > 180 && px[2] < 60), "{px:?}"),
                }
            }
        }
    }

    #[test]
    fn a_chosen_size_scales_images_up_or_down() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..3 {
            save(&dir.path().join(format!("{i}.png")), 16, 12, 60);
        }
        let up = load_exact(dir.path(), "up".into(), 0, 32).unwrap();
        assert_eq!((up.train.width, up.train.height), (32, 24));
        let down = load_exact(dir.path(), "down".into(), 0, 8).unwrap();
        assert_eq!((down.train.width, down.train.height), (8, 6));
        assert_eq!(down.train.dim(), 48);
        // IDX files and built-in data have a fixed size.
        let refused = crate::data::DatasetSpec::parse("mnist").load_sized(0, 32);
        assert!(refused.is_err_and(|e| e.to_string().contains("fixed image size")));
    }

    #[test]
    fn grey_images_stay_one_channel() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..3 {
            save(&dir.path().join(format!("{i}.png")), 8, 8, 60);
        }
        let ds = load(dir.path(), "grey".into(), 0, MAX_SIDE).unwrap();
        assert_eq!((ds.train.channels, ds.train.dim()), (1, 64));
    }

    #[test]
    fn folder_without_images_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
        let err = load(dir.path(), "empty".into(), 0, MAX_SIDE).unwrap_err();
        assert!(matches!(err, DataError::NoData { .. }));
        assert!(err.to_string().contains(&dir.path().display().to_string()));
        assert!(err.to_string().contains("no PNG, JPEG or BMP images"));
    }

    #[test]
    fn common_size_is_capped() {
        assert_eq!(
            common_size([(100, 50), (100, 50), (8, 8)].into_iter(), 64),
            (64, 32)
        );
        assert_eq!(common_size([(28, 28)].into_iter(), 64), (28, 28));
    }
}
