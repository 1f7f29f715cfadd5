//! The one place where the compute device is chosen: a CPU backend by default, burn's wgpu
//! backend on request (`gpu`), or the GPU when a real one exists (`auto`). A software wgpu
//! adapter (lavapipe, llvmpipe: device type CPU) is not counted as a GPU: it trains ten times
//! slower than the CPU backends.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

/// Which backend to run on. On the command line: `cpu`, `gpu`, `cuda`, `auto`, `flex`,
/// `ndarray` or `remote:ws://HOST:PORT`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendChoice {
    /// The default CPU backend (burn's `flex`, pure Rust).
    #[default]
    Cpu,
    /// A hardware GPU through burn's wgpu backend; an error when there is none.
    Gpu,
    /// An NVIDIA GPU through burn's CUDA backend, which loads the driver at run time (in builds
    /// with the `cuda` feature); an error when there is none.
    Cuda,
    /// The GPU when a hardware one exists, otherwise the CPU.
    Auto,
    /// burn's `flex` CPU backend.
    Flex,
    /// burn's `ndarray` CPU backend (deprecated upstream; kept for comparison; in builds with
    /// the `ndarray` feature).
    Ndarray,
    /// A `latent-atlas serve` server at this WebSocket address (`ws://HOST:PORT`), through
    /// burn's remote backend (in builds with the `remote` feature).
    Remote(String),
}

impl std::str::FromStr for BackendChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "cpu" => BackendChoice::Cpu,
            "gpu" => BackendChoice::Gpu,
            "cuda" => BackendChoice::Cuda,
            "auto" => BackendChoice::Auto,
            "flex" => BackendChoice::Flex,
            "ndarray" => BackendChoice::Ndarray,
            _ => match s.strip_prefix("remote:") {
                Some(url) if url.starts_with("ws://") || url.starts_with("wss://") => {
                    let host = url.split_once("://").map_or("", |(_, rest)| rest);
                    if host.is_empty() || host.contains(char::is_whitespace) {
                        return Err(format!(
                            "{url:?} is not a WebSocket address like ws://HOST:PORT"
                        ));
                    }
                    BackendChoice::Remote(url.to_owned())
                }
                Some(url) => {
                    return Err(format!(
                        "{url:?} is not a WebSocket address: write remote:ws://HOST:PORT"
                    ));
                }
                None => {
                    return Err(format!(
                        "unknown backend {s:?}: cpu, gpu, cuda, auto, flex, ndarray or remote:ws://HOST:PORT"
                    ));
                }
            },
        })
    }
}

impl std::fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendChoice::Cpu => f.write_str("cpu"),
            BackendChoice::Gpu => f.write_str("gpu"),
            BackendChoice::Cuda => f.write_str("cuda"),
            BackendChoice::Auto => f.write_str("auto"),
            BackendChoice::Flex => f.write_str("flex"),
            BackendChoice::Ndarray => f.write_str("ndarray"),
            BackendChoice::Remote(url) => write!(f, "remote:{url}"),
        }
    }
}

/// A chosen device and how to describe it to the user.
#[derive(Clone, Debug)]
pub struct Backend {
    /// The device tensors and models live on (without autodiff).
    pub device: Device,
    /// A short description: "CPU (flex)" or "GPU: <adapter name> (Vulkan)".
    pub description: String,
    /// Something the user should know about the choice (a fallback), if anything.
    pub notice: Option<String>,
    /// Whether trainers keep the training images on the device (a GPU or a remote server,
    /// where each upload crosses a bus or a network).
    pub images_on_device: bool,
    /// Whether its reads are asynchronous (WebGPU in a page: a read completes only after the
    /// page hands control back to the browser), so that training never waits on one: steps
    /// are launched and settled apart, and everything that reads the model reads a CPU copy.
    pub reads_async: bool,
}

