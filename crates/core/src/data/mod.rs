//! Datasets: IDX files (gzip or raw), image folders, and the built-in MNIST and Fashion-MNIST.
//!
//! Everything here is plain data (`u8` pixels and labels); tensors are made from batches in
//! [`batch`].

pub mod batch;
pub mod builtin;
pub mod files;
pub mod folder;
pub mod idx;
pub mod numpy;
pub mod shapes;

use std::path::{Path, PathBuf};

use crate::rng::Rng;

/// A failure to read a dataset. Every variant names the file (or folder) and the problem.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is named `.gz` but does not start with the gzip signature.
    #[error("{path}: named .gz but is not a gzip file")]
    NotGzip {
        /// The file.
        path: PathBuf,
    },
    /// The gzip stream is corrupt.
    #[error("{path}: corrupt gzip stream: {message}")]
    Gzip {
        /// The file.
        path: PathBuf,
        /// What the decompressor reported.
        message: String,
    },
    /// The IDX magic number is not the one expected.
    #[error("{path}: not an IDX {expected} file (magic 0x{found:08x}, expected 0x{magic:08x})")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// What kind of file was expected ("images" or "labels").
        expected: &'static str,
        /// The magic number found.
        found: u32,
        /// The magic number expected.
        magic: u32,
    },
    /// The IDX header's dimensions are zero or absurdly large.
    #[error("{path}: implausible dimensions {dims:?} ({reason})")]
    BadDims {
        /// The file.
        path: PathBuf,
        /// The dimensions from the header.
        dims: Vec<u32>,
        /// Why they were refused.
        reason: &'static str,
    },
    /// The payload is shorter or longer than the header says.
    #[error("{path}: header promises {expected} bytes of data but the file holds {actual}")]
    PayloadLength {
        /// The file.
        path: PathBuf,
        /// Bytes the header promises.
        expected: u64,
        /// Bytes found (at most `expected + 1` are read).
        actual: u64,
    },
    /// The image and label files disagree on the number of samples.
    #[error("{labels}: {labels_count} labels for {images_count} images in {images}")]
    CountMismatch {
        /// The image file.
        images: PathBuf,
        /// The label file.
        labels: PathBuf,
        /// Number of images.
        images_count: usize,
        /// Number of labels.
        labels_count: usize,
    },
    /// A label is not below the number of classes.
    #[error("{path}: label {label} at index {index} is not below the {classes} classes")]
    LabelOutOfRange {
        /// The label file.
        path: PathBuf,
        /// Index of the first bad label.
        index: usize,
        /// The bad label.
        label: u8,
        /// Number of classes allowed.
        classes: usize,
    },
    /// A folder held no usable data.
    #[error("{path}: {reason}")]
    NoData {
        /// The folder or file.
        path: PathBuf,
        /// What was missing.
        reason: String,
    },
}

/// A known generative factor of a dataset's images.
#[derive(Clone, Debug, PartialEq)]
pub struct Factor {
    /// Its name ("hue", "x").
    pub name: String,
    /// How its values are read.
    pub kind: FactorKind,
}

/// How a factor's values are read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FactorKind {
    /// One of this many categories, as 0, 1, ...
    Categorical(usize),
    /// A number on a line.
    Linear,
    /// An angle-like number: values a period apart are the same.
    Circular(f32),
}

/// Images of one split with their labels.
#[derive(Clone, Debug, Default)]
pub struct ImageSet {
    /// Image width in pixels.
    pub width: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Channels per pixel: 1 (grey) or 3 (RGB, interleaved). 0 reads as 1.
    pub channels: usize,
    /// `len() * width * height * channels` bytes, row-major per image.
    pub pixels: Vec<u8>,
    /// One label per image (all 0 when the dataset is unlabelled).
    pub labels: Vec<u8>,
    /// The known generative factors of each image, `len() * factor count` (empty when the
    /// source has none; see [`Dataset::factor_names`]).
    pub factors: Vec<f32>,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The images' shape.
    pub fn shape(&self) -> crate::model::ImageShape {
        crate::model::ImageShape::new(self.channels, self.height, self.width)
    }

    /// Values per image: pixels times channels.
    pub fn dim(&self) -> usize {
        self.width * self.height * self.channels.max(1)
    }

    /// Whether the images are in colour.
    pub fn is_colour(&self) -> bool {
        self.channels == 3
    }

    /// The values (grey levels, or RGB triples) of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let d = self.dim();
        &self.pixels[i * d..(i + 1) * d]
    }

    /// A new set holding the images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> ImageSet {
        let mut pixels = Vec::with_capacity(indices.len() * self.dim());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        let k = self.factors.len() / self.len().max(1);
        let factors = match k {
            0 => Vec::new(),
            k => indices
                .iter()
                .flat_map(|&i| self.factors[i * k..(i + 1) * k].iter().copied())
                .collect(),
        };
        ImageSet {
            width: self.width,
            height: self.height,
            channels: self.channels,
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            factors,
        }
    }

    /// Splits off a seeded random `fraction` of the images: `(rest, held_out)`.
    pub fn hold_out(&self, fraction: f64, seed: u64) -> (ImageSet, ImageSet) {
        let mut order: Vec<usize> = (0..self.len()).collect();
        Rng::new(seed).shuffle(&mut order);
        let n_out =
            ((self.len() as f64 * fraction).round() as usize).clamp(1, self.len().max(2) - 1);
        let (out, rest) = order.split_at(n_out);
        (self.select(rest), self.select(out))
    }
}

