//! Opening the window, with a renderer that suits the machine, and the desktop's side of its
//! file dialogs and dropped files ([`DesktopShell`]).

use crate::app::shell::{Answer, DialogPurpose, Picked, Shell, dropped_name, upload_of};
use crate::app::{LatentAtlasApp, StartOptions};
use crate::backend::BackendChoice;

/// Which renderer draws the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RendererChoice {
    /// wgpu on a hardware GPU, otherwise OpenGL (glow): wgpu on a software adapter is slow.
    #[default]
    Auto,
    /// OpenGL through glow.
    Glow,
    /// wgpu.
    Wgpu,
}

/// `latent-atlas` with no subcommand: the window.
#[derive(clap::Args, Debug, Default)]
pub struct GuiArgs {
    /// Renderer.
    #[arg(long, value_enum, default_value = "auto")]
    pub renderer: RendererChoice,
    /// Compute backend: cpu, gpu, auto, or remote:ws://HOST:PORT (default: the one
    /// remembered, else cpu).
    #[arg(long)]
    pub backend: Option<BackendChoice>,
    /// Dataset to open (default: the one remembered, else mnist).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Ignore remembered settings.
    #[arg(long)]
    pub fresh: bool,
    /// Test samples whose posteriors the plane draws (100 to 10,000; default: remembered,
    /// else 2,000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(100..=10_000))]
    pub probe_size: Option<u32>,
}

/// Opens the explorer; training starts at once.
pub fn run(args: GuiArgs) -> anyhow::Result<()> {
    let renderer = match args.renderer {
        RendererChoice::Glow => eframe::Renderer::Glow,
        RendererChoice::Wgpu => eframe::Renderer::Wgpu,
        RendererChoice::Auto => match crate::backend::hardware_adapter() {
            Ok(_) => eframe::Renderer::Wgpu,
            Err(_) => eframe::Renderer::Glow,
        },
    };
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Latent Atlas")
            .with_app_id("latent-atlas")
            .with_inner_size([1280.0, 820.0])
            .with_min_inner_size([800.0, 560.0]),
        renderer,
        ..Default::default()
    };
    let start = StartOptions {
        autostart: true,
        backend: args.backend,
        dataset: args.dataset,
        fresh: args.fresh,
        probe_size: args.probe_size.map(|n| n as usize),
        arch: None,
        // The desktop's GPU runtime reads CUBECL_DEBUG_OPTION=profile instead.
        profile_kernels: false,
    };
    eframe::run_native(
        "latent-atlas",
        options,
        Box::new(move |cc| {
            Ok(Box::new(
                LatentAtlasApp::new(cc, start).with_shell(Box::new(DesktopShell)),
            ))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}

/// The desktops' file dialogs (rfd's: the portal or zenity on Linux, the system's own on macOS
/// and Windows), each on a thread of its own, and dropped files read on one.
pub struct DesktopShell;

impl Shell for DesktopShell {
    fn pick(&self, purpose: DialogPurpose, answer: Answer) {
        // A thread that cannot start drops `answer`: the app then says the dialog could not
        // open.
        let _ = std::thread::Builder::new()
            .name("file-dialog".into())
            .spawn(move || {
                let dialog = rfd::FileDialog::new();
                let picked = match purpose {
                    DialogPurpose::Dataset => dialog
                        .set_title("Dataset folder (IDX files or images)")
                        .pick_folder(),
                    DialogPurpose::ExportDir => dialog.set_title("Export folder").pick_folder(),
                    DialogPurpose::SaveRun => {
                        dialog.set_title("Save the run into a folder").pick_folder()
                    }
                    DialogPurpose::LoadRun => {
                        dialog.set_title("Load a saved run folder").pick_folder()
                    }
                };
                answer(picked.map(Picked::Path));
            });
    }

    fn read_dropped(&self, files: Vec<egui::DroppedFileHandle>, answer: Answer) {
        let _ = std::thread::Builder::new()
            .name("dropped-files".into())
            .spawn(move || {
                let read = files.iter().map(|f| (dropped_name(f), f.bytes())).collect();
                answer(Some(upload_of(read)));
            });
    }
}
