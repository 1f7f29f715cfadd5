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

/// The default CPU backend, chosen by measurement (see docs/measured.md: flex vs ndarray).
pub const DEFAULT_CPU: BackendChoice = BackendChoice::Flex;

impl BackendChoice {
    /// Picks the device.
    pub fn select(&self) -> Result<Backend, BackendError> {
        match self {
            #[cfg(not(target_arch = "wasm32"))]
            BackendChoice::Remote(url) => crate::remote::connect(url),
            #[cfg(target_arch = "wasm32")]
            BackendChoice::Remote(_) => Err(BackendError::NotInBrowser("remote")),
            BackendChoice::Cpu => DEFAULT_CPU.select(),
            BackendChoice::Flex => Ok(cpu(Device::flex(), "flex")),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)] // kept on purpose, for the benchmark's comparison
            BackendChoice::Ndarray => Ok(cpu(Device::ndarray(), "ndarray")),
            #[cfg(not(feature = "ndarray"))]
            BackendChoice::Ndarray => Err(BackendError::NotBuilt("ndarray")),
            BackendChoice::Gpu => gpu::select(software_gpu_allowed()),
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

/// The lock on the device's random stream. burn seeds and draws parameter initialisations
/// (and dropout masks) from one stream per backend, shared by every thread, so whoever seeds it
/// and builds a model, or draws from it while training, holds this lock: two runs in one
/// process (a comparison, the test suite) then never interleave their draws, and the same seed
/// gives the same model.
pub fn device_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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

#[cfg(feature = "gpu")]
mod gpu {
    use super::{Backend, BackendError};
    use burn::tensor::wgpu::{WgpuBackend, wgpu};
    use burn::tensor::{Device, DeviceKind};

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

    /// The best hardware adapter's description, or why there is none.
    pub fn hardware_adapter() -> Result<String, String> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        block_on(instance.enumerate_adapters(wgpu::Backends::all()))
            .iter()
            .map(|a| a.get_info())
            .find(|a| {
                matches!(
                    a.device_type,
                    wgpu::DeviceType::DiscreteGpu
                        | wgpu::DeviceType::IntegratedGpu
                        | wgpu::DeviceType::VirtualGpu
                )
            })
            .map(|a| format!("{} ({:?})", a.name, a.backend))
            .ok_or_else(|| "no hardware adapter".to_owned())
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
    /// cache folder (see [`crate::evaluator::cache_dir`]) under `gpu`, unless a `cubecl.toml`
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
        let Some(cache) = crate::evaluator::cache_dir().filter(|_| !user_file) else {
            return;
        };
        let mut config = CubeClRuntimeConfig::default();
        config.environment.path = CacheConfig::Directory(cache.join("gpu"));
        // The runtime's environment variables (CUBECL_AUTOTUNE_LEVEL, ...) still apply.
        let _ = CubeClRuntimeConfig::try_set(config.override_from_env());
    }

    fn open(allow_software: bool) -> Result<Backend, BackendError> {
        configure_kernel_cache();
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapters: Vec<wgpu::AdapterInfo> =
            block_on(instance.enumerate_adapters(wgpu::Backends::all()))
                .iter()
                .map(|a| a.get_info())
                .collect();
        let rank = |t: wgpu::DeviceType| match t {
            wgpu::DeviceType::DiscreteGpu => Some(0),
            wgpu::DeviceType::IntegratedGpu => Some(1),
            wgpu::DeviceType::VirtualGpu => Some(2),
            _ => None,
        };
        let hardware = adapters
            .iter()
            .filter(|a| rank(a.device_type).is_some())
            .min_by_key(|a| rank(a.device_type));
        if hardware.is_none() && allow_software {
            // Vulkan (lavapipe) before GL (llvmpipe): through GL, autotune tries kernels that
            // need subgroups and logs validation errors before it falls back.
            let api = |a: &wgpu::AdapterInfo| match a.backend {
                wgpu::Backend::Vulkan => Some((0, WgpuBackend::Vulkan)),
                wgpu::Backend::Gl => Some((1, WgpuBackend::Gl)),
                _ => None,
            };
            if let Some((info, (_, graphics))) = adapters
                .iter()
                .filter(|a| a.device_type == wgpu::DeviceType::Cpu)
                .filter_map(|a| api(a).map(|k| (a, k)))
                .min_by_key(|(_, (rank, _))| *rank)
            {
                let device: Device = Device::wgpu_options()
                    .device_kind(DeviceKind::Cpu)
                    .graphics_api(graphics)
                    .init()
                    .map_err(|e| {
                        BackendError::NoGpu(format!("{} could not be opened: {e}", info.name))
                    })?;
                return Ok(Backend {
                    device,
                    description: format!(
                        "GPU: {} ({:?}, software adapter: LATENT_ATLAS_SOFTWARE_GPU=1)",
                        info.name, info.backend
                    ),
                    notice: Some(
                        "training on a software GPU adapter (LATENT_ATLAS_SOFTWARE_GPU=1): for testing the GPU path, far slower than the CPU backend".into(),
                    ),
                    images_on_device: true,
                });
            }
        }
        let Some(best) = hardware else {
            let software: Vec<String> = adapters
                .iter()
                .map(|a| format!("{} ({:?})", a.name, a.device_type))
                .collect();
            return Err(BackendError::NoGpu(if software.is_empty() {
                "wgpu found no adapter".into()
            } else {
                format!("wgpu found only software adapters: {}", software.join(", "))
            }));
        };
        let kind = match best.device_type {
            wgpu::DeviceType::DiscreteGpu => DeviceKind::DiscreteGpu(0),
            wgpu::DeviceType::IntegratedGpu => DeviceKind::IntegratedGpu(0),
            _ => DeviceKind::VirtualGpu(0),
        };
        let device: Device = Device::wgpu_options()
            .device_kind(kind)
            .init()
            .map_err(|e| BackendError::NoGpu(format!("{} could not be opened: {e}", best.name)))?;
        Ok(Backend {
            device,
            description: format!("GPU: {} ({:?})", best.name, best.backend),
            notice: None,
            images_on_device: true,
        })
    }
}

#[cfg(not(feature = "gpu"))]
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