/// Why no device could be had.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// `gpu` was asked for but none is usable.
    #[error("no GPU available: {0}")]
    NoGpu(String),
    /// The backend was left out of this build.
    #[error("this build has no {0} backend: rebuild with `--features {0}`")]
    NotBuilt(&'static str),
    /// The backend has no place in the browser build (a saved setting from the desktop).
    #[error("the {0} backend is not in the browser build: the browser trains on its CPU")]
    NotInBrowser(&'static str),
    /// The remote server could not be used.
    #[error("remote backend: {0}")]
    Remote(String),
}

/// Whether this build has a GPU backend (burn's wgpu: Vulkan, Metal or DirectX 12 on the
/// desktops, WebGPU in a page).
pub const HAS_GPU: bool = cfg!(feature = "wgpu");

/// The default CPU backend, chosen by measurement (see docs/measured.md: flex vs ndarray).
pub const DEFAULT_CPU: BackendChoice = BackendChoice::Flex;

impl BackendChoice {
    /// Picks the device.
    pub fn select(&self) -> Result<Backend, BackendError> {
        match self {
            #[cfg(all(not(target_arch = "wasm32"), feature = "remote"))]
            BackendChoice::Remote(url) => crate::remote::connect(url)
                .map(|c| Backend {
                    device: c.device,
                    description: c.description,
                    notice: None,
                    images_on_device: true,
                    reads_async: false,
                })
                .map_err(BackendError::Remote),
            #[cfg(all(not(target_arch = "wasm32"), not(feature = "remote")))]
            BackendChoice::Remote(_) => Err(BackendError::NotBuilt("remote")),
            #[cfg(target_arch = "wasm32")]
            BackendChoice::Remote(_) => Err(BackendError::NotInBrowser("remote")),
            BackendChoice::Cpu => DEFAULT_CPU.select(),
            BackendChoice::Flex => Ok(cpu(Device::flex(), "flex")),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)] // kept on purpose, for the benchmark's comparison
            BackendChoice::Ndarray => Ok(cpu(Device::ndarray(), "ndarray")),
            #[cfg(not(feature = "ndarray"))]
            BackendChoice::Ndarray => Err(BackendError::NotBuilt("ndarray")),
            // A page's `?backend=gpu` takes whatever WebGPU adapter the browser offers.
            BackendChoice::Gpu => {
                gpu::select(software_gpu_allowed() || cfg!(target_arch = "wasm32"))
            }
            #[cfg(feature = "cuda")]
            BackendChoice::Cuda => cuda::select(),
            #[cfg(not(feature = "cuda"))]
            BackendChoice::Cuda => Err(BackendError::NotBuilt("cuda")),
            BackendChoice::Auto => {
                #[cfg(feature = "cuda")]
                if let Ok(backend) = cuda::select() {
                    return Ok(backend);
                }
                match gpu::select(false) {
                    Ok(backend) => Ok(backend),
                    Err(e) => {
                        let mut backend = DEFAULT_CPU.select()?;
                        backend.notice = Some(format!("{e}; training on the CPU instead"));
                        Ok(backend)
                    }
                }
            }
        }
    }
}

/// Opens the browser's WebGPU device for `gpu` and `auto` (a page awaits this before training
/// starts: opening a device is asynchronous there); its description, or why not.
#[cfg(all(feature = "wgpu", target_arch = "wasm32"))]
pub async fn open_webgpu<S: std::future::Future<Output = ()>>(
    sleep: impl Fn() -> S,
    profile: bool,
) -> Result<String, String> {
    gpu::open(sleep, profile).await
}

/// Records that the page will not train on WebGPU, and why (`?backend=cpu`, no answer in time):
/// `gpu` then says so and `auto` takes the CPU with that notice.
#[cfg(all(feature = "wgpu", target_arch = "wasm32"))]
pub fn refuse_webgpu(why: String) {
    gpu::refuse(why)
}

/// Whether `--backend gpu` (and `serve --device gpu`) may take a software adapter when no
/// hardware one is found: `LATENT_ATLAS_SOFTWARE_GPU=1`, for testing the GPU path on a machine
/// without a GPU (lavapipe through Vulkan preferred, llvmpipe through GL otherwise). `auto`
/// never takes one: a software adapter trains far slower than the CPU backend.
pub fn software_gpu_allowed() -> bool {
    std::env::var("LATENT_ATLAS_SOFTWARE_GPU").is_ok_and(|v| v == "1")
}

/// Draws every lazily initialised parameter of `module` now. burn initialises a parameter at
/// its first use, so without this the draws would happen at the first training step, outside
/// [`device_rng_lock`].
pub fn initialise_now<M: burn::module::Module>(module: &M) {
    struct Touch;
    impl burn::module::ModuleVisitor for Touch {
        fn visit_float<const D: usize>(
            &mut self,
            param: &burn::module::Param<burn::tensor::Tensor<D>>,
        ) {
            let _ = param.val();
        }
    }
    module.visit(&mut Touch);
}

/// The lock on a backend's random stream. burn seeds and draws parameter initialisations (and
/// dropout masks) from one stream per backend, shared by every thread, so whoever seeds it and
/// builds a model, or draws from it while training, holds this lock: two runs in one process (a
/// comparison, the test suite) then never interleave their draws, and the same seed gives the
/// same model. Each backend has a lock of its own, so a run stuck on one device (a GPU that
/// stopped answering) never holds up runs on another. Nothing waits for ever: after
/// [`RNG_LOCK_DEADLINE`] the waiting thread panics, naming the stream and who holds it.
pub fn device_rng_lock(device: &Device) -> RngStreamGuard {
    rng_stream_lock(rng_stream(device), RNG_LOCK_DEADLINE)
}

