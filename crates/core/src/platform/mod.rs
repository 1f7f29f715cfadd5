//! What the core asks of the machine it runs on, in one place: threads, a cache folder, the
//! memory available, random bytes, the priority of background work, downloads. The desktops (Linux, macOS, Windows)
//! have all of them; a browser tab (`wasm32`) has one thread and no files, so each answer
//! there is the one the core can do without: no threads (the caller turns the training loop
//! itself), no cache, no memory figure. Time comes from `web_time`, which is std's clock on
//! the desktops and the browser's on the web. Long work runs through [`Runner`]: on a thread
//! where there are threads, else a slice at a time between frames.

use std::path::PathBuf;

mod read;
mod runner;

pub use read::PendingRead;
pub use runner::{Runner, Step, Work, panic_message, run_steps};

/// Whether this is the browser build.
pub const IS_WEB: bool = cfg!(target_arch = "wasm32");

/// Whether this platform can start threads.
pub const HAS_THREADS: bool = !IS_WEB;

/// Whether this platform has folders to read and write (else files arrive as uploads and
/// leave as downloads: [`offer_download`]).
pub const HAS_FILES: bool = !IS_WEB;

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

/// Runs `f` on a thread of its own and waits for it at most `deadline`: its result, or, when it
/// has not finished by then, an error saying what was waited for and how long (the thread is
/// left to finish or not; whatever it holds stays with it). A panic in `f` comes back as one.
/// Without threads (a browser) `f` runs in place. For waits that might never end: opening a
/// device, a first round trip through it.
pub fn with_deadline<R: Send + 'static>(
    what: &str,
    deadline: std::time::Duration,
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, String> {
    if !HAS_THREADS {
        return Ok(f());
    }
    let (send, receive) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("latent-atlas: {what}"))
        .spawn(move || {
            let _ = send.send(f());
        });
    if let Err(e) = spawned {
        return Err(format!("no thread could be started for {what}: {e}"));
    }
    match receive.recv_timeout(deadline) {
        Ok(value) => Ok(value),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(format!(
            "gave up waiting for {what} after {} s",
            deadline.as_secs_f64().round()
        )),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err(format!("{what} panicked (see the message above)"))
        }
    }
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

/// Bytes of memory this machine has available for new work, if known: Linux's
/// `MemAvailable`, macOS's free and reclaimable pages, Windows's available physical memory
/// (read through `sysinfo`); `None` in a browser, which does not say.
pub fn available_memory() -> Option<u128> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let mut system = sysinfo::System::new();
        system.refresh_memory();
        let bytes = system.available_memory();
        (bytes > 0).then_some(u128::from(bytes))
    }
    #[cfg(target_arch = "wasm32")]
    None
}

/// `N` bytes from the operating system's random source (`getrandom`: `getrandom(2)` on Linux,
/// `getentropy` on macOS, `ProcessPrng` on Windows, `crypto.getRandomValues` in a browser).
pub fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("the operating system gave no random bytes: {e}"))?;
    Ok(bytes)
}

/// Lowers the calling thread's priority, for background work that should not slow training
/// much but must still finish: nice 10 on Linux (under CFS such a thread gets about a tenth of
/// a busy core, so the end-of-epoch evaluation, about 0.4 s of work, keeps up with epochs of a
/// few seconds), the utility QoS class on macOS, below-normal priority on Windows. (Linux's
/// `SCHED_IDLE` was tried: with the window drawing in software and training on both cores it
/// starved, and no test figure appeared until the run paused.) A no-op elsewhere.
pub fn lower_thread_priority() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: setpriority on this thread's own id changes only its scheduling weight.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
    #[cfg(target_os = "macos")]
    // SAFETY: sets the calling thread's own QoS class; no memory is touched.
    unsafe {
        libc::pthread_set_qos_class_self_np(libc::qos_class_t::QOS_CLASS_UTILITY, 0);
    }
    #[cfg(windows)]
    // SAFETY: GetCurrentThread is a pseudo-handle to this thread, valid for the call.
    unsafe {
        use windows_sys::Win32::System::Threading::{
            GetCurrentThread, SetThreadPriority, THREAD_PRIORITY_BELOW_NORMAL,
        };
        SetThreadPriority(GetCurrentThread(), THREAD_PRIORITY_BELOW_NORMAL);
    }
}

/// What a download of `files` hands over, as (name, bytes): the one file as itself, several
/// as one zip archive called `zip_name`.
pub fn download_bundle(
    files: &[(String, Vec<u8>)],
    zip_name: &str,
) -> anyhow::Result<(String, Vec<u8>)> {
    match files {
        [] => anyhow::bail!("nothing was written to download"),
        [(name, bytes)] => Ok((name.clone(), bytes.clone())),
        _ => Ok((zip_name.to_owned(), crate::archive::write(files)?)),
    }
}

