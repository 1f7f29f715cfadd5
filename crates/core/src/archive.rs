//! Zip archives in memory: reading the entries of one (a `.npz`, an uploaded folder, a saved
//! run) and writing one (what the browser build downloads). Stored and deflated entries, with
//! the zip64 fields large NumPy archives use; nothing else of the format.

use std::io::{Read, Write};

/// The largest size one entry may inflate to.
pub const MAX_ENTRY_BYTES: u64 = 4 << 30;

/// The most entries read from one archive.
pub const MAX_ENTRIES: u64 = 100_000;

fn u16_at(b: &[u8], i: usize) -> Option<u64> {
    b.get(i..i.checked_add(2)?)
        .map(|s| u64::from(u16::from_le_bytes([s[0], s[1]])))
}

fn u32_at(b: &[u8], i: usize) -> Option<u64> {
    b.get(i..i.checked_add(4)?)
        .map(|s| u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]])))
}

fn u64_at(b: &[u8], i: usize) -> Option<u64> {
    b.get(i..i.checked_add(8)?)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
}

/// The files of a zip archive whose names `keep` accepts, in the archive's order, as
/// (name, bytes). Folders (names ending in `/`) are left out. The error says what is wrong
/// with the archive, without its name (the caller knows it).
pub fn read_entries(
    bytes: &[u8],
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let truncated = || "truncated".to_owned();
    // The end-of-central-directory record: within the last 64 KiB + 22 bytes.
    let from = bytes.len().saturating_sub(65_557);
    let eocd = (from..bytes.len().saturating_sub(21))
        .rev()
        .find(|&i| bytes[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
        .ok_or("no end of central directory (not a zip file)")?;
    let mut entries = u16_at(bytes, eocd + 10).ok_or_else(truncated)?;
    let mut cd = u32_at(bytes, eocd + 16).ok_or_else(truncated)?;
    // Zip64: the locator just before the record points at the zip64 record.
    if (entries == 0xffff || cd == 0xffff_ffff)
        && eocd >= 20
        && bytes[eocd - 20..eocd - 16] == [0x50, 0x4b, 0x06, 0x07]
    {
        let at = u64_at(bytes, eocd - 12).ok_or_else(truncated)? as usize;
        entries = u64_at(bytes, at.saturating_add(32)).ok_or("truncated zip64 record")?;
        cd = u64_at(bytes, at.saturating_add(48)).ok_or("truncated zip64 record")?;
    }
    let mut out = Vec::new();
    let mut at = usize::try_from(cd).map_err(|_| truncated())?;
    for _ in 0..entries.min(MAX_ENTRIES) {
        if bytes.get(at..at.saturating_add(4)) != Some(&[0x50, 0x4b, 0x01, 0x02][..]) {
            return Err("a damaged central directory".into());
        }
        let field16 = |o| u16_at(bytes, at + o).ok_or_else(truncated);
        let field32 = |o| u32_at(bytes, at + o).ok_or_else(truncated);
        let method = field16(10)?;
        let mut compressed = field32(20)?;
        let mut size = field32(24)?;
        let (name_len, extra_len, comment_len) = (field16(28)?, field16(30)?, field16(32)?);
        let mut offset = field32(42)?;
        let name_at = at + 46;
        let name = bytes
            .get(name_at..name_at + name_len as usize)
            .ok_or_else(truncated)?;
        let name = String::from_utf8_lossy(name).into_owned();
        // Zip64 sizes and offset, in this order, for the fields that overflowed.
        let extra_at = name_at + name_len as usize;
        let extra = bytes
            .get(extra_at..extra_at + extra_len as usize)
            .ok_or_else(truncated)?;
        let mut e = 0;
        while e + 4 <= extra.len() {
            let id = u16_at(extra, e).unwrap_or(0);
            let len = u16_at(extra, e + 2).unwrap_or(0) as usize;
            if id == 1 {
                let mut f = e + 4;
                for value in [&mut size, &mut compressed, &mut offset] {
                    if *value == 0xffff_ffff {
                        *value = u64_at(extra, f).ok_or("truncated zip64 field")?;
                        f += 8;
                    }
                }
            }
            e += 4 + len;
        }
        at = extra_at + extra_len as usize + comment_len as usize;
        if name.ends_with('/') || !keep(&name) {
            continue;
        }
        if size > MAX_ENTRY_BYTES {
            return Err(format!(
                "{name} would inflate to {size} bytes, more than 4 GiB"
            ));
        }
        let local = usize::try_from(offset).map_err(|_| truncated())?;
        if bytes.get(local..local.saturating_add(4)) != Some(&[0x50, 0x4b, 0x03, 0x04][..]) {
            return Err(format!("{name}: a damaged local header"));
        }
        let skip = u16_at(bytes, local + 26).ok_or_else(truncated)?
            + u16_at(bytes, local + 28).ok_or_else(truncated)?;
        let start = local + 30 + skip as usize;
        let data = bytes
            .get(start..start.saturating_add(compressed as usize))
            .ok_or_else(|| format!("{name} runs past the end of the file"))?;
        let raw = match method {
            0 => data.to_vec(),
            8 => {
                let mut out = Vec::new();
                flate2::read::DeflateDecoder::new(data)
                    .take(size)
                    .read_to_end(&mut out)
                    .map_err(|e| format!("{name}: {e}"))?;
                out
            }
            m => {
                return Err(format!(
                    "{name}: compression method {m} (only stored and deflate are read)"
                ));
            }
        };
        out.push((name, raw));
    }
    Ok(out)
}

/// A zip archive of `files` (name, bytes), each deflated (stored where that is no smaller).
/// Archives past 4 GiB or 65,535 entries are refused: nothing written here comes near.
pub fn write(files: &[(String, Vec<u8>)]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, bytes) in files {
        let mut crc = flate2::Crc::new();
        crc.update(bytes);
        let crc = crc.sum();
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes)?;
        let deflated = encoder.finish()?;
        let (method, data) = match deflated.len() < bytes.len() {
            true => (8u16, deflated.as_slice()),
            false => (0u16, bytes.as_slice()),
        };
        let fits = |n: usize| u32::try_from(n).ok();
        let (Some(size), Some(compressed), Some(offset), Ok(name_len)) = (
            fits(bytes.len()),
            fits(data.len()),
            fits(out.len()),
            u16::try_from(name.len()),
        ) else {
            anyhow::bail!("{name}: too large for a zip archive without zip64");
        };
        // The fields a local header and a central directory entry share: version needed,
        // flags (bit 11: UTF-8 names), method, time, date, CRC, sizes, name length, extra.
        let mut shared = Vec::new();
        shared.extend(20u16.to_le_bytes());
        shared.extend((1u16 << 11).to_le_bytes());
        shared.extend(method.to_le_bytes());
        shared.extend(0u16.to_le_bytes());
        shared.extend(((1u16 << 5) | 1).to_le_bytes()); // 1 January 1980
        shared.extend(crc.to_le_bytes());
        shared.extend(compressed.to_le_bytes());
        shared.extend(size.to_le_bytes());
        shared.extend(name_len.to_le_bytes());
        shared.extend(0u16.to_le_bytes());
        out.extend([0x50, 0x4b, 0x03, 0x04]);
        out.extend(&shared);
        out.extend(name.as_bytes());
        out.extend(data);
        central.extend([0x50, 0x4b, 0x01, 0x02]);
        central.extend(20u16.to_le_bytes()); // made by
        central.extend(&shared);
        // Comment length, first disk, internal and external attributes.
        central.extend([0u8; 10]);
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let (Ok(count), Some(cd_at), Some(cd_len)) = (
        u16::try_from(files.len()),
        u32::try_from(out.len()).ok(),
        u32::try_from(central.len()).ok(),
    ) else {
        anyhow::bail!("too many or too large files for a zip archive without zip64");
    };
    out.extend(central);
    out.extend([0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0]);
    out.extend(count.to_le_bytes());
    out.extend(count.to_le_bytes());
    out.extend(cd_len.to_le_bytes());
    out.extend(cd_at.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<(String, Vec<u8>)> {
        vec![
            ("a.txt".into(), b"first".to_vec()),
            ("dir/b.bin".into(), vec![7u8; 10_000]),
            ("empty".into(), Vec::new()),
            ("d\u{e9}j\u{e0}.csv".into(), b"x,y\n1,2\n".to_vec()),
        ]
    }

    #[test]
    fn what_is_written_reads_back_entry_for_entry() {
        let zip = write(&files()).unwrap();
        assert_eq!(read_entries(&zip, |_| true).unwrap(), files());
        // The repeated bytes were deflated, the short text stored.
        assert!(zip.len() < 2_000, "{} bytes", zip.len());
        let only: Vec<String> = read_entries(&zip, |n| n.starts_with("dir/"))
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(only, ["dir/b.bin"]);
    }

    #[test]
    fn damaged_archives_are_refused_with_a_reason() {
        let zip = write(&files()).unwrap();
        assert!(
            read_entries(b"PK nothing", |_| true)
                .unwrap_err()
                .contains("not a zip")
        );
        assert!(read_entries(&zip[..zip.len() / 2], |_| true).is_err());
        let mut bad = zip.clone();
        // The first local header's signature.
        bad[0] = b'X';
        let err = read_entries(&bad, |_| true).unwrap_err();
        assert!(err.contains("a.txt: a damaged local header"), "{err}");
        // Every single-byte change either still reads or fails with a message; none panics.
        for i in 0..zip.len() {
            let mut flipped = zip.clone();
            flipped[i] ^= 0x5a;
            let _ = read_entries(&flipped, |_| true);
        }
    }

    #[test]
    fn system_unzip_reads_what_is_written() {
        let Ok(unzip) = which("unzip") else { return };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.zip");
        std::fs::write(&path, write(&files()).unwrap()).unwrap();
        let status = std::process::Command::new(unzip)
            .args(["-tq"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(status.status.success(), "{status:?}");
    }

    fn which(name: &str) -> Result<std::path::PathBuf, ()> {
        std::env::var_os("PATH")
            .and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
            .ok_or(())
    }
}
