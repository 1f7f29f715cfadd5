//! Writing files so that a crash, a full disk or a second writer never leaves half a file:
//! the bytes go into a uniquely named temporary file beside the target, are flushed to disk,
//! renamed over the target, and the folder's entry is flushed too.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically. A crash leaves either the old file or the new one,
/// never half of one; two writers of the same path (two runs caching one evaluator) each
/// write their own temporary file, and the last rename wins.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fail = |e: &dyn std::fmt::Display| anyhow::anyhow!("{}: cannot write: {e}", path.display());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| fail(&e))?;
    tmp.write_all(bytes).map_err(|e| fail(&e))?;
    tmp.as_file().sync_all().map_err(|e| fail(&e))?;
    tmp.persist(path).map_err(|e| fail(&e.error))?;
    sync_dir(dir);
    Ok(())
}

/// Flushes a folder's entries (the rename) to disk, where the platform allows it.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Encodes an image as PNG and writes it atomically.
pub fn save_png(path: &Path, image: &image::RgbaImage) -> anyhow::Result<()> {
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| anyhow::anyhow!("{}: cannot encode PNG: {e}", path.display()))?;
    atomic_write(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_files_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        atomic_write(&path, b"first").unwrap();
        atomic_write(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let err = atomic_write(&dir.path().join("missing/b.txt"), b"x").unwrap_err();
        assert!(err.to_string().contains("missing/b.txt"));
    }

    #[test]
    fn concurrent_writers_of_one_path_never_mix_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.bin");
        let payloads: Vec<Vec<u8>> = (0..4u8).map(|k| vec![k; 1 << 20]).collect();
        std::thread::scope(|s| {
            for p in &payloads {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..5 {
                        atomic_write(path, p).unwrap();
                    }
                });
            }
        });
        let written = std::fs::read(&path).unwrap();
        assert!(payloads.contains(&written), "the file mixes two writers");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