/// How long [`device_rng_lock`] waits before it gives up. No draw under the lock takes more
/// than a training step; ten minutes is a device that has stopped answering.
pub const RNG_LOCK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

/// The name of the random stream `device` draws from: its backend ("Flex", "Cube", ...), an
/// autodiff device answering for the device it wraps.
pub fn rng_stream(device: &Device) -> String {
    let text = format!("{:?}", device.clone().inner());
    let text = text.strip_prefix("Device<").unwrap_or(&text);
    text.split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Held while a backend's random stream is in use; released when dropped.
#[must_use = "the stream is released when the guard is dropped"]
pub struct RngStreamGuard {
    stream: String,
}

struct RngStreams {
    /// The streams in use, with the name of the thread holding each.
    held: std::sync::Mutex<Vec<(String, String)>>,
    released: std::sync::Condvar,
}

static RNG_STREAMS: RngStreams = RngStreams {
    held: std::sync::Mutex::new(Vec::new()),
    released: std::sync::Condvar::new(),
};

/// Takes the stream named `stream`, waiting at most `deadline` (then panicking with who held it).
pub fn rng_stream_lock(stream: String, deadline: std::time::Duration) -> RngStreamGuard {
    let start = web_time::Instant::now();
    let mut held = RNG_STREAMS.held.lock().unwrap_or_else(|p| p.into_inner());
    while let Some((_, holder)) = held.iter().find(|(s, _)| *s == stream) {
        let waited = start.elapsed();
        if waited >= deadline {
            panic!(
                "waited {:.0} s for the {stream} backend's random stream, held by thread {holder:?} \
                 (a device that stopped answering?)",
                waited.as_secs_f64()
            );
        }
        if !crate::platform::HAS_THREADS {
            panic!("the {stream} backend's random stream is taken twice on one thread");
        }
        held = RNG_STREAMS
            .released
            .wait_timeout(
                held,
                (deadline - waited).min(std::time::Duration::from_secs(1)),
            )
            .map(|(guard, _)| guard)
            .unwrap_or_else(|p| p.into_inner().0);
    }
    let holder = std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_owned();
    held.push((stream.clone(), holder));
    RngStreamGuard { stream }
}

impl Drop for RngStreamGuard {
    fn drop(&mut self) {
        let mut held = RNG_STREAMS.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = held.iter().position(|(s, _)| *s == self.stream) {
            held.swap_remove(i);
        }
        drop(held);
        RNG_STREAMS.released.notify_all();
    }
}

/// Tunes glibc's allocator for training on the CPU: every tensor operation allocates its
/// result, and buffers above the default mmap threshold (128 KiB, raised only as such buffers
/// are freed) are mapped and unmapped each time, with a page fault per 4 KiB touched; freed
/// memory at the top of the heap is also given back and faulted in again. Keeping buffers of
/// up to 32 MiB in the heap and the heap's top unreturned removes both. Set
/// `LATENT_ATLAS_DEFAULT_MALLOC=1` to keep glibc's defaults (to measure the difference).
/// Returns whether the settings were applied.
pub fn tune_allocator() -> bool {
    if std::env::var_os("LATENT_ATLAS_DEFAULT_MALLOC").is_some() {
        return false;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; called before other threads
        // allocate heavily, and glibc serialises it with its own lock in any case.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20) == 1
                && libc::mallopt(libc::M_TOP_PAD, 64 << 20) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Runs `f` (a training loop) on a thread of a pool of its own, one thread per core of the
/// global pool, and returns what it returns. From there the CPU kernels' parallel passes share
/// their work with the pool's other threads directly: from a thread outside every pool each
/// pass hands all its work to the global pool and sleeps until it is done, two thread switches
/// a pass (about 5% of the GAN's iteration, docs/measured.md). The loop keeps that one thread
/// throughout, so state kept per thread (burn's running statistics) stays whole. `f` runs
/// where it is called when there are no threads (a browser), on one core, or on a pool's
/// thread already. The fused kernels' levers narrowed on the calling thread go with it.
pub fn on_compute_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if !crate::platform::HAS_THREADS || rayon::current_thread_index().is_some() {
        return f();
    }
    let threads = rayon::current_num_threads();
    if threads < 2 {
        return f();
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("latent-atlas-compute-{i}"))
        .build();
    match pool {
        Ok(pool) => {
            let levers = crate::fused::levers();
            pool.install(move || crate::fused::with_levers(levers, f))
        }
        Err(_) => f(),
    }
}

/// A pool of one thread at low priority ([`crate::platform::lower_thread_priority`]) for background work that
/// uses the CPU backends' parallel kernels: inside it they stay on that thread. `None` when the
/// thread cannot be started.
pub fn background_pool(name: &'static str) -> Option<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .thread_name(move |_| name.to_owned())
        .start_handler(|_| crate::platform::lower_thread_priority())
        .build()
        .ok()
}

/// burn's wgpu device: the best hardware adapter, or, where `allow_software` is set and none
/// exists, a software one (lavapipe through Vulkan before llvmpipe through GL), described as
/// such. `--backend gpu` passes [`software_gpu_allowed`]; the `gpu_` tests pass `true`, so that
/// the GPU path is exercised on machines without a GPU.
pub fn wgpu(allow_software: bool) -> Result<Backend, BackendError> {
    gpu::select(allow_software)
}

/// The name of a hardware GPU adapter, or why there is none (software adapters do not count).
pub fn hardware_adapter() -> Result<String, String> {
    gpu::hardware_adapter()
}

fn cpu(device: Device, name: &str) -> Backend {
    Backend {
        device,
        description: format!("CPU ({name})"),
        notice: None,
        images_on_device: false,
        reads_async: false,
    }
}

/// burn's CUDA backend: device 0, checked with one small computation (the driver is loaded at
/// run time, and a machine without one fails there).
#[cfg(feature = "cuda")]
mod cuda {
    use burn::tensor::{Device, Tensor};

    use super::{Backend, BackendError};

    pub fn select() -> Result<Backend, BackendError> {
        let probe = std::panic::catch_unwind(|| {
            let device = Device::cuda(0);
            let one = crate::data::batch::to_vec(Tensor::<1>::ones([1], &device));
            (device, one)
        });
        match probe {
            Ok((device, one)) if one == [1.0] => Ok(Backend {
                device,
                description: "GPU: CUDA device 0".into(),
                notice: None,
                images_on_device: true,
                reads_async: false,
            }),
            Ok(_) => Err(BackendError::NoGpu(
                "the CUDA device computed a wrong value".into(),
            )),
            Err(panic) => Err(BackendError::NoGpu(format!(
                "no usable CUDA device: {}",
                panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("the CUDA backend failed to start")
            ))),
        }
    }
}

/// What wgpu reports of one adapter, as far as the choice of a compute device needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    pub name: String,
    pub kind: AdapterKind,
    pub api: GraphicsApi,
}

/// An adapter's device type, as wgpu reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterKind {
    Discrete,
    Integrated,
    Virtual,
    /// A software rasteriser (lavapipe, llvmpipe, WARP, SwiftShader).
    Software,
    Other,
}

