//! The IDX format of MNIST: big-endian magic `0x0000_08TT` (TT = element type, the low byte
//! the number of dimensions), the dimensions as u32, then the u8 payload. Files may be gzip
//! or raw. Nothing is allocated for the payload beyond what the file really holds.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use super::files::FileSource;
use super::{DataError, Dataset, HOLD_OUT_FRACTION, ImageSet};

/// Magic of an IDX file of u8 images with three dimensions (N, rows, cols).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic of an IDX file of u8 labels with one dimension (N).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Largest image side accepted, in pixels.
pub const MAX_SIDE: u32 = 4096;
/// Largest payload accepted, in bytes (1 GiB).
pub const MAX_PAYLOAD: u64 = 1 << 30;

/// Reads an IDX images file (labels all 0 until a labels file is paired with it).
pub fn read_images(src: &dyn FileSource, path: &Path) -> Result<ImageSet, DataError> {
    let (dims, payload) = read_idx(open(src, path)?, path, IMAGES_MAGIC, "images")?;
    Ok(ImageSet {
        width: dims[2] as usize,
        height: dims[1] as usize,
        channels: 1,
        labels: vec![0; dims[0] as usize],
        pixels: payload,
        factors: Vec::new(),
    })
}

/// Reads an IDX labels file.
pub fn read_labels(src: &dyn FileSource, path: &Path) -> Result<Vec<u8>, DataError> {
    read_idx(open(src, path)?, path, LABELS_MAGIC, "labels").map(|(_, payload)| payload)
}

/// The bytes that follow the first gzip stream of a gzip file (`None` when it is not gzip,
/// cannot be read, or nothing follows): the reader stops at the first stream's end.
pub fn bytes_after_gzip(src: &dyn FileSource, path: &Path) -> Option<u64> {
    let mut reader = std::io::BufReader::new(src.open(path).ok()?);
    if reader.fill_buf().ok()?.get(..2) != Some(&[0x1f, 0x8b][..]) {
        return None;
    }
    let mut stream = flate2::bufread::GzDecoder::new(reader);
    std::io::copy(&mut stream, &mut std::io::sink()).ok()?;
    let rest = std::io::copy(&mut stream.into_inner(), &mut std::io::sink()).ok()?;
    (rest > 0).then_some(rest)
}

/// Opens a file as a byte stream, transparently decompressing gzip.
fn open<'a>(src: &'a dyn FileSource, path: &Path) -> Result<Box<dyn Read + 'a>, DataError> {
    let io = |source| DataError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::io::BufReader::new(src.open(path).map_err(io)?);
    let is_gzip = file.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
    let named_gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    match (is_gzip, named_gz) {
        (true, _) => Ok(Box::new(flate2::read::GzDecoder::new(file))),
        (false, true) => Err(DataError::NotGzip {
            path: path.to_owned(),
        }),
        (false, false) => Ok(Box::new(file)),
    }
}

