//! Datasets from NumPy files, as pythae and Keras users keep them: a `.npz` archive
//! (`np.savez` or `np.savez_compressed`) with an images array and optionally labels and a test
//! split, or a single `.npy` images array.
//!
//! Arrays are found by name: images `x_train`, `x`, `images`, `data` or `arr_0`; labels
//! `y_train`, `y`, `labels` or `arr_1`; a test split `x_test` with `y_test`. Images are
//! `[n, h, w]`, `[n, h, w, c]` or `[n, c, h, w]` with 1 or 3 channels (4: alpha dropped), as
//! bytes or as floats in [0, 1] (floats above 1 are read as 0-255). Without a test split 10%
//! is held out.

use std::io::Read;
use std::path::Path;

use super::{DataError, Dataset, HOLD_OUT_FRACTION, ImageSet};
use crate::export::npy::{self, Array};

/// The most bytes one array of an archive may inflate to.
const MAX_ARRAY_BYTES: u64 = 4 << 30;

fn bad(path: &Path, reason: String) -> DataError {
    DataError::NoData {
        path: path.to_owned(),
        reason,
    }
}

/// The arrays of a `.npz` archive, by name without `.npy`.
pub fn read_npz(path: &Path, bytes: &[u8]) -> Result<Vec<(String, Array)>, DataError> {
    let err = |m: &str| bad(path, format!("not a readable .npz archive: {m}"));
    let u16_at = |b: &[u8], i: usize| -> Option<u64> {
        b.get(i..i + 2)
            .map(|s| u64::from(u16::from_le_bytes([s[0], s[1]])))
    };
    let u32_at = |b: &[u8], i: usize| -> Option<u64> {
        b.get(i..i + 4)
            .map(|s| u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]])))
    };
    let u64_at = |b: &[u8], i: usize| -> Option<u64> {
        b.get(i..i + 8)
            .map(|s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
    };
    // The end-of-central-directory record: within the last 64 KiB + 22 bytes.
    let from = bytes.len().saturating_sub(65_557);
    let eocd = (from..bytes.len().saturating_sub(21))
        .rev()
        .find(|&i| bytes[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
        .ok_or_else(|| err("no end of central directory (not a zip file)"))?;
    let mut entries = u16_at(bytes, eocd + 10).ok_or_else(|| err("truncated"))?;
    let mut cd = u32_at(bytes, eocd + 16).ok_or_else(|| err("truncated"))?;
    // Zip64: the locator just before the record points at the zip64 record.
    if (entries == 0xffff || cd == 0xffff_ffff)
        && eocd >= 20
        && bytes[eocd - 20..eocd - 16] == [0x50, 0x4b, 0x06, 0x07]
    {
        let at = u64_at(bytes, eocd - 12).ok_or_else(|| err("truncated"))? as usize;
        entries = u64_at(bytes, at + 32).ok_or_else(|| err("truncated zip64 record"))?;
        cd = u64_at(bytes, at + 48).ok_or_else(|| err("truncated zip64 record"))?;
    }
    let mut arrays = Vec::new();
    let mut at = cd as usize;
    for _ in 0..entries.min(10_000) {
        if bytes.get(at..at + 4) != Some(&[0x50, 0x4b, 0x01, 0x02][..]) {
            return Err(err("a damaged central directory"));
        }
        let field16 = |o| u16_at(bytes, at + o).ok_or_else(|| err("truncated"));
        let field32 = |o| u32_at(bytes, at + o).ok_or_else(|| err("truncated"));
        let method = field16(10)?;
        let mut compressed = field32(20)?;
        let mut size = field32(24)?;
        let (name_len, extra_len, comment_len) = (field16(28)?, field16(30)?, field16(32)?);
        let mut offset = field32(42)?;
        let name_at = at + 46;
        let name = bytes
            .get(name_at..name_at + name_len as usize)
            .ok_or_else(|| err("truncated"))?;
        let name = String::from_utf8_lossy(name).into_owned();
        // Zip64 sizes and offset, in this order, for the fields that overflowed.
        let extra_at = name_at + name_len as usize;
        let extra = bytes
            .get(extra_at..extra_at + extra_len as usize)
            .ok_or_else(|| err("truncated"))?;
        let mut e = 0;
        while e + 4 <= extra.len() {
            let id = u16_at(extra, e).unwrap_or(0);
            let len = u16_at(extra, e + 2).unwrap_or(0) as usize;
            if id == 1 {
                let mut f = e + 4;
                for value in [&mut size, &mut compressed, &mut offset] {
                    if *value == 0xffff_ffff {
                        *value = u64_at(extra, f).ok_or_else(|| err("truncated zip64 field"))?;
                        f += 8;
                    }
                }
            }
            e += 4 + len;
        }
        at = extra_at + extra_len as usize + comment_len as usize;
        let Some(stem) = name.strip_suffix(".npy") else {
            continue;
        };
        if size > MAX_ARRAY_BYTES {
            return Err(bad(
                path,
                format!("array {stem} would inflate to {size} bytes, more than 4 GiB"),
            ));
        }
        let local = offset as usize;
        if bytes.get(local..local + 4) != Some(&[0x50, 0x4b, 0x03, 0x04][..]) {
            return Err(err(&format!("array {stem}: a damaged local header")));
        }
        let skip = u16_at(bytes, local + 26).ok_or_else(|| err("truncated"))?
            + u16_at(bytes, local + 28).ok_or_else(|| err("truncated"))?;
        let start = local + 30 + skip as usize;
        let data = bytes
            .get(start..start.saturating_add(compressed as usize))
            .ok_or_else(|| err(&format!("array {stem} runs past the end of the file")))?;
        let raw = match method {
            0 => data.to_vec(),
            8 => {
                let mut out = Vec::new();
                flate2::read::DeflateDecoder::new(data)
                    .take(size)
                    .read_to_end(&mut out)
                    .map_err(|e| err(&format!("array {stem}: {e}")))?;
                out
            }
            m => return Err(err(&format!("array {stem}: compression method {m}"))),
        };
        let array = npy::read(&raw).map_err(|e| bad(path, format!("array {stem}: {e}")))?;
        arrays.push((stem.to_owned(), array));
    }
    Ok(arrays)
}

/// Images of an array as bytes: its shape read as `[n, h, w]`, `[n, h, w, c]` or
/// `[n, c, h, w]`.
fn images(path: &Path, name: &str, a: &Array) -> Result<ImageSet, DataError> {
    let (n, h, w, c, channels_last) = match a.shape[..] {
        [n, h, w] => (n, h, w, 1, true),
        [n, h, w, c] if matches!(c, 1 | 3 | 4) => (n, h, w, c, true),
        [n, c, h, w] if matches!(c, 1 | 3 | 4) => (n, h, w, c, false),
        _ => {
            return Err(bad(
                path,
                format!(
                    "array {name} has shape {:?}; images are [n, h, w], [n, h, w, c] or [n, c, h, w] with 1, 3 or 4 channels",
                    a.shape
                ),
            ));
        }
    };
    if n == 0 || h == 0 || w == 0 || h > 1024 || w > 1024 {
        return Err(bad(
            path,
            format!(
                "array {name} holds {n} images of {w}x{h}: need at least one, at most 1024 pixels a side"
            ),
        ));
    }
    let floats = matches!(a.dtype, npy::Dtype::F32 | npy::Dtype::F64);
    let scale = if floats && (0..a.len()).any(|i| a.get(i) > 1.0 + 1e-6) {
        1.0
    } else if floats {
        255.0
    } else {
        1.0
    };
    let out_c = if c == 1 { 1 } else { 3 };
    let mut pixels = Vec::with_capacity(n * h * w * out_c);
    for i in 0..n {
        for y in 0..h {
            for x in 0..w {
                for ch in 0..out_c {
                    let at = match channels_last {
                        true => ((i * h + y) * w + x) * c + ch,
                        false => ((i * c + ch) * h + y) * w + x,
                    };
                    let v = a.get(at) * scale;
                    pixels.push(if v.is_finite() {
                        v.round().clamp(0.0, 255.0) as u8
                    } else {
                        0
                    });
                }
            }
        }
    }
    Ok(ImageSet {
        width: w,
        height: h,
        channels: out_c,
        pixels,
        labels: vec![0; n],
        factors: Vec::new(),
    })
}

fn labels(path: &Path, name: &str, a: &Array, n: usize) -> Result<Vec<u8>, DataError> {
    if a.len() != n || a.shape.len() > 2 {
        return Err(bad(
            path,
            format!(
                "labels {name} have shape {:?} but there are {n} images",
                a.shape
            ),
        ));
    }
    (0..n)
        .map(|i| {
            let v = a.get(i);
            if v.fract() == 0.0 && (0.0..=255.0).contains(&v) {
                Ok(v as u8)
            } else {
                Err(bad(
                    path,
                    format!("label {i} of {name} is {v}; labels are whole numbers 0 to 255"),
                ))
            }
        })
        .collect()
}

/// Loads a `.npz` or `.npy` file as a dataset.
pub fn load(path: &Path, name: String, seed: u64) -> Result<Dataset, DataError> {
    let meta = std::fs::metadata(path).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })?;
    if meta.len() > 8 << 30 {
        return Err(bad(
            path,
            format!("{} bytes is more than 8 GiB", meta.len()),
        ));
    }
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })?;
    let is_npz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npz"));
    let arrays = if is_npz {
        read_npz(path, &bytes)?
    } else {
        let a = npy::read(&bytes).map_err(|e| bad(path, e))?;
        vec![("x".to_owned(), a)]
    };
    let find = |names: &[&str]| {
        names.iter().find_map(|n| {
            arrays
                .iter()
                .find(|(k, _)| k == n)
                .map(|(k, a)| (k.clone(), a))
        })
    };
    let (x_name, x) = find(&["x_train", "x", "images", "data", "arr_0"]).ok_or_else(|| {
        let names: Vec<&str> = arrays.iter().map(|(k, _)| k.as_str()).collect();
        bad(
            path,
            format!("no images array (x_train, x, images, data or arr_0) among {names:?}"),
        )
    })?;
    let mut train = images(path, &x_name, x)?;
    let y = find(&["y_train", "y", "labels", "arr_1"]);
    if let Some((y_name, y)) = &y {
        train.labels = labels(path, y_name, y, train.len())?;
    }
    let test = match find(&["x_test"]) {
        Some((t_name, t)) => {
            let mut test = images(path, &t_name, t)?;
            if (test.width, test.height, test.channels)
                != (train.width, train.height, train.channels)
            {
                return Err(bad(
                    path,
                    format!(
                        "x_test's images are {}x{}x{} but {x_name}'s are {}x{}x{}",
                        test.width,
                        test.height,
                        test.channels,
                        train.width,
                        train.height,
                        train.channels
                    ),
                ));
            }
            if let Some((ty_name, ty)) = find(&["y_test"]) {
                test.labels = labels(path, &ty_name, ty, test.len())?;
            }
            Some(test)
        }
        None => None,
    };
    if train.len() < 2 && test.is_none() {
        return Err(bad(
            path,
            "one image cannot be split into training and test images".into(),
        ));
    }
    let (train, test) = match test {
        Some(test) => (train, test),
        None => train.hold_out(HOLD_OUT_FRACTION, seed),
    };
    let labelled = y.is_some();
    let classes = train
        .labels
        .iter()
        .chain(&test.labels)
        .map(|&l| l as usize + 1)
        .max()
        .unwrap_or(1);
    Ok(Dataset {
        name,
        source: path.display().to_string(),
        train,
        test,
        class_names: match labelled {
            true => (0..classes).map(|c| c.to_string()).collect(),
            false => vec!["unlabelled".to_owned()],
        },
        warnings: Vec::new(),
        factor_info: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `np.savez_compressed(f, x_train=np.arange(2*4*3, dtype=np.uint8).reshape(2, 4, 3) * 10,
    /// y_train=np.array([1, 0]), x_test=np.full((1, 4, 3), 0.5, dtype=np.float32))`, written by
    /// numpy 2 (deflated entries with zip64 local headers).
    const NUMPY_NPZ: &[u8] = include_bytes!("../../tests/data/small.npz");

    #[test]
    fn reads_an_archive_numpy_wrote() {
        let path = Path::new("small.npz");
        let arrays = read_npz(path, NUMPY_NPZ).unwrap();
        let names: Vec<&str> = arrays.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["x_train", "y_train", "x_test"]);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("small.npz");
        std::fs::write(&file, NUMPY_NPZ).unwrap();
        let data = load(&file, "small".into(), 0).unwrap();
        assert_eq!(
            (data.train.width, data.train.height, data.train.channels),
            (3, 4, 1)
        );
        assert_eq!(data.train.len(), 2);
        assert_eq!(data.train.labels, vec![1, 0]);
        assert_eq!(data.train.pixels[..4], [0, 10, 20, 30]);
        assert_eq!(
            data.test.pixels,
            vec![128; 12],
            "floats in [0, 1] scaled to bytes"
        );
        assert_eq!(data.class_names.len(), 2);
    }

    #[test]
    fn damaged_archives_and_arrays_are_named() {
        let path = Path::new("bad.npz");
        let cut = &NUMPY_NPZ[..NUMPY_NPZ.len() / 2];
        assert!(read_npz(path, cut).is_err());
        assert!(read_npz(path, b"PK nothing").is_err());
        let mut flipped = NUMPY_NPZ.to_vec();
        for b in flipped.iter_mut().skip(60).take(40) {
            *b ^= 0x5a;
        }
        assert!(read_npz(path, &flipped).is_err() || load_bytes(&flipped).is_err());
        // An images array of the wrong rank.
        let a = npy::read(&npy::write_f32(&[5], &[0.0; 5])).unwrap();
        let e = images(path, "x", &a).unwrap_err().to_string();
        assert!(e.contains("bad.npz") && e.contains("shape [5]"), "{e}");
    }

    fn load_bytes(bytes: &[u8]) -> Result<Dataset, DataError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.npz");
        std::fs::write(&file, bytes).unwrap();
        load(&file, "x".into(), 0)
    }
}
