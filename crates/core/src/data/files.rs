//! Where a dataset's files are read from: the disk, or files held in memory (the browser's
//! uploads, a zip's entries). The loaders ask only these questions of a source, so a folder of
//! images, a pair of IDX files or a `.npz` load the same way from either.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// What a path names in a [`FileSource`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A file of this many bytes.
    File(u64),
    /// A folder.
    Folder,
}

/// A tree of files a dataset is read from.
pub trait FileSource: Sync {
    /// What `path` is.
    fn entry(&self, path: &Path) -> std::io::Result<Entry>;
    /// The paths directly inside the folder `dir`, sorted, each with whether it is a folder.
    fn list(&self, dir: &Path) -> std::io::Result<Vec<(PathBuf, bool)>>;
    /// A file's bytes as a stream (unbuffered: readers buffer it as they need).
    fn open(&self, path: &Path) -> std::io::Result<Box<dyn Read + '_>>;
    /// A file's bytes.
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.open(path)?.read_to_end(&mut bytes)?;
        Ok(bytes)
    }
}

/// The disk.
pub struct Disk;

impl FileSource for Disk {
    fn entry(&self, path: &Path) -> std::io::Result<Entry> {
        let meta = std::fs::metadata(path)?;
        Ok(match meta.is_dir() {
            true => Entry::Folder,
            false => Entry::File(meta.len()),
        })
    }

    fn list(&self, dir: &Path) -> std::io::Result<Vec<(PathBuf, bool)>> {
        let mut paths: Vec<(PathBuf, bool)> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .map(|p| {
                let is_dir = p.is_dir();
                (p, is_dir)
            })
            .collect();
        paths.sort();
        Ok(paths)
    }

    fn open(&self, path: &Path) -> std::io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(std::fs::File::open(path)?))
    }

    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

/// Files held in memory under one root: an upload of several files, or a zip's entries. The
/// root is what messages name (`digits.zip/7/a.png`); folders are the paths' prefixes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Memory {
    root: PathBuf,
    files: BTreeMap<PathBuf, Vec<u8>>,
}

fn not_found(path: &Path) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("{} is not among the files given", path.display()),
    )
}

impl Memory {
    /// `files` (a relative path each, `/`-separated, and the bytes) under `root`. Paths that
    /// climb out of the root (`..`) or are absolute are dropped.
    pub fn new(root: impl Into<PathBuf>, files: Vec<(String, Vec<u8>)>) -> Self {
        let root = root.into();
        let files = files
            .into_iter()
            .filter_map(|(name, bytes)| {
                let rel = Path::new(&name);
                let safe = rel
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
                (safe && !name.is_empty()).then(|| (root.join(rel), bytes))
            })
            .collect();
        Self { root, files }
    }

    /// The root every path starts with.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are no files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The bytes held, in all.
    pub fn bytes(&self) -> usize {
        self.files.values().map(Vec::len).sum()
    }
}

impl Memory {
    /// Where a zip's dataset starts: its one top folder when it holds nothing else (as a
    /// folder zipped whole does), else the root.
    pub fn lone_folder(&self) -> PathBuf {
        match self.list(&self.root).as_deref() {
            Ok([(folder, true)]) => folder.clone(),
            _ => self.root.clone(),
        }
    }
}

/// What a dataset value starts with when it names an upload (`upload:digits.zip`).
pub const UPLOAD_PREFIX: &str = "upload:";

/// Files handed over to this process (the browser's uploads), kept for loading by name.
#[derive(Debug)]
pub struct Upload {
    /// The files.
    pub files: Memory,
    /// What to load among them: a single file, or the root as a folder.
    pub path: PathBuf,
}

/// The uploads held: the latest few, so that a page does not keep every dataset it was given.
static UPLOADS: std::sync::Mutex<Vec<(String, std::sync::Arc<Upload>)>> =
    std::sync::Mutex::new(Vec::new());

/// How many uploads are held at once.
const UPLOADS_KEPT: usize = 2;

/// Keeps `files` (name, bytes; names may hold folders, `/`-separated) for loading and returns
/// the dataset value that names them (`upload:` and a name). One file is loaded as itself (a
/// `.npz`, `.npy` or `.zip`); several as a folder (IDX pairs, or images).
pub fn keep_upload(files: Vec<(String, Vec<u8>)>) -> String {
    let name = match files.as_slice() {
        [(only, _)] => only.clone(),
        [(first, _), rest @ ..] => format!("{first} and {} more", rest.len()),
        [] => "no files".to_owned(),
    };
    let upload = match files.len() {
        1 => Upload {
            path: PathBuf::from(&name),
            files: Memory::new("", files),
        },
        _ => Upload {
            path: PathBuf::from(&name),
            files: Memory::new(&name, files),
        },
    };
    let mut held = UPLOADS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    held.retain(|(n, _)| *n != name);
    held.push((name.clone(), std::sync::Arc::new(upload)));
    let excess = held.len().saturating_sub(UPLOADS_KEPT);
    held.drain(..excess);
    format!("{UPLOAD_PREFIX}{name}")
}

/// The upload kept under `name`, while it is held.
pub fn upload(name: &str) -> Option<std::sync::Arc<Upload>> {
    let held = UPLOADS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    held.iter().find(|(n, _)| n == name).map(|(_, u)| u.clone())
}

impl FileSource for Memory {
    fn entry(&self, path: &Path) -> std::io::Result<Entry> {
        if let Some(bytes) = self.files.get(path) {
            return Ok(Entry::File(bytes.len() as u64));
        }
        match self.files.keys().any(|p| p.starts_with(path)) {
            true => Ok(Entry::Folder),
            false => Err(not_found(path)),
        }
    }