/// Parses an IDX stream whose magic must be `magic`; returns its dimensions and payload.
///
/// The payload is read with a limit of one byte past what the header promises, into a
/// buffer that grows only as data arrives, so a header that lies costs no large allocation.
pub fn read_idx(
    mut reader: impl Read,
    path: &Path,
    magic: u32,
    kind: &'static str,
) -> Result<(Vec<u32>, Vec<u8>), DataError> {
    let read_err = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::InvalidInput
        | std::io::ErrorKind::InvalidData
        | std::io::ErrorKind::UnexpectedEof => DataError::Gzip {
            path: path.to_owned(),
            message: e.to_string(),
        },
        _ => DataError::Io {
            path: path.to_owned(),
            source: e,
        },
    };
    let mut header = [0u8; 4];
    let got = read_up_to(&mut reader, &mut header).map_err(read_err)?;
    if got < 4 {
        return Err(DataError::PayloadLength {
            path: path.to_owned(),
            expected: 4,
            actual: got as u64,
        });
    }
    let found = u32::from_be_bytes(header);
    if found != magic {
        return Err(DataError::BadMagic {
            path: path.to_owned(),
            expected: kind,
            found,
            magic,
        });
    }
    let ndim = (magic & 0xff) as usize;
    let mut dim_bytes = vec![0u8; 4 * ndim];
    let got = read_up_to(&mut reader, &mut dim_bytes).map_err(read_err)?;
    if got < dim_bytes.len() {
        return Err(DataError::PayloadLength {
            path: path.to_owned(),
            expected: dim_bytes.len() as u64,
            actual: got as u64,
        });
    }
    let dims: Vec<u32> = dim_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let bad = |reason| DataError::BadDims {
        path: path.to_owned(),
        dims: dims.clone(),
        reason,
    };
    if dims.contains(&0) {
        return Err(bad("a dimension is zero"));
    }
    if dims.iter().skip(1).any(|&d| d > MAX_SIDE) {
        return Err(bad("an image side exceeds 4096 pixels"));
    }
    let expected = dims.iter().map(|&d| d as u64).product::<u64>();
    if expected > MAX_PAYLOAD {
        return Err(bad("the payload would exceed 1 GiB"));
    }
    let mut payload = Vec::new();
    reader
        .take(expected + 1)
        .read_to_end(&mut payload)
        .map_err(read_err)?;
    if payload.len() as u64 != expected {
        return Err(DataError::PayloadLength {
            path: path.to_owned(),
            expected,
            actual: payload.len() as u64,
        });
    }
    Ok((dims, payload))
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The IDX files found in a directory.
#[derive(Clone, Debug, Default)]
pub struct IdxFiles {
    /// `train-images*`.
    pub train_images: Option<PathBuf>,
    /// `train-labels*`.
    pub train_labels: Option<PathBuf>,
    /// `t10k-images*` or `test-images*`.
    pub test_images: Option<PathBuf>,
    /// `t10k-labels*` or `test-labels*`.
    pub test_labels: Option<PathBuf>,
}

/// Looks for IDX files in `dir` by their MNIST names; `None` when there are none at all.
pub fn find_pairs(src: &dyn FileSource, dir: &Path) -> Result<Option<IdxFiles>, DataError> {
    let entries = src.list(dir).map_err(|source| DataError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut files = IdxFiles::default();
    for (path, is_dir) in entries {
        if is_dir {
            continue;
        }
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_lowercase();
        if !name.contains("idx") && !name.contains("ubyte") {
            continue;
        }
        let slot = if name.starts_with("train-images") {
            &mut files.train_images
        } else if name.starts_with("train-labels") {
            &mut files.train_labels
        } else if name.starts_with("t10k-images") || name.starts_with("test-images") {
            &mut files.test_images
        } else if name.starts_with("t10k-labels") || name.starts_with("test-labels") {
            &mut files.test_labels
        } else {
            continue;
        };
        slot.get_or_insert(path);
    }
    let any = files.train_images.is_some()
        || files.train_labels.is_some()
        || files.test_images.is_some()
        || files.test_labels.is_some();
    Ok(any.then_some(files))
}

/// Reads an images file and, if given, its labels, checking they agree.
pub fn read_pair(
    src: &dyn FileSource,
    images: &Path,
    labels: Option<&Path>,
) -> Result<ImageSet, DataError> {
    let mut set = read_images(src, images)?;
    if let Some(labels_path) = labels {
        let labels = read_labels(src, labels_path)?;
        if labels.len() != set.len() {
            return Err(DataError::CountMismatch {
                images: images.to_owned(),
                labels: labels_path.to_owned(),
                images_count: set.len(),
                labels_count: labels.len(),
            });
        }
        set.labels = labels;
    }
    Ok(set)
}

/// Number of classes the labels name: the largest label plus one.
pub fn class_count(labels: &[u8]) -> usize {
    labels.iter().copied().max().map_or(1, |m| m as usize + 1)
}

/// Checks that every label is below `classes`.
pub fn check_labels(labels: &[u8], classes: usize, path: &Path) -> Result<(), DataError> {
    match labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| l as usize >= classes)
    {
        Some((index, &label)) => Err(DataError::LabelOutOfRange {
            path: path.to_owned(),
            index,
            label,
            classes,
        }),
        None => Ok(()),
    }
}