/// The graphics API an adapter is reached through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphicsApi {
    Vulkan,
    Metal,
    Dx12,
    /// OpenGL (or OpenGL ES): never used for training, see [`choose_adapter`].
    Gl,
    /// WebGPU in a browser.
    WebGpu,
}

/// What a machine without a usable Vulkan adapter should install, on Debian and Ubuntu.
pub const VULKAN_PACKAGES: &str = "libvulkan1 mesa-vulkan-drivers";

/// Picks the adapter to train on from wgpu's list: the best hardware adapter (discrete, then
/// integrated, then virtual), or, with `allow_software` and no hardware one, a software adapter.
/// Adapters reached only through OpenGL are never taken: burn's kernels on wgpu's GL backend
/// deadlock in the autotuner (measured on Mesa's llvmpipe: the first tuned matrix product never
/// returns), so a machine with GL and no Vulkan gets an error that says what to install
/// instead of a run that never ends. The error lists what was found.
pub fn choose_adapter(
    adapters: &[AdapterSummary],
    allow_software: bool,
) -> Result<&AdapterSummary, String> {
    let rank = |a: &AdapterSummary| match a.kind {
        AdapterKind::Discrete => Some(0),
        AdapterKind::Integrated => Some(1),
        AdapterKind::Virtual => Some(2),
        AdapterKind::Software if allow_software => Some(3),
        _ => None,
    };
    if let Some(best) = adapters
        .iter()
        .filter(|a| a.api != GraphicsApi::Gl)
        .filter_map(|a| rank(a).map(|r| (r, a)))
        .min_by_key(|(r, _)| *r)
        .map(|(_, a)| a)
    {
        return Ok(best);
    }
    let found = |a: &AdapterSummary| format!("{} ({:?}, {:?})", a.name, a.api, a.kind);
    let usable_gl = adapters
        .iter()
        .filter(|a| a.api == GraphicsApi::Gl && rank(a).is_some())
        .map(found)
        .collect::<Vec<_>>();
    let software = adapters
        .iter()
        .filter(|a| a.api != GraphicsApi::Gl && a.kind == AdapterKind::Software)
        .map(found)
        .collect::<Vec<_>>();
    let install = format!(
        "install a Vulkan driver: your GPU's, or on Debian and Ubuntu `sudo apt install {VULKAN_PACKAGES}` for a software one (lavapipe; slow, for testing)"
    );
    Err(if !usable_gl.is_empty() {
        format!(
            "wgpu found only OpenGL adapters ({}), and burn's GPU kernels hang on OpenGL; {install}",
            usable_gl.join(", ")
        )
    } else if !software.is_empty() {
        format!(
            "wgpu found only software adapters ({}): set LATENT_ATLAS_SOFTWARE_GPU=1 to train on one anyway (far slower than the CPU backend)",
            software.join(", ")
        )
    } else if adapters.is_empty() {
        format!("wgpu found no adapter; {install}")
    } else {
        format!(
            "wgpu found no adapter it can train on ({}); {install}",
            adapters.iter().map(found).collect::<Vec<_>>().join(", ")
        )
    })
}

