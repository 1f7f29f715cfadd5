//! What the core asks of the machine it runs on, in one place: threads, a cache folder, the
//! memory available, the priority of background work. The desktops (Linux, macOS, Windows)
//! have all of them; a browser tab (`wasm32`) has one thread and no files, so each answer
//! there is the one the core can do without: no threads (the caller turns the training loop
//! itself), no cache, no memory figure. Time comes from `web_time`, which is std's clock on
//! the desktops and the browser's on the web.

use std::path::PathBuf;

/// Whether this is the browser build.
pub const IS_WEB: bool = cfg!(target_arch = "wasm32");

/// Whether this platform can start threads.
pub const HAS_THREADS: bool = !IS_WEB;

/// How many threads work shared out by [`map_chunked`] may use.
pub fn parallelism() -> usize {
    match HAS_THREADS {
        true => std::thread::available_parallelism().map_or(1, |n| n.get()),
        false => 1,
    }
}

/// `f` over every item, in order; the items are shared out between [`parallelism`] scoped
/// threads (run on the caller's thread where there is only one).
pub fn map_chunked<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = parallelism().min(items.len().max(1));
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let per = items.len().div_ceil(threads).max(1);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|chunk| s.spawn(move || chunk.iter().map(f).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// The platform's cache folder for this app (`latent-atlas` under `$XDG_CACHE_HOME` or
/// `~/.cache` on Linux, `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on Windows, else the
/// temporary folder), or `$LATENT_ATLAS_CACHE`; `None` in a browser.
pub fn cache_dir() -> Option<PathBuf> {
    if !HAS_THREADS {
        // No file system: std's temporary folder would panic there.
        return None;
    }
    if let Some(dir) = std::env::var_os("LATENT_ATLAS_CACHE") {
        return Some(PathBuf::from(dir));
    }
    Some(
        dirs::cache_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("latent-atlas"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_map_keeps_the_order_of_every_item() {
        for n in [0, 1, 2, 7, 1000] {
            let items: Vec<u32> = (0..n).collect();
            let out = map_chunked(&items, |x| x * 3);
            assert_eq!(out, items.iter().map(|x| x * 3).collect::<Vec<_>>());
        }
    }
}
