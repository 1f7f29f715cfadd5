//! The datasets embedded in the program: full MNIST, the Fashion-MNIST test split, and
//! coloured shapes drawn from a seed.
//!
//! The original IDX gzip files from `assets/data/` are compiled into the binary with
//! `include_bytes!` (about 16 MB), so the program runs from any directory and never downloads.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::idx::{IMAGES_MAGIC, LABELS_MAGIC, check_labels, read_idx};
use super::{DataError, Dataset, HOLD_OUT_FRACTION, ImageSet};

/// A dataset embedded in the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Builtin {
    /// MNIST handwritten digits: 60,000 training and 10,000 test images.
    Mnist,
    /// Fashion-MNIST (test split only, of which 10% is held out for testing).
    FashionMnist,
    /// Coloured shapes drawn at start-up from a fixed seed, with known factors (hue, scale,
    /// rotation, position): [`SHAPES_TRAIN`] training and [`SHAPES_TEST`] test images.
    Shapes,
}

/// Training images of the shapes dataset.
pub const SHAPES_TRAIN: usize = 30_000;
/// Test images of the shapes dataset.
pub const SHAPES_TEST: usize = 5_000;
/// The shapes dataset's seed: the same images on every machine, whatever the run's seed.
const SHAPES_SEED: u64 = 2026;

/// Fashion-MNIST's class names, by label.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

const MNIST_TRAIN_IMAGES: &[u8] =
    include_bytes!("../../../../assets/data/mnist/train-images-idx3-ubyte.gz");
const MNIST_TRAIN_LABELS: &[u8] =
    include_bytes!("../../../../assets/data/mnist/train-labels-idx1-ubyte.gz");
const MNIST_TEST_IMAGES: &[u8] =
    include_bytes!("../../../../assets/data/mnist/t10k-images-idx3-ubyte.gz");
const MNIST_TEST_LABELS: &[u8] =
    include_bytes!("../../../../assets/data/mnist/t10k-labels-idx1-ubyte.gz");
const FASHION_IMAGES: &[u8] =
    include_bytes!("../../../../assets/data/fashion-mnist/t10k-images-idx3-ubyte.gz");
const FASHION_LABELS: &[u8] =
    include_bytes!("../../../../assets/data/fashion-mnist/t10k-labels-idx1-ubyte.gz");

impl Builtin {
    /// Every built-in dataset.
    pub const ALL: [Builtin; 3] = [Builtin::Mnist, Builtin::FashionMnist, Builtin::Shapes];

    /// The name used on the command line and in configs.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Mnist => "mnist",
            Builtin::FashionMnist => "fashion-mnist",
            Builtin::Shapes => "shapes",
        }
    }

    /// The built-in dataset called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Decodes the embedded files; `seed` fixes Fashion-MNIST's held-out test split.
    pub fn load(self, seed: u64) -> Result<Dataset, DataError> {
        let mut factor_info = Vec::new();
        let (train, test, class_names) = match self {
            Builtin::Mnist => (
                embedded_pair("mnist/train", MNIST_TRAIN_IMAGES, MNIST_TRAIN_LABELS)?,
                embedded_pair("mnist/t10k", MNIST_TEST_IMAGES, MNIST_TEST_LABELS)?,
                (0..10).map(|d| d.to_string()).collect(),
            ),
            Builtin::FashionMnist => {
                let all = embedded_pair("fashion-mnist/t10k", FASHION_IMAGES, FASHION_LABELS)?;
                let (train, test) = all.hold_out(HOLD_OUT_FRACTION, seed);
                (
                    train,
                    test,
                    FASHION_CLASSES.iter().map(|s| s.to_string()).collect(),
                )
            }
            Builtin::Shapes => {
                use super::shapes;
                factor_info = shapes::factors();
                let set = |n, seed| {
                    let (pixels, factors) = shapes::generate(n, seed);
                    ImageSet {
                        width: shapes::SIZE,
                        height: shapes::SIZE,
                        channels: 3,
                        pixels,
                        labels: factors.iter().map(|f| f.shape).collect(),
                        factors: factors.iter().flat_map(|f| f.values()).collect(),
                    }
                };
                (
                    set(SHAPES_TRAIN, SHAPES_SEED),
                    set(SHAPES_TEST, SHAPES_SEED + 1),
                    shapes::SHAPE_NAMES.iter().map(|s| s.to_string()).collect(),
                )
            }
        };
        Ok(Dataset {
            name: self.name().to_owned(),
            source: "built-in".to_owned(),
            train,
            test,
            class_names,
            warnings: Vec::new(),
            factor_info,
        })
    }
}

/// Decodes one embedded images/labels pair of ten classes.
fn embedded_pair(stem: &str, images: &[u8], labels: &[u8]) -> Result<ImageSet, DataError> {
    let images_path = format!("assets/data/{stem}-images-idx3-ubyte.gz");
    let labels_path = format!("assets/data/{stem}-labels-idx1-ubyte.gz");
    let gz = |bytes| flate2::read::GzDecoder::new(bytes);
    let (dims, pixels) = read_idx(gz(images), Path::new(&images_path), IMAGES_MAGIC, "images")?;
    let (_, labels) = read_idx(gz(labels), Path::new(&labels_path), LABELS_MAGIC, "labels")?;
    check_labels(&labels, 10, Path::new(&labels_path))?;
    if labels.len() != dims[0] as usize {
        return Err(DataError::CountMismatch {
            images: images_path.into(),
            labels: labels_path.into(),
            images_count: dims[0] as usize,
            labels_count: labels.len(),
        });
    }
    Ok(ImageSet {
        width: dims[2] as usize,
        height: dims[1] as usize,
        channels: 1,
        pixels,
        labels,
        factors: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_colour_images_with_their_factors_and_named_classes() {
        let ds = Builtin::Shapes.load(0).unwrap();
        assert_eq!((ds.train.len(), ds.test.len()), (SHAPES_TRAIN, SHAPES_TEST));
        assert_eq!((ds.train.width, ds.train.channels), (32, 3));
        assert_eq!(
            ds.class_names,
            vec!["square", "circle", "triangle", "heart"]
        );
        assert_eq!(ds.factor_info.len(), 6);
        assert_eq!(ds.train.factors.len(), SHAPES_TRAIN * 6);
        // The label is the shape factor, and the data do not depend on the run's seed.
        assert!((0..100).all(|i| ds.test.factors[i * 6] == ds.test.labels[i] as f32));
        assert_eq!(Builtin::Shapes.load(5).unwrap().test.pixels, ds.test.pixels);
        // A selection keeps each image's factors.
        let some = ds.test.select(&[3, 1]);
        assert_eq!(&some.factors[..6], &ds.test.factors[18..24]);
        assert_eq!(some.image(1), ds.test.image(1));
    }

    #[test]
    fn mnist_has_its_canonical_shape() {
        let ds = Builtin::Mnist.load(0).unwrap();
        assert_eq!(
            (ds.train.len(), ds.test.len(), ds.dim()),
            (60_000, 10_000, 784)
        );
        assert_eq!(ds.class_names.len(), 10);
        // Every digit appears, and the first training label is the well-known 5.
        assert_eq!(ds.train.labels[0], 5);
        assert!((0..10).all(|c| ds.test.labels.contains(&c)));
    }

    #[test]
    fn fashion_holds_out_a_tenth_with_class_names() {
        let ds = Builtin::FashionMnist.load(0).unwrap();
        assert_eq!((ds.train.len(), ds.test.len()), (9_000, 1_000));
        assert_eq!(ds.class_names[9], "Ankle boot");
    }
}