/// How long opening a GPU and reading one value back from it may take before the device is
/// given up on (the first kernels compile in that time; a software adapter takes seconds).
pub const GPU_OPEN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

#[cfg(all(feature = "wgpu", not(target_arch = "wasm32")))]
mod gpu {
    use super::{AdapterKind, AdapterSummary, Backend, BackendError, GraphicsApi};
    use burn::tensor::wgpu::{WgpuBackend, wgpu};
    use burn::tensor::{Device, DeviceKind, Tensor};

    /// Polls a future that is ready at once on native platforms (wgpu's adapter listing).
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(v) = future.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::yield_now();
        }
    }

    /// The adapters wgpu sees through `backends`.
    fn adapters_of(backends: wgpu::Backends) -> Vec<AdapterSummary> {
        // An instance of those backends only: one with GL starts EGL, whose probe of Wayland
        // prints "error: XDG_RUNTIME_DIR is invalid" on machines without a session.
        let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        descriptor.backends &= backends;
        let instance = wgpu::Instance::new(descriptor);
        block_on(instance.enumerate_adapters(backends))
            .iter()
            .map(|a| summary(&a.get_info()))
            .collect()
    }

    /// The adapter to train on (see [`super::choose_adapter`]). Only Vulkan, Metal and DirectX
    /// 12 are asked; OpenGL only when they have no adapter at all, to say in the error what was
    /// found (asking EGL makes Mesa print a complaint about Wayland's runtime folder on
    /// machines without one, which is no error of ours).
    fn choose(allow_software: bool) -> Result<AdapterSummary, String> {
        let mut adapters = adapters_of(wgpu::Backends::PRIMARY);
        if adapters.is_empty() {
            adapters = adapters_of(wgpu::Backends::GL);
        }
        super::choose_adapter(&adapters, allow_software).cloned()
    }

    fn summary(info: &wgpu::AdapterInfo) -> AdapterSummary {
        AdapterSummary {
            name: info.name.clone(),
            kind: match info.device_type {
                wgpu::DeviceType::DiscreteGpu => AdapterKind::Discrete,
                wgpu::DeviceType::IntegratedGpu => AdapterKind::Integrated,
                wgpu::DeviceType::VirtualGpu => AdapterKind::Virtual,
                wgpu::DeviceType::Cpu => AdapterKind::Software,
                wgpu::DeviceType::Other => AdapterKind::Other,
            },
            api: match info.backend {
                wgpu::Backend::Vulkan => GraphicsApi::Vulkan,
                wgpu::Backend::Metal => GraphicsApi::Metal,
                wgpu::Backend::Dx12 => GraphicsApi::Dx12,
                wgpu::Backend::BrowserWebGpu => GraphicsApi::WebGpu,
                _ => GraphicsApi::Gl,
            },
        }
    }

    /// The best hardware adapter's description, or why there is none (software adapters and
    /// adapters reached only through OpenGL do not count).
    pub fn hardware_adapter() -> Result<String, String> {
        choose(false).map(|a| format!("{} ({:?})", a.name, a.api))
    }

    /// The wgpu device, opened once per process (burn's runtime can be set up only once for
    /// an adapter kind), later calls sharing it.
    pub fn select(allow_software: bool) -> Result<Backend, BackendError> {
        static OPENED: std::sync::Mutex<Option<Backend>> = std::sync::Mutex::new(None);
        let mut opened = OPENED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(backend) = opened.as_ref()
            && (allow_software || !backend.description.contains("software adapter"))
        {
            return Ok(backend.clone());
        }
        let backend = open(allow_software)?;
        *opened = Some(backend.clone());
        Ok(backend)
    }

    /// Where burn's GPU runtime keeps what it compiles and tunes between runs: the platform's
    /// cache folder (see [`crate::platform::cache_dir`]) under `gpu`, unless a `cubecl.toml`
    /// or `burn.toml` found from the working directory says otherwise. Without this the
    /// runtime keeps it under a `target/` folder beside the nearest `Cargo.toml`, or else in
    /// its own cache folder. Set once, before the first device opens. (Builds without the
    /// `gpu-cache` feature keep the cache in memory, for one process.)
    pub fn configure_kernel_cache() {
        use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig, cache::CacheConfig};
        let user_file = std::env::current_dir().ok().is_some_and(|cwd| {
            cwd.ancestors().any(|dir| {
                ["cubecl.toml", "CubeCL.toml", "burn.toml", "Burn.toml"]
                    .iter()
                    .any(|name| dir.join(name).is_file())
            })
        });
        let Some(cache) = crate::platform::cache_dir().filter(|_| !user_file) else {
            return;
        };
        let mut config = CubeClRuntimeConfig::default();
        config.environment.path = CacheConfig::Directory(cache.join("gpu"));
        // The runtime's environment variables (CUBECL_AUTOTUNE_LEVEL, ...) still apply.
        let _ = CubeClRuntimeConfig::try_set(config.override_from_env());
    }

    fn open(allow_software: bool) -> Result<Backend, BackendError> {
        configure_kernel_cache();
        let best = choose(allow_software).map_err(BackendError::NoGpu)?;
        let kind = match best.kind {
            AdapterKind::Discrete => DeviceKind::DiscreteGpu(0),
            AdapterKind::Integrated => DeviceKind::IntegratedGpu(0),
            AdapterKind::Virtual => DeviceKind::VirtualGpu(0),
            _ => DeviceKind::Cpu,
        };
        let api = match best.api {
            GraphicsApi::Vulkan => WgpuBackend::Vulkan,
            GraphicsApi::Metal => WgpuBackend::Metal,
            GraphicsApi::Dx12 => WgpuBackend::Dx12,
            GraphicsApi::WebGpu => WgpuBackend::WebGpu,
            GraphicsApi::Gl => unreachable!("choose_adapter never takes an OpenGL adapter"),
        };
        // Opening the device and one round trip through it, on a thread with a deadline: a
        // device that never answers is refused instead of hanging whoever asked for it.
        let name = best.name.clone();
        let device = crate::platform::with_deadline(
            "the GPU",
            super::GPU_OPEN_DEADLINE,
            move || -> Result<Device, String> {
                let device = Device::wgpu_options()
                    .device_kind(kind)
                    .graphics_api(api)
                    .init()
                    .map_err(|e| e.to_string())?;
                let two = Tensor::<1>::ones([2], &device) * 2.0;
                match crate::data::batch::to_vec(two).as_slice() {
                    [a, b] if *a == 2.0 && *b == 2.0 => Ok(device),
                    other => Err(format!("it computed 1 * 2 as {other:?}")),
                }
            },
        )
        .map_err(|waited| {
            BackendError::NoGpu(format!(
                "{name} ({:?}) did not answer within {} s ({waited})",
                best.api,
                super::GPU_OPEN_DEADLINE.as_secs()
            ))
        })?
        .map_err(|e| BackendError::NoGpu(format!("{name} could not be opened: {e}")))?;
        // A CPU behind the adapter: dense layers take the product shaped for it.
        latent_atlas_kernels::gpu::set_software_adapter(best.kind == AdapterKind::Software);
        Ok(match best.kind {
            AdapterKind::Software => Backend {
                device,
                description: format!(
                    "GPU: {name} ({:?}, software adapter: LATENT_ATLAS_SOFTWARE_GPU=1)",
                    best.api
                ),
                notice: Some(
                    "training on a software GPU adapter (LATENT_ATLAS_SOFTWARE_GPU=1): for testing the GPU path, far slower than the CPU backend".into(),
                ),
                images_on_device: true,
            reads_async: false,
            },
            _ => Backend {
                device,
                description: format!("GPU: {name} ({:?})", best.api),
                notice: None,
                images_on_device: true,
            reads_async: false,
            },
        })
    }
}

