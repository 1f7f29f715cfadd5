//! The `latent-atlas` program: the explorer, or one of its commands.

#![recursion_limit = "256"]

fn main() -> std::process::ExitCode {
    quiet_sessionless_vulkan();
    latent_atlas::cli::main()
}

/// Mesa's device-select Vulkan layer, which the loader puts into every Vulkan program, connects
/// to a Wayland display to learn the default GPU, and where there is no desktop session (SSH, a
/// container, CI) libwayland prints "error: XDG_RUNTIME_DIR is invalid or not set in the
/// environment." for every GPU opened: not an error here, since the program picks its adapter
/// itself (`backend::choose_adapter`). Without a session the layer is turned off.
fn quiet_sessionless_vulkan() {
    let session =
        std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|dir| std::path::Path::new(&dir).is_dir());
    if !session && std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: the first thing `main` does, before any other thread exists.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}
