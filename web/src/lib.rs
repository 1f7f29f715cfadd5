//! Latent Atlas in a browser tab: the same explorer, started on a page's canvas. The page
//! calls `start(canvasId)` once (the address may ask for `?dataset=`, `?probes=` and `?fresh`),
//! may poll `latentAtlasStatus()` for the run's progress as JSON, and may start over with
//! another family with `latentAtlasFamily(name)` (a test's or a page script's handles on it).
//! Everything else is the app's own code; this crate only adds what a page needs to start it
//! and to train between frames. Off the web it is empty.

#[cfg(target_arch = "wasm32")]
mod page {
    use wasm_bindgen::JsCast;
    use wasm_bindgen::prelude::*;

    use latent_atlas_app::{LatentAtlasApp, StartOptions};

    /// Starts the explorer on the canvas with id `canvas_id`; training begins at once on the
    /// built-in MNIST (or the remembered settings).
    #[wasm_bindgen]
    pub async fn start(canvas_id: String) -> Result<(), JsValue> {
        eframe::WebLogger::init(log::LevelFilter::Warn).ok();
        let search = web_sys::window()
            .and_then(|w| w.location().search().ok())
            .unwrap_or_default();
        let canvas = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.get_element_by_id(&canvas_id))
            .ok_or_else(|| JsValue::from_str(&format!("no element with id {canvas_id}")))?
            .dyn_into::<web_sys::HtmlCanvasElement>()
            .map_err(|_| JsValue::from_str(&format!("{canvas_id} is not a canvas")))?;
        let start = StartOptions::from_query(&search);
        let runner = std::rc::Rc::new(eframe::WebRunner::new());
        runner
            .start(
                canvas,
                eframe::WebOptions::default(),
                Box::new(move |cc| Ok(Box::new(LatentAtlasApp::new(cc, start)))),
            )
            .await?;
        RUNNER.with(|r| *r.borrow_mut() = Some(runner.clone()));
        train_between_frames(runner);
        Ok(())
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
        let mut app = runner.app_mut::<LatentAtlasApp>()?;
        Some(f(&mut app))
    }

    /// Training's turns between frames, from a timer: at once again while it trains (the
    /// browser still draws and reads input between two turns), every 50 ms while idle.
    fn train_between_frames(runner: std::rc::Rc<eframe::WebRunner>) {
        let running = match runner.app_mut::<LatentAtlasApp>() {
            Some(mut app) => app.train_slice(latent_atlas_app::TRAINING_SLICE),
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
