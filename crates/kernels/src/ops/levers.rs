//! Which fused kernels are in use: all, unless `LATENT_ATLAS_UNFUSED` names some (for
//! measuring each one's share, and for checking a result without it).

/// Which fused kernels are in use. All are, unless `LATENT_ATLAS_UNFUSED` names some
/// (comma-separated: `adam`, `nll`, `linear`, `conv`, `spectral`, `batchnorm`), which measures each one's effect in one build.
#[derive(Clone, Copy, Debug)]
pub struct Levers {
    /// The in-place Adam.
    pub adam: bool,
    /// The Bernoulli likelihood.
    pub nll: bool,
    /// The dense layer.
    pub linear: bool,
    /// The convolutions.
    pub conv: bool,
    /// Spectral normalisation's power iteration and scaling.
    pub spectral: bool,
    /// Batch normalisation while training.
    pub batch_norm: bool,
}

/// The levers in force for this process (read once), narrowed on this thread by
/// [`with_levers`].
pub fn levers() -> Levers {
    static LEVERS: std::sync::OnceLock<Levers> = std::sync::OnceLock::new();
    let global = *LEVERS.get_or_init(|| {
        let off = std::env::var("LATENT_ATLAS_UNFUSED").unwrap_or_default();
        let off: Vec<&str> = off.split(',').map(str::trim).collect();
        Levers {
            adam: !off.contains(&"adam"),
            nll: !off.contains(&"nll"),
            linear: !off.contains(&"linear"),
            conv: !off.contains(&"conv"),
            spectral: !off.contains(&"spectral"),
            batch_norm: !off.contains(&"batchnorm"),
        }
    });
    match OVERRIDE.with(std::cell::Cell::get) {
        Some(local) => Levers {
            adam: global.adam && local.adam,
            nll: global.nll && local.nll,
            linear: global.linear && local.linear,
            conv: global.conv && local.conv,
            spectral: global.spectral && local.spectral,
            batch_norm: global.batch_norm && local.batch_norm,
        },
        None => global,
    }
}

thread_local! {
    static OVERRIDE: std::cell::Cell<Option<Levers>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with only the kernels `local` keeps (and the process allows) on this thread: the
/// fallbacks' tests run burn's composition on flex in the same build.
pub fn with_levers<T>(local: Levers, f: impl FnOnce() -> T) -> T {
    let before = OVERRIDE.with(|o| o.replace(Some(local)));
    struct Restore(Option<Levers>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OVERRIDE.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(before);
    f()
}

impl Levers {
    /// Every kernel off.
    pub const NONE: Levers = Levers {
        adam: false,
        nll: false,
        linear: false,
        conv: false,
        spectral: false,
        batch_norm: false,
    };
}