/// Loads the train/test pairs found in a directory; a missing test split is held out.
pub fn load_dir(
    src: &dyn FileSource,
    files: &IdxFiles,
    name: String,
    dir: &Path,
    seed: u64,
) -> Result<Dataset, DataError> {
    let no_data = |reason: &str| DataError::NoData {
        path: dir.to_owned(),
        reason: reason.to_owned(),
    };
    let train = match &files.train_images {
        Some(p) => Some(read_pair(src, p, files.train_labels.as_deref())?),
        None => None,
    };
    let test = match &files.test_images {
        Some(p) => Some(read_pair(src, p, files.test_labels.as_deref())?),
        None => None,
    };
    let labelled = files.train_labels.is_some() || files.test_labels.is_some();
    let (train, test) = match (train, test) {
        (Some(train), Some(test)) => {
            if (train.width, train.height) != (test.width, test.height) {
                return Err(no_data(&format!(
                    "train images are {}x{} but test images are {}x{}",
                    train.width, train.height, test.width, test.height
                )));
            }
            (train, test)
        }
        (Some(only), None) | (None, Some(only)) => only.hold_out(HOLD_OUT_FRACTION, seed),
        (None, None) => {
            return Err(no_data(
                "holds IDX label files but no images file (train-images-* or t10k-images-*)",
            ));
        }
    };
    let warnings = [
        &files.train_images,
        &files.train_labels,
        &files.test_images,
        &files.test_labels,
    ]
    .into_iter()
    .flatten()
    .filter_map(|p| {
        bytes_after_gzip(src, p).map(|n| {
            format!(
                "{}: {n} bytes after the gzip stream were ignored (a second stream, or appended data)",
                p.display()
            )
        })
    })
    .collect();
    let classes = class_count(&train.labels).max(class_count(&test.labels));
    let class_names = if labelled {
        (0..classes).map(|c| c.to_string()).collect()
    } else {
        vec!["unlabelled".to_owned()]
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::files::Disk;
    use std::io::Write;

    fn idx_bytes(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut out = magic.to_be_bytes().to_vec();
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(payload);
        out
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn reads_gzip_and_raw_images() {
        let dir = tempfile::tempdir().unwrap();
        let raw = idx_bytes(
            IMAGES_MAGIC,
            &[2, 2, 3],
            &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        );
        let a = read_images(&Disk, &write(dir.path(), "a-idx3-ubyte", &raw)).unwrap();
        let b = read_images(&Disk, &write(dir.path(), "b-idx3-ubyte.gz", &gzip(&raw))).unwrap();
        assert_eq!((a.len(), a.height, a.width), (2, 2, 3));
        assert_eq!(a.pixels, b.pixels);
        assert_eq!(a.image(1), &[6, 7, 8, 9, 10, 11]);
    }

    #[test]
    fn bytes_after_a_gzip_stream_are_read_past_with_a_warning_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let raw = idx_bytes(IMAGES_MAGIC, &[2, 2, 2], &[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut padded = gzip(&raw);
        padded.extend_from_slice(b"appended junk");
        let path = write(dir.path(), "train-images-idx3-ubyte.gz", &padded);
        assert_eq!(
            read_images(&Disk, &path).unwrap().pixels,
            vec![1, 2, 3, 4, 5, 6, 7, 8]
        );
        assert_eq!(bytes_after_gzip(&Disk, &path), Some(13));
        let clean = write(dir.path(), "clean.gz", &gzip(&raw));
        assert_eq!(bytes_after_gzip(&Disk, &clean), None);
        let data = crate::data::load_path(dir.path(), 0).unwrap();
        assert!(
            data.warnings
                .iter()
                .any(|w| w.contains("train-images-idx3-ubyte.gz")
                    && w.contains("13 bytes after the gzip stream")),
            "{:?}",
            data.warnings
        );
    }

    #[test]
    fn truncated_payload_is_refused_with_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let raw = idx_bytes(IMAGES_MAGIC, &[2, 2, 2], &[1, 2, 3]);
        let path = write(dir.path(), "short-idx3-ubyte.gz", &gzip(&raw));
        let err = read_images(&Disk, &path).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::PayloadLength {
                    expected: 8,
                    actual: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("short-idx3-ubyte.gz"));
    }

    #[test]
    fn wrong_magic_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let raw = idx_bytes(LABELS_MAGIC, &[3], &[1, 2, 3]);
        let err = read_images(&Disk, &write(dir.path(), "labels-as-images", &raw)).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::BadMagic {
                    found: LABELS_MAGIC,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("labels-as-images"));
    }

    #[test]
    fn absurd_dims_are_refused_before_allocation() {
        let dir = tempfile::tempdir().unwrap();
        // Claims 4 billion images of 4096 x 4096: refused from the header alone.
        let raw = idx_bytes(IMAGES_MAGIC, &[u32::MAX, 4096, 4096], &[0; 16]);
        let err = read_images(&Disk, &write(dir.path(), "huge", &raw)).unwrap_err();
        assert!(matches!(err, DataError::BadDims { .. }), "{err}");
        let raw = idx_bytes(IMAGES_MAGIC, &[10, 0, 28], &[]);
        let err = read_images(&Disk, &write(dir.path(), "zero", &raw)).unwrap_err();
        assert!(matches!(err, DataError::BadDims { .. }), "{err}");
        let raw = idx_bytes(IMAGES_MAGIC, &[1, 5000, 2], &[]);
        assert!(matches!(
            read_images(&Disk, &write(dir.path(), "wide", &raw)),
            Err(DataError::BadDims { .. })
        ));
    }

    #[test]
    fn lying_header_within_limits_reads_only_what_exists() {
        let dir = tempfile::tempdir().unwrap();
        // Header claims 1,000,000 x 32 x 32 (about 1 GB); the file holds 10 bytes.
        let raw = idx_bytes(IMAGES_MAGIC, &[1_000_000, 32, 32], &[7; 10]);
        let err = read_images(&Disk, &write(dir.path(), "liar.gz", &gzip(&raw))).unwrap_err();
        assert!(
            matches!(err, DataError::PayloadLength { actual: 10, .. }),
            "{err}"
        );
    }

    #[test]
    fn not_gzip_and_corrupt_gzip_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_images(&Disk, &write(dir.path(), "plain.gz", b"hello world")).unwrap_err();
        assert!(matches!(err, DataError::NotGzip { .. }), "{err}");
        let mut bad = gzip(&idx_bytes(IMAGES_MAGIC, &[1, 2, 2], &[1, 2, 3, 4]));
        let mid = bad.len() / 2;
        bad[mid..].iter_mut().for_each(|b| *b ^= 0x5a);
        // Corruption surfaces as whatever check trips first (deflate, CRC, header, length);
        // the point is a clear error naming the file, never a panic or garbage data.
        let err = read_images(&Disk, &write(dir.path(), "corrupt.gz", &bad)).unwrap_err();
        assert!(err.to_string().contains("corrupt.gz"), "{err}");
        // A stream cut short in the middle of the deflate data.
        let good = gzip(&idx_bytes(IMAGES_MAGIC, &[1, 2, 2], &[1, 2, 3, 4]));
        let err = read_images(
            &Disk,
            &write(dir.path(), "cut.gz", &good[..good.len() - 12]),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Gzip { .. } | DataError::PayloadLength { .. }
            ),
            "{err}"
        );
    }

    #[test]
    fn count_mismatch_and_bad_label_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let imgs = write(
            dir.path(),
            "train-images-idx3-ubyte",
            &idx_bytes(IMAGES_MAGIC, &[3, 1, 1], &[1, 2, 3]),
        );
        let labels = write(
            dir.path(),
            "train-labels-idx1-ubyte",
            &idx_bytes(LABELS_MAGIC, &[2], &[0, 1]),
        );
        let err = read_pair(&Disk, &imgs, Some(&labels)).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::CountMismatch {
                    images_count: 3,
                    labels_count: 2,
                    ..
                }
            ),
            "{err}"
        );
        let err = check_labels(&[0, 3, 12], 10, &labels).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::LabelOutOfRange {
                    index: 2,
                    label: 12,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn directory_without_test_split_holds_out_ten_percent() {
        let dir = tempfile::tempdir().unwrap();
        let n = 50u32;
        let pixels: Vec<u8> = (0..n * 4).map(|i| i as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
        write(
            dir.path(),
            "train-images-idx3-ubyte.gz",
            &gzip(&idx_bytes(IMAGES_MAGIC, &[n, 2, 2], &pixels)),
        );
        write(
            dir.path(),
            "train-labels-idx1-ubyte.gz",
            &gzip(&idx_bytes(LABELS_MAGIC, &[n], &labels)),
        );
        let ds = super::super::load_path(dir.path(), 0).unwrap();
        assert_eq!(ds.train.len() + ds.test.len(), 50);
        assert_eq!(ds.test.len(), 5);
        assert_eq!(ds.class_names.len(), 3);
    }
}
