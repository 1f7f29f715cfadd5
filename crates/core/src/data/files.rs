//! Where a dataset's files are read from: the disk, or files held in memory (the browser's
//! uploads, a zip's entries). The loaders ask only these questions of a source, so a folder of
//! images, a pair of IDX files or a `.npz` load the same way from either.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// Files handed over in memory (a browser's uploads, several files dropped at once): a value,
/// passed (as an `Arc`) to whatever loads from it; nothing keeps it but its holders. One file
/// is loaded as itself (a `.npz`, `.npy` or `.zip`); several as a folder (IDX pairs, or
/// images).
#[derive(Debug)]
pub struct Upload {
    /// Its name: the one file's, or the first's and how many more.
    pub name: String,
    /// The files.
    pub files: Memory,
    /// What to load among them: a single file, or the root as a folder.
    pub path: PathBuf,
}

impl Upload {
    /// The upload of `files` (name, bytes; names may hold folders, `/`-separated).
    pub fn new(files: Vec<(String, Vec<u8>)>) -> Self {
        let name = match files.as_slice() {
            [(only, _)] => only.clone(),
            [(first, _), rest @ ..] => format!("{first} and {} more", rest.len()),
            [] => "no files".to_owned(),
        };
        let root = match files.len() {
            1 => "",
            _ => name.as_str(),
        };
        Self {
            path: PathBuf::from(&name),
            files: Memory::new(root, files),
            name,
        }
    }

    /// The dataset value that names it in configs and messages (`upload:` and its name).
    pub fn value(&self) -> String {
        format!("{UPLOAD_PREFIX}{}", self.name)
    }
}

/// Two uploads are the same only when they are one value: comparing their bytes would cost a
/// pass over them each time two configs are compared.
impl PartialEq for Upload {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

/// Where a dataset or a saved run is read from: a path on disk, or files held in memory.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A folder or a file on disk.
    Disk(PathBuf),
    /// Files held in memory.
    Upload(Arc<Upload>),
}

impl Source {
    /// What messages and configs call it: the path, or the upload's value.
    pub fn name(&self) -> String {
        match self {
            Source::Disk(path) => path.display().to_string(),
            Source::Upload(upload) => upload.value(),
        }
    }
}

impl From<PathBuf> for Source {
    fn from(path: PathBuf) -> Self {
        Source::Disk(path)
    }
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
    fn uploads_load_as_files_or_as_a_folder() {
        use crate::data::DatasetSpec;
        // MNIST's own gzip IDX files, uploaded as two files: read as a folder of pairs.
        let mnist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/data/mnist");
        let idx: Vec<(String, Vec<u8>)> =
            ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
                .iter()
                .map(|n| (n.to_string(), std::fs::read(mnist.join(n)).unwrap()))
                .collect();
        let upload = Arc::new(Upload::new(idx));
        assert_eq!(
            upload.value(),
            "upload:t10k-images-idx3-ubyte.gz and 1 more"
        );
        let data = DatasetSpec::Upload(upload.clone()).load(0).unwrap();
        assert_eq!(data.train.len() + data.test.len(), 10_000);
        assert_eq!(data.class_names.len(), 10);
        // A zip uploaded as one file.
        let zip = Upload::new(vec![(
            "pets.zip".into(),
            crate::archive::write(&pets()).unwrap(),
        )]);
        let zipped = DatasetSpec::Upload(Arc::new(zip)).load(0).unwrap();
        assert_eq!(zipped.class_names, ["cats", "dogs"]);
        // A damaged zip is refused, naming the file.
        let mut bytes = crate::archive::write(&pets()).unwrap();
        bytes.truncate(bytes.len() - 30);
        let broken = Upload::new(vec![("broken.zip".into(), bytes)]);
        let err = DatasetSpec::Upload(Arc::new(broken))
            .load(0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("broken.zip") && err.contains("not a readable zip"),
            "{err}"
        );
        // An upload equals only itself.
        let again = Upload::new(vec![(
            "pets.zip".into(),
            crate::archive::write(&pets()).unwrap(),
        )]);
        assert_eq!(upload, upload.clone());
        assert_ne!(*upload, again);
    }
}