/// A dataset ready for training: a training split, a test split and class names.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// A short name for display ("mnist", or the folder's name).
    pub name: String,
    /// Where it came from, for configs and messages ("built-in" or a path).
    pub source: String,
    /// The training split.
    pub train: ImageSet,
    /// The test split (held out from the training data when the source had none).
    pub test: ImageSet,
    /// One name per class; a single "unlabelled" class when the source had no labels.
    pub class_names: Vec<String>,
    /// Problems that did not stop loading (skipped files), to show the user.
    pub warnings: Vec<String>,
    /// The known generative factors each image carries (empty for most sources).
    pub factor_info: Vec<Factor>,
}

impl Dataset {
    /// Pixels per image.
    pub fn dim(&self) -> usize {
        self.train.dim()
    }

    /// Whether the samples carry real labels.
    pub fn is_labelled(&self) -> bool {
        self.class_names.len() > 1
    }
}

/// Which dataset to load: a built-in one, a path, or files held in memory.
#[derive(Clone, Debug, PartialEq)]
pub enum DatasetSpec {
    /// A dataset embedded in the program.
    Builtin(builtin::Builtin),
    /// A directory of IDX files or an image folder, or a `.npz`, `.npy` or `.zip` file.
    Path(PathBuf),
    /// Files handed over in memory (the browser's uploads, several dropped files).
    Upload(std::sync::Arc<files::Upload>),
}

impl DatasetSpec {
    /// Reads a command-line value: a built-in name (`mnist`, `fashion-mnist`) or a path.
    pub fn parse(value: &str) -> Self {
        match builtin::Builtin::from_name(value) {
            Some(b) => DatasetSpec::Builtin(b),
            None => DatasetSpec::Path(PathBuf::from(value)),
        }
    }

    /// Loads the dataset; `seed` fixes the held-out split when the source has no test split.
    pub fn load(&self, seed: u64) -> Result<Dataset, DataError> {
        self.load_sized(seed, 0)
    }

    /// [`DatasetSpec::load`], with an image folder's images scaled so that their larger side
    /// is `size` pixels (0: the most common size, capped at [`folder::MAX_SIDE`]). Sources of
    /// a fixed size (built-in, IDX) refuse a size.
    pub fn load_sized(&self, seed: u64, size: usize) -> Result<Dataset, DataError> {
        match self {
            DatasetSpec::Builtin(b) if size > 0 => Err(DataError::NoData {
                path: PathBuf::from(b.name()),
                reason: format!(
                    "a built-in dataset has a fixed image size; an image size ({size}) applies to image folders"
                ),
            }),
            DatasetSpec::Builtin(b) => b.load(seed),
            DatasetSpec::Path(path) => load_path_sized(path, seed, size),
            DatasetSpec::Upload(upload) => load_from(&upload.files, &upload.path, seed, size),
        }
    }
}

impl std::fmt::Display for DatasetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatasetSpec::Builtin(b) => f.write_str(b.name()),
            DatasetSpec::Path(p) => write!(f, "{}", p.display()),
            DatasetSpec::Upload(upload) => f.write_str(&upload.value()),
        }
    }
}

/// Share of the data held out as a test split when a source has none.
pub const HOLD_OUT_FRACTION: f64 = 0.1;

/// Loads a directory: IDX files when it holds any, otherwise an image folder.
pub fn load_path(path: &Path, seed: u64) -> Result<Dataset, DataError> {
    load_path_sized(path, seed, 0)
}

/// [`load_path`] with an image size for an image folder (see [`DatasetSpec::load_sized`]).
pub fn load_path_sized(path: &Path, seed: u64, size: usize) -> Result<Dataset, DataError> {
    load_from(&files::Disk, path, seed, size)
}

/// Loads `path` from `src`: a folder of IDX files or of images, or a `.npz`, `.npy` or `.zip`
/// file (a zip is read as the folder it holds, or as its one top folder).
pub fn load_from(
    src: &dyn files::FileSource,
    path: &Path,
    seed: u64,
    size: usize,
) -> Result<Dataset, DataError> {
    let entry = src.entry(path).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let numpy = matches!(extension.as_str(), "npz" | "npy");
    match entry {
        files::Entry::File(_) if numpy && size > 0 => Err(DataError::NoData {
            path: path.to_owned(),
            reason: format!(
                "a NumPy array's image size is fixed; an image size ({size}) applies to image folders"
            ),
        }),
        files::Entry::File(_) if numpy => numpy::load_from(src, path, name, seed),
        files::Entry::File(_) if extension == "zip" => {
            let bytes = src.read(path).map_err(|source| DataError::Io {
                path: path.to_owned(),
                source,
            })?;
            let entries = crate::archive::read_entries(&bytes, |_| true).map_err(|m| {
                DataError::NoData {
                    path: path.to_owned(),
                    reason: format!("not a readable zip archive: {m}"),
                }
            })?;
            drop(bytes);
            let inside = files::Memory::new(path, entries);
            let root = inside.lone_folder();
            load_from(&inside, &root, seed, size)
        }
        files::Entry::File(_) => Err(DataError::NoData {
            path: path.to_owned(),
            reason: "not a directory or a .npz/.npy/.zip file (expected a folder of IDX files or of images, NumPy arrays, or a zip of either)".into(),
        }),
        files::Entry::Folder => match idx::find_pairs(src, path)? {
            Some(_) if size > 0 => Err(DataError::NoData {
                path: path.to_owned(),
                reason: format!(
                    "holds IDX files, whose image size is fixed; an image size ({size}) applies to image folders"
                ),
            }),
            Some(pairs) => idx::load_dir(src, &pairs, name, path, seed),
            None if size > 0 => folder::load_scaled(src, path, name, seed, size, true),
            None => folder::load_scaled(src, path, name, seed, folder::MAX_SIDE, false),
        },
    }
}
