//! `latent-atlas serve`: burn's WebSocket server on the best local device, behind a token, for
//! clients that train through it (`crate::remote`).

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::PathBuf;

#[cfg(feature = "remote")]
use crate::backend::BackendChoice;
#[cfg(not(feature = "remote"))]
use crate::backend::BackendError;
use crate::remote::{TOKEN_ENV, random_token, read_token_file, token_from_env};

/// The port `serve` listens on by default.
pub const DEFAULT_PORT: u16 = 3000;

/// The device `serve` computes on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ServeDevice {
    /// A hardware GPU when there is one (through wgpu), otherwise the CPU.
    #[default]
    Auto,
    /// A hardware GPU through wgpu; an error when there is none.
    Gpu,
    /// An NVIDIA GPU through burn's CUDA backend (a build with the `cuda` feature).
    Cuda,
    /// The CPU (burn's flex backend).
    Cpu,
}

/// `latent-atlas serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The address to listen on. Anything but loopback needs a token given explicitly.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// The port to listen on (0: any free one, printed).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// The device to compute on.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: ServeDevice,
    /// A file holding the token clients must present (else `LATENT_ATLAS_TOKEN`; with neither,
    /// on loopback, a random one is generated and printed).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

/// The token `serve` requires, and whether it was generated: an explicit one (file, then
/// environment), else a generated one, which only loopback may use.
pub fn server_token(args: &ServeArgs) -> anyhow::Result<(String, bool)> {
    let explicit = match &args.token_file {
        Some(path) => Some(read_token_file(path)?),
        None => token_from_env()?,
    };
    match explicit {
        Some(token) => Ok((token, false)),
        None if args.bind.is_loopback() => Ok((random_token()?, true)),
        None => anyhow::bail!(
            "serving on {} (not loopback) needs a token: give --token-file FILE or set {TOKEN_ENV}",
            args.bind
        ),
    }
}

/// Binds the listening socket, saying which address could not be had.
pub fn bind(args: &ServeArgs) -> anyhow::Result<TcpListener> {
    let address = SocketAddr::new(args.bind, args.port);
    TcpListener::bind(address).map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))
}

/// Runs the server until the process is stopped.
#[cfg(feature = "remote")]
pub fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    use burn::server::{RemoteServer, TokenAuthorizer, WebSocketTransport};
    let (token, generated) = server_token(args)?;
    let backend = match args.device {
        ServeDevice::Cpu => BackendChoice::Flex.select()?,
        ServeDevice::Gpu => BackendChoice::Gpu.select()?,
        ServeDevice::Cuda => BackendChoice::Cuda.select()?,
        ServeDevice::Auto => BackendChoice::Auto.select()?,
    };
    if let Some(notice) = &backend.notice {
        eprintln!("note: {notice}");
    }
    let listener = bind(args)?;
    let address = listener.local_addr()?;
    println!("serving {} at ws://{address}", backend.description);
    if generated {
        println!("token (generated; clients set {TOKEN_ENV}): {token}");
    }
    println!("stop with Ctrl+C");
    let authorizer =
        TokenAuthorizer::new(token.as_str()).map_err(|_| anyhow::anyhow!("the token is empty"))?;
    RemoteServer::new([backend.device])
        .with_authorizer(authorizer)
        .serve(WebSocketTransport::from_listener(listener))
        .map_err(|e| anyhow::anyhow!("the server stopped: {e:?}"))
}

/// Without the `remote` feature: says how to get it.
#[cfg(not(feature = "remote"))]
pub fn serve(_args: &ServeArgs) -> anyhow::Result<()> {
    Err(BackendError::NotBuilt("remote").into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::TOKEN_FILE_ENV;

    fn args(bind: &str, token_file: Option<PathBuf>) -> ServeArgs {
        ServeArgs {
            bind: bind.parse().unwrap(),
            port: 0,
            device: ServeDevice::Cpu,
            token_file,
        }
    }

    #[test]
    fn only_loopback_may_serve_with_a_generated_token() {
        // The test reads the environment but never sets it; a caller's token would change
        // what is expected, so then there is nothing to check.
        if std::env::var_os(TOKEN_ENV).is_some() || std::env::var_os(TOKEN_FILE_ENV).is_some() {
            return;
        }
        let (token, generated) = server_token(&args("127.0.0.1", None)).unwrap();
        assert!(generated && token.len() == 32, "{token}");
        assert_ne!(token, random_token().unwrap());
        let err = server_token(&args("0.0.0.0", None))
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs a token"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        let (token, generated) = server_token(&args("0.0.0.0", Some(file.clone()))).unwrap();
        assert_eq!((token.as_str(), generated), ("s3cret", false));
        std::fs::write(&file, "\n").unwrap();
        let err = server_token(&args("0.0.0.0", Some(file)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("token") && err.contains("empty"), "{err}");
    }
}
