//! Latent Atlas in a browser tab: the same explorer, started on a page's canvas. The page
//! calls `start(canvasId)` once (the address may ask for `?dataset=`, `?probes=`, `?backend=`
//! and `?fresh`),
//! may poll `latentAtlasStatus()` for the run's progress as JSON, and may start over with
//! another family with `latentAtlasFamily(name)` (a test's or a page script's handles on it).
//! Everything else is the app's own code; this crate only adds what a page needs to start it
//! and to train between frames. Off the web it is empty.

#[cfg(target_arch = "wasm32")]
mod page {
    use wasm_bindgen::JsCast;
    use wasm_bindgen::prelude::*;

    use latent_atlas_app::shell::{Answer, DialogPurpose, Shell, dropped_name, upload_of};
    use latent_atlas_app::{LatentAtlasApp, StartOptions};

    /// The explorer as the page runs it: eframe reaches it between frames for the handles
    /// below (`as_any_mut`, which eframe asks of a page's app); every other call goes to the
    /// explorer as it is.
    struct Page(LatentAtlasApp);

    impl eframe::App for Page {
        fn logic(&mut self, ctx: &egui::Context, frame: &mut eframe::Frame) {
            self.0.logic(ctx, frame);
        }

        fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
            self.0.ui(ui, frame);
        }

        fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
            Some(&mut *self)
        }

        fn save(&mut self, storage: &mut dyn eframe::Storage) {
            self.0.save(storage);
        }

        fn on_exit(&mut self, gl: Option<&eframe::glow::Context>) {
            self.0.on_exit(gl);
        }
    }

    /// The page's file picker (rfd's, awaited) and dropped files, read as the browser reads
    /// them: asynchronously, each arriving as an upload held in memory.
    struct PageShell;

    impl Shell for PageShell {
        fn pick(&self, purpose: DialogPurpose, answer: Answer) {
            wasm_bindgen_futures::spawn_local(async move {
                let dialog = rfd::AsyncFileDialog::new();
                let picked = match purpose {
                    DialogPurpose::LoadRun => dialog
                        .set_title("A saved run: the .zip that Save run downloaded")
                        .add_filter("saved run", &["zip"])
                        .pick_file()
                        .await
                        .map(|one| vec![one]),
                    _ => dialog
                        .set_title(
                            "Dataset: a .npz, a .zip of images or IDX files, or the files themselves",
                        )
                        .pick_files()
                        .await,
                };
                let mut files = Vec::new();
                for handle in picked.unwrap_or_default() {
                    files.push((handle.file_name(), Ok(handle.read().await)));
                }
                // Nothing picked: the dialog was cancelled.
                answer((!files.is_empty()).then(|| upload_of(files)));
            });
        }

        fn read_dropped(&self, files: Vec<egui::DroppedFileHandle>, answer: Answer) {
            wasm_bindgen_futures::spawn_local(async move {
                let mut read = Vec::new();
                for f in &files {
                    read.push((dropped_name(f), f.bytes_async().await));
                }
                answer(Some(upload_of(read)));
            });
        }
    }

    unsafe extern "C" {
        /// The module's static constructors (the registries some dependencies fill at load
        /// time, cubecl's among them), synthesised by the linker.
        fn __wasm_call_ctors();
    }

    /// Runs the constructors once, as the page's glue instantiates the module. Without an
    /// explicit call the linker runs them again at the start of every call into the module
    /// (each value the page hands WebAssembly): measured in Chromium's profiler, half of
    /// launching a WebGPU training step went to rerunning them.
    #[wasm_bindgen(start)]
    fn run_constructors() {
        // SAFETY: called once, first, before any other code of the module runs; the
        // constructors only register plugins.
        unsafe { __wasm_call_ctors() }
    }

    /// Starts the explorer on the canvas with id `canvas_id`; training begins at once on the
    /// built-in MNIST (or the remembered settings).
    #[wasm_bindgen]
    pub async fn start(canvas_id: String) -> Result<(), JsValue> {
        let search = web_sys::window()
            .and_then(|w| w.location().search().ok())
            .unwrap_or_default();
        // `?log=info` (or `debug`) writes more to the browser's console: the device's pace.
        let level = if search.contains("log=debug") {
            log::LevelFilter::Debug
        } else if search.contains("log=info") {
            log::LevelFilter::Info
        } else {
            log::LevelFilter::Warn
        };
        eframe::WebLogger::init(level).ok();
        let canvas = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.get_element_by_id(&canvas_id))
            .ok_or_else(|| JsValue::from_str(&format!("no element with id {canvas_id}")))?
            .dyn_into::<web_sys::HtmlCanvasElement>()
            .map_err(|_| JsValue::from_str(&format!("{canvas_id} is not a canvas")))?;
        let start = StartOptions::from_query(&search);
        open_gpu(&start).await;
        let runner = std::rc::Rc::new(eframe::WebRunner::new());
        runner
            .start(
                canvas,
                eframe::WebOptions::default(),
                Box::new(move |cc| {
                    let app = LatentAtlasApp::new(cc, start).with_shell(Box::new(PageShell));
                    Ok(Box::new(Page(app)))
                }),
            )
            .await?;
        RUNNER.with(|r| *r.borrow_mut() = Some(runner.clone()));
        train_between_frames(runner);
        Ok(())
    }

    /// How long the browser's GPU may take to open and answer a first computation before the
    /// page trains on its CPU instead.
    #[cfg(feature = "webgpu")]
    const GPU_OPEN_LIMIT_MS: i32 = 30_000;

    /// Opens the browser's GPU (WebGPU) for training, before the explorer starts: unless the
    /// address asks for the CPU, and for at most [`GPU_OPEN_LIMIT_MS`]. Where it fails, `auto`
    /// trains on the CPU and says why.
    #[cfg(feature = "webgpu")]
    async fn open_gpu(start: &StartOptions) {
        use latent_atlas_core::backend::{self, BackendChoice};
        if start.backend == Some(BackendChoice::Cpu) {
            backend::refuse_webgpu("the address asks for the CPU (?backend=cpu)".into());
            return;
        }
        let opened = first_of(
            backend::open_webgpu(|| sleep_ms(1), start.profile_kernels),
            sleep_ms(GPU_OPEN_LIMIT_MS),
        )
        .await;
        match opened {
            Some(Ok(adapter)) => log::info!("training device: {adapter}"),
            Some(Err(why)) => log::warn!("WebGPU: {why}"),
            None => backend::refuse_webgpu(format!(
                "the browser's GPU did not open within {} s",
                GPU_OPEN_LIMIT_MS / 1000
            )),
        }
    }

    /// A page built without WebGPU trains on its CPU.
    #[cfg(not(feature = "webgpu"))]
    async fn open_gpu(_start: &StartOptions) {}

    /// A future that ends after `ms` milliseconds (the browser's timer: it hands control back).
    #[cfg(feature = "webgpu")]
    async fn sleep_ms(ms: i32) {
        let promise = js_sys::Promise::new(&mut |resolve, _| {
            if let Some(window) = web_sys::window() {
                let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
            }
        });
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    }

    /// `work`'s outcome, or `None` when `deadline` ends first.
    #[cfg(feature = "webgpu")]
    async fn first_of<T>(
        work: impl std::future::Future<Output = T>,
        deadline: impl std::future::Future<Output = ()>,
    ) -> Option<T> {
        use std::task::Poll;
        let mut work = std::pin::pin!(work);
        let mut deadline = std::pin::pin!(deadline);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(v) = work.as_mut().poll(cx) {
                return Poll::Ready(Some(v));
            }
            match deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    thread_local! {
        /// The page's runner, for the handles below to reach the app between frames.
        static RUNNER: std::cell::RefCell<Option<std::rc::Rc<eframe::WebRunner>>> =
            const { std::cell::RefCell::new(None) };
    }

    /// `f` on the app, unless it has not started, a frame holds it, or it stopped after a
    /// panic.
    fn with_app<R>(f: impl FnOnce(&mut LatentAtlasApp) -> R) -> Option<R> {
        let runner = RUNNER.with(|r| r.borrow().clone())?;
        let mut page = runner.app_mut::<Page>()?;
        Some(f(&mut page.0))
    }

    /// Training's turns between frames, from a timer: at once again while it trains (the
    /// browser still draws and reads input between two turns), every 50 ms while idle.
    fn train_between_frames(runner: std::rc::Rc<eframe::WebRunner>) {
        let running = match runner.app_mut::<Page>() {
            Some(mut page) => page.0.train_slice(latent_atlas_app::TRAINING_SLICE),
            // A frame holds the app, or the app has stopped after a panic.
            None if runner.has_panicked() => return,
            None => false,
        };
        let again = Closure::once_into_js(move || train_between_frames(runner));
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
                again.unchecked_ref(),
                if running { 0 } else { 50 },
            );
        }
    }

    /// Starts over with another family, by name or label (`vae`, `f-VAE`, ...), as the
    /// family menu and Reset would.
    #[wasm_bindgen(js_name = latentAtlasFamily)]
    pub fn latent_atlas_family(name: String) -> Result<(), JsValue> {
        with_app(|app| app.request_family(&name))
            .unwrap_or_else(|| Err("the explorer is not running".to_owned()))
            .map_err(|e| JsValue::from_str(&e))
    }

    /// The run's progress as JSON: `step`, `epoch`, `samples_per_sec`, `loss`, `family`,
    /// `dataset`, `state` and the last error, if any (`{}` before the app has started).
    #[wasm_bindgen(js_name = latentAtlasStatus)]
    pub fn latent_atlas_status() -> String {
        with_app(|app| app.status_json()).unwrap_or_else(|| "{}".to_owned())
    }
}
