//! Opening the window, with a renderer that suits the machine.

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
    };
    eframe::run_native(
        "latent-atlas",
        options,
        Box::new(move |cc| Ok(Box::new(LatentAtlasApp::new(cc, start)))),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