/// Offers `files` to the user as one download (see [`download_bundle`]); returns its name.
/// Only a browser offers downloads: elsewhere this is an error, and files go to a folder.
#[cfg(not(target_arch = "wasm32"))]
pub fn offer_download(files: &[(String, Vec<u8>)], zip_name: &str) -> anyhow::Result<String> {
    let (name, _) = download_bundle(files, zip_name)?;
    anyhow::bail!("{name}: downloads are offered only in a browser; choose a folder instead")
}

/// Offers `files` to the user as one download (see [`download_bundle`]); returns its name.
#[cfg(target_arch = "wasm32")]
pub fn offer_download(files: &[(String, Vec<u8>)], zip_name: &str) -> anyhow::Result<String> {
    use wasm_bindgen::JsCast;
    let (name, bytes) = download_bundle(files, zip_name)?;
    let refused = |e: wasm_bindgen::JsValue| {
        anyhow::anyhow!("{name}: the browser refused the download: {e:?}")
    };
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(bytes.as_slice()));
    let blob = web_sys::Blob::new_with_u8_array_sequence(&parts).map_err(refused)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(refused)?;
    let window = web_sys::window().ok_or_else(|| anyhow::anyhow!("{name}: no window"))?;
    let link = window
        .document()
        .ok_or_else(|| anyhow::anyhow!("{name}: no document"))?
        .create_element("a")
        .map_err(refused)?
        .dyn_into::<web_sys::HtmlAnchorElement>()
        .map_err(|_| anyhow::anyhow!("{name}: no link element"))?;
    link.set_href(&url);
    link.set_download(&name);
    link.click();
    // The browser has the bytes once the download starts; the address is let go a minute on.
    let release = wasm_bindgen::closure::Closure::once_into_js(move || {
        let _ = web_sys::Url::revoke_object_url(&url);
    });
    let _ = window
        .set_timeout_with_callback_and_timeout_and_arguments_0(release.unchecked_ref(), 60_000);
    Ok(name)
}

/// The text the browser keeps under `key` in the page's local storage, if any (always `None`
/// off the web, where files keep such things).
pub fn stored_text(key: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    {
        web_sys::window()?
            .local_storage()
            .ok()??
            .get_item(key)
            .ok()?
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = key;
        None
    }
}

/// Keeps `value` under `key` in the page's local storage. `false` where it cannot: off the web,
/// or when the browser refuses (storage full or switched off), which only costs the work of
/// making the value again.
pub fn store_text(key: &str, value: &str) -> bool {
    #[cfg(target_arch = "wasm32")]
    {
        let storage = web_sys::window().and_then(|w| w.local_storage().ok().flatten());
        storage.is_some_and(|s| s.set_item(key, value).is_ok())
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (key, value);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_with_a_deadline_returns_the_value_or_says_what_it_waited_for() {
        let quick = with_deadline("a sum", std::time::Duration::from_secs(30), || 2 + 2);
        assert_eq!(quick, Ok(4));
        let slow = with_deadline("a sleeper", std::time::Duration::from_millis(100), || {
            std::thread::sleep(std::time::Duration::from_secs(3));
        });
        let e = slow.unwrap_err();
        assert!(e.contains("a sleeper") && e.contains("gave up"), "{e}");
        let panicked = with_deadline("a panic", std::time::Duration::from_secs(30), || {
            panic!("deliberately")
        });
        assert!(panicked.unwrap_err().contains("panicked"));
    }

    #[test]
    fn the_machine_reports_memory_and_random_bytes() {
        let have = available_memory().expect("the desktops report their memory");
        assert!(have > 1 << 20, "{have} bytes");
        let (a, b) = (random_bytes::<16>().unwrap(), random_bytes::<16>().unwrap());
        assert_ne!(a, b);
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_background_thread_runs_at_nice_10() {
        let nice = std::thread::spawn(|| {
            lower_thread_priority();
            // SAFETY: reads this thread's own priority.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
        })
        .join()
        .unwrap();
        assert_eq!(nice, 10);
    }

    #[test]
    fn one_file_downloads_as_itself_and_several_as_a_zip() {
        let one = vec![("a.png".to_owned(), vec![1, 2, 3])];
        assert_eq!(
            download_bundle(&one, "all.zip").unwrap(),
            ("a.png".to_owned(), vec![1, 2, 3])
        );
        let two = vec![
            ("a.png".to_owned(), vec![1, 2, 3]),
            ("b.csv".to_owned(), b"x\n".to_vec()),
        ];
        let (name, zip) = download_bundle(&two, "all.zip").unwrap();
        assert_eq!(name, "all.zip");
        assert_eq!(crate::archive::read_entries(&zip, |_| true).unwrap(), two);
        assert!(download_bundle(&[], "all.zip").is_err());
    }

    #[test]
    fn chunked_map_keeps_the_order_of_every_item() {
        for n in [0, 1, 2, 7, 1000] {
            let items: Vec<u32> = (0..n).collect();
            let out = map_chunked(&items, |x| x * 3);
            assert_eq!(out, items.iter().map(|x| x * 3).collect::<Vec<_>>());
        }
    }
}
