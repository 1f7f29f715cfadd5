//! Datasets from NumPy files, as pythae and Keras users keep them: a `.npz` archive
//! (`np.savez` or `np.savez_compressed`) with an images array and optionally labels and a test
//! split, or a single `.npy` images array.
//!
//! Arrays are found by name: images `x_train`, `x`, `images`, `data` or `arr_0`; labels
//! `y_train`, `y`, `labels` or `arr_1`; a test split `x_test` with `y_test`. Images are
//! `[n, h, w]`, `[n, h, w, c]` or `[n, c, h, w]` with 1 or 3 channels (4: alpha dropped), as
//! bytes or as floats in [0, 1] (floats above 1 are read as 0-255). Without a test split 10%
//! is held out.

use std::path::Path;

use super::files::{Disk, Entry, FileSource};
use super::{DataError, Dataset, HOLD_OUT_FRACTION, ImageSet};
use crate::codec::npy::{self, Array};

fn bad(path: &Path, reason: String) -> DataError {
    DataError::NoData {
        path: path.to_owned(),
        reason,
    }
}

/// The arrays of a `.npz` archive, by name without `.npy`.
pub fn read_npz(path: &Path, bytes: &[u8]) -> Result<Vec<(String, Array)>, DataError> {
    let entries = crate::archive::read_entries(bytes, |name| name.ends_with(".npy"))
        .map_err(|m| bad(path, format!("not a readable .npz archive: {m}")))?;
    entries
        .into_iter()
        .map(|(name, raw)| {
            let stem = name.strip_suffix(".npy").unwrap_or(&name).to_owned();
            let array = npy::read(&raw).map_err(|e| bad(path, format!("array {stem}: {e}")))?;
            Ok((stem, array))
        })
        .collect()
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
    load_from(&Disk, path, name, seed)
}

/// [`load`] from `src`.
pub fn load_from(
    src: &dyn FileSource,
    path: &Path,
    name: String,
    seed: u64,
) -> Result<Dataset, DataError> {
    let io = |source| DataError::Io {
        path: path.to_owned(),
        source,
    };
    if let Entry::File(len) = src.entry(path).map_err(io)?
        && len > 8 << 30
    {
        return Err(bad(path, format!("{len} bytes is more than 8 GiB")));
    }
    let bytes = src.read(path).map_err(io)?;
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
    const NUMPY_NPZ: &[u8] = include_bytes!("../../../../tests/data/small.npz");

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