/// WebGPU in a page: the browser's adapter, opened once before training starts (opening is
/// asynchronous there, see [`open_webgpu`]); `gpu` and `auto` then take it.
#[cfg(all(feature = "wgpu", target_arch = "wasm32"))]
mod gpu {
    use super::{Backend, BackendError};
    use burn::tensor::wgpu::wgpu;
    use burn::tensor::{Device, Tensor};

    /// How a software adapter's description ends.
    const SOFTWARE: &str = "software adapter";

    /// The page's WebGPU device, or why there is none (`None`: not asked for).
    static OPENED: std::sync::Mutex<Option<Result<Backend, String>>> = std::sync::Mutex::new(None);

    /// The opened device; a software adapter (SwiftShader, a browser's fallback where there
    /// is no GPU) only where `allow_software` (the page's `?backend=gpu`): `auto` trains on
    /// the CPU there, as on the desktop, since software compute trains far slower.
    pub fn select(allow_software: bool) -> Result<Backend, BackendError> {
        match &*OPENED.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(Ok(backend)) if !allow_software && backend.description.contains(SOFTWARE) => {
                Err(BackendError::NoGpu(format!(
                    "the browser's only WebGPU adapter is a software one ({}), slower than the page's CPU (?backend=gpu trains on it)",
                    backend.description
                )))
            }
            Some(Ok(backend)) => Ok(backend.clone()),
            Some(Err(why)) => Err(BackendError::NoGpu(why.clone())),
            None => Err(BackendError::NoGpu(
                "WebGPU was not opened (the page was asked for ?backend=cpu)".into(),
            )),
        }
    }

    pub fn hardware_adapter() -> Result<String, String> {
        select(true)
            .map(|b| b.description)
            .map_err(|e| e.to_string())
    }

    /// Notes that WebGPU is not to be used, and why (a page's `?backend=cpu`, a deadline).
    pub fn refuse(why: String) {
        *OPENED.lock().unwrap_or_else(|p| p.into_inner()) = Some(Err(why));
    }

    /// Opens the browser's WebGPU adapter for training, checks it with one small computation
    /// read back asynchronously (looking again after each `sleep`, which hands control back to
    /// the browser), and keeps it for [`select`]; says why not otherwise.
    pub async fn open<S: std::future::Future<Output = ()>>(
        sleep: impl Fn() -> S,
        profile: bool,
    ) -> Result<String, String> {
        let opened = try_open(sleep, profile).await;
        let answer = opened
            .as_ref()
            .map(|b| b.description.clone())
            .map_err(Clone::clone);
        *OPENED.lock().unwrap_or_else(|p| p.into_inner()) = Some(opened);
        answer
    }

    async fn try_open<S: std::future::Future<Output = ()>>(
        sleep: impl Fn() -> S,
        profile: bool,
    ) -> Result<Backend, String> {
        // The runtime's settings come from code in a page (no files, no environment): kernels
        // are not timed against each other (each candidate would run ten times per new shape).
        // With `profile` (the page's `?profile`) every kernel's time goes to the console.
        {
            use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig};
            let mut config = CubeClRuntimeConfig::default();
            config.autotune.level = cubecl_runtime::config::autotune::AutotuneLevel::Minimal;
            if profile {
                use cubecl_runtime::config::profiling::ProfilingLogLevel;
                config.profiling.logger.level = ProfilingLogLevel::Basic;
                config.profiling.logger.log = Some(Default::default());
            }
            let _ = CubeClRuntimeConfig::try_set(config);
        }
        let (device, setup) = Device::wgpu_options()
            .init_with_setup_async()
            .await
            .map_err(|e| format!("the browser offered no WebGPU device: {e}"))?;
        let info = setup.adapter.get_info();
        let name = [info.vendor.to_string(), info.name.clone()]
            .into_iter()
            .filter(|s| !s.is_empty() && s != "0")
            .collect::<Vec<_>>()
            .join(" ");
        let name = if name.is_empty() {
            "adapter".to_owned()
        } else {
            name
        };
        // Without timestamp queries burn's runtime cannot time kernels in a browser, and
        // panics at the first one.
        if !setup
            .adapter
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
        {
            return Err(format!(
                "the WebGPU adapter ({name}) has no timestamp queries, which training on it needs"
            ));
        }
        // An error the device reports later is logged, not raised as a panic (which would end
        // the page).
        setup.device.on_uncaptured_error(std::sync::Arc::new(|e| {
            log::error!("WebGPU: {e}");
        }));
        let mut read = crate::platform::PendingRead::of(Tensor::<1>::ones([2], &device) * 2.0);
        while !read.poll() {
            if read.waited() > super::GPU_OPEN_DEADLINE {
                return Err(format!(
                    "the WebGPU adapter ({name}) did not answer a first computation within {} s",
                    super::GPU_OPEN_DEADLINE.as_secs()
                ));
            }
            sleep().await;
        }
        let values = read
            .take()
            .unwrap_or_else(|| Err("read twice".into()))
            .map_err(|e| format!("the WebGPU adapter ({name}) failed a first computation: {e}"))?;
        if values != [2.0, 2.0] {
            return Err(format!(
                "the WebGPU adapter ({name}) computed 1 * 2 as {values:?}"
            ));
        }
        let software = info.device_type == wgpu::DeviceType::Cpu;
        // A CPU behind the adapter: dense layers take the product shaped for it.
        latent_atlas_kernels::gpu::set_software_adapter(software);
        Ok(Backend {
            device,
            description: match software {
                true => format!("WebGPU: {name} ({SOFTWARE})"),
                false => format!("WebGPU: {name}"),
            },
            notice: software.then(|| {
                format!("training on WebGPU through a software adapter ({name}): the browser has no GPU for this page; ?backend=cpu may be faster")
            }),
            images_on_device: true,
            reads_async: true,
        })
    }
}