    fn list(&self, dir: &Path) -> std::io::Result<Vec<(PathBuf, bool)>> {
        let mut out: Vec<(PathBuf, bool)> = Vec::new();
        for path in self.files.keys() {
            let Ok(rest) = path.strip_prefix(dir) else {
                continue;
            };
            let mut parts = rest.components();
            let Some(first) = parts.next() else { continue };
            let child = dir.join(first);
            out.push((child, parts.next().is_some()));
        }
        out.sort();
        out.dedup();
        match out.is_empty() && !self.files.contains_key(dir) && dir != self.root {
            true => Err(not_found(dir)),
            false => Ok(out),
        }
    }

    fn open(&self, path: &Path) -> std::io::Result<Box<dyn Read + '_>> {
        let bytes = self.files.get(path).ok_or_else(|| not_found(path))?;
        Ok(Box::new(bytes.as_slice()))
    }

    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.files.get(path).cloned().ok_or_else(|| not_found(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_files_list_like_a_folder() {
        let m = Memory::new(
            "up.zip",
            vec![
                ("b/2.png".into(), vec![2]),
                ("a/1.png".into(), vec![1, 1]),
                ("a/deep/x".into(), vec![]),
                ("top.txt".into(), vec![9]),
                ("../escape".into(), vec![0]),
                ("/abs".into(), vec![0]),
            ],
        );
        assert_eq!(m.len(), 4, "the climbing and absolute paths are dropped");
        let root = Path::new("up.zip");
        assert_eq!(
            m.list(root).unwrap(),
            vec![
                (root.join("a"), true),
                (root.join("b"), true),
                (root.join("top.txt"), false)
            ]
        );
        assert_eq!(
            m.list(&root.join("a")).unwrap(),
            vec![(root.join("a/1.png"), false), (root.join("a/deep"), true)]
        );
        assert_eq!(m.entry(&root.join("a")).unwrap(), Entry::Folder);
        assert_eq!(m.entry(&root.join("a/1.png")).unwrap(), Entry::File(2));
        assert_eq!(m.read(&root.join("b/2.png")).unwrap(), vec![2]);
        let err = m.read(&root.join("c.png")).unwrap_err();
        assert!(err.to_string().contains("up.zip/c.png"), "{err}");
        assert!(m.list(&root.join("nothing")).is_err());
    }

    fn png(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb(rgb));
        let mut bytes = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
        bytes
    }

    /// A folder zipped whole: `pets/cats/*.png`, `pets/dogs/*.png`.
    fn pets() -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        for i in 0..6 {
            files.push((format!("pets/cats/{i}.png"), png(8, 8, [200, 20, 20])));
            files.push((format!("pets/dogs/{i}.png"), png(8, 8, [20, 20, 200])));
        }
        files.push(("pets/dogs/notes.txt".into(), b"not an image".to_vec()));
        files
    }

    #[test]
    fn a_zip_of_class_folders_loads_as_the_folder_would() {
        let dir = tempfile::tempdir().unwrap();
        let zip = dir.path().join("pets.zip");
        std::fs::write(&zip, crate::archive::write(&pets()).unwrap()).unwrap();
        let from_zip = crate::data::load_path(&zip, 0).unwrap();
        for (name, bytes) in pets() {
            let path = dir.path().join("unzipped").join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let from_folder = crate::data::load_path(&dir.path().join("unzipped/pets"), 0).unwrap();
        assert_eq!(from_zip.class_names, ["cats", "dogs"]);
        assert_eq!(from_zip.name, "pets");
        assert!(from_zip.train.is_colour());
        assert_eq!(from_zip.train.len() + from_zip.test.len(), 12);
        assert_eq!(from_zip.train.pixels, from_folder.train.pixels);
        assert_eq!(from_zip.test.labels, from_folder.test.labels);
    }

    #[test]
    fn uploads_load_by_name_as_files_or_as_a_folder() {
        // MNIST's own gzip IDX files, uploaded as four files: read as a folder of pairs.
        let mnist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/data/mnist");
        let idx: Vec<(String, Vec<u8>)> =
            ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
                .iter()
                .map(|n| (n.to_string(), std::fs::read(mnist.join(n)).unwrap()))
                .collect();
        let value = keep_upload(idx);
        assert_eq!(value, "upload:t10k-images-idx3-ubyte.gz and 1 more");
        let spec = crate::data::DatasetSpec::parse(&value);
        let data = spec.load(0).unwrap();
        assert_eq!(data.train.len() + data.test.len(), 10_000);
        assert_eq!(data.class_names.len(), 10);
        // A zip uploaded as one file.
        let value = keep_upload(vec![(
            "pets.zip".into(),
            crate::archive::write(&pets()).unwrap(),
        )]);
        let zipped = crate::data::DatasetSpec::parse(&value).load(0).unwrap();
        assert_eq!(zipped.class_names, ["cats", "dogs"]);
        // A damaged zip is refused, naming the file.
        let mut bytes = crate::archive::write(&pets()).unwrap();
        bytes.truncate(bytes.len() - 30);
        let value = keep_upload(vec![("broken.zip".into(), bytes)]);
        let err = crate::data::DatasetSpec::parse(&value)
            .load(0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("broken.zip") && err.contains("not a readable zip"),
            "{err}"
        );
        // Only the latest two uploads are held (the only test that keeps any); an older one
        // says so.
        let err = spec.load(0).unwrap_err().to_string();
        assert!(err.contains("upload them again"), "{err}");
    }
}