#[cfg(not(feature = "wgpu"))]
mod gpu {
    use super::{Backend, BackendError};

    const NOT_BUILT: &str = "this build has no GPU support (cargo feature `gpu`)";

    pub fn select(_allow_software: bool) -> Result<Backend, BackendError> {
        Err(BackendError::NoGpu(NOT_BUILT.into()))
    }

    pub fn hardware_adapter() -> Result<String, String> {
        Err(NOT_BUILT.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(name: &str, kind: AdapterKind, api: GraphicsApi) -> AdapterSummary {
        AdapterSummary {
            name: name.into(),
            kind,
            api,
        }
    }

    #[test]
    fn an_opengl_adapter_is_never_taken_and_the_error_says_what_to_install() {
        // A machine with Mesa's GL and no Vulkan driver: llvmpipe through GL only.
        let gl_only = [adapter(
            "llvmpipe (LLVM 15.0.6, 256 bits)",
            AdapterKind::Software,
            GraphicsApi::Gl,
        )];
        for allow in [true, false] {
            let e = choose_adapter(&gl_only, allow).unwrap_err();
            assert!(e.contains(VULKAN_PACKAGES), "{e}");
        }
        let e = choose_adapter(&gl_only, true).unwrap_err();
        assert!(e.contains("llvmpipe") && e.contains("OpenGL"), "{e}");
        // A hardware GPU reached only through GL is refused too.
        let hardware_gl = [adapter("Old GPU", AdapterKind::Integrated, GraphicsApi::Gl)];
        let e = choose_adapter(&hardware_gl, false).unwrap_err();
        assert!(e.contains("Old GPU") && e.contains(VULKAN_PACKAGES), "{e}");
        let e = choose_adapter(&[], true).unwrap_err();
        assert!(
            e.contains("no adapter") && e.contains(VULKAN_PACKAGES),
            "{e}"
        );
    }

    #[test]
    fn hardware_comes_first_and_software_only_when_allowed() {
        let lavapipe = adapter(
            "llvmpipe (LLVM 15)",
            AdapterKind::Software,
            GraphicsApi::Vulkan,
        );
        let llvmpipe = adapter("llvmpipe (LLVM 15)", AdapterKind::Software, GraphicsApi::Gl);
        let both = [llvmpipe.clone(), lavapipe.clone()];
        assert_eq!(choose_adapter(&both, true), Ok(&lavapipe));
        let e = choose_adapter(&both, false).unwrap_err();
        assert!(e.contains("LATENT_ATLAS_SOFTWARE_GPU=1"), "{e}");
        let integrated = adapter("iGPU", AdapterKind::Integrated, GraphicsApi::Vulkan);
        let discrete = adapter("dGPU", AdapterKind::Discrete, GraphicsApi::Dx12);
        let gl_discrete = adapter("dGPU", AdapterKind::Discrete, GraphicsApi::Gl);
        let all = [lavapipe, gl_discrete, integrated.clone(), discrete.clone()];
        assert_eq!(choose_adapter(&all, true), Ok(&discrete));
        assert_eq!(choose_adapter(&all[..3], true), Ok(&integrated));
    }

    #[test]
    fn each_backend_has_its_own_random_stream() {
        assert_eq!(rng_stream(&Device::flex()), "Flex");
        assert_eq!(rng_stream(&Device::flex().autodiff()), "Flex");
    }

    #[test]
    fn a_stream_held_elsewhere_stalls_only_its_own_takers_and_only_until_the_deadline() {
        // Channels with deadlines rather than barriers: a holder that died early fails the test
        // instead of leaving it waiting.
        let limit = std::time::Duration::from_secs(30);
        let (held, is_held) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::Builder::new()
            .name("stuck holder".into())
            .spawn(move || {
                let _guard = rng_stream_lock("TestStuck".into(), RNG_LOCK_DEADLINE);
                let _ = held.send(());
                let _ = released.recv_timeout(limit);
            })
            .unwrap();
        is_held
            .recv_timeout(limit)
            .expect("the holder took the stream");
        // Another stream is free at once.
        let start = std::time::Instant::now();
        drop(rng_stream_lock(
            "TestOther".into(),
            std::time::Duration::from_millis(50),
        ));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        // The held one gives up at its deadline, naming the holder.
        let taker = std::thread::spawn(|| {
            let _guard = rng_stream_lock("TestStuck".into(), std::time::Duration::from_millis(200));
        });
        let panic = taker.join().unwrap_err();
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            message.contains("TestStuck") && message.contains("stuck holder"),
            "{message}"
        );
        release.send(()).unwrap();
        holder.join().unwrap();
        // Released: taken again at once.
        drop(rng_stream_lock(
            "TestStuck".into(),
            std::time::Duration::from_millis(50),
        ));
    }
}
