//! Training on another machine through burn's remote backend, the client's side:
//! `--backend remote:ws://HOST:PORT` makes a `latent-atlas serve` server (the program's
//! `serve.rs`) the device the trainer's tensors live on, while the window, the evaluator and
//! all drawing stay local. No protocol of our own: burn's client, through a counting relay.
//!
//! The token is read from `LATENT_ATLAS_TOKEN`, or from the file named by
//! `LATENT_ATLAS_TOKEN_FILE` (the server also takes `--token-file`).

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::tensor::Device;

/// The environment variable holding the token.
pub const TOKEN_ENV: &str = "LATENT_ATLAS_TOKEN";
/// The environment variable naming a file that holds the token.
pub const TOKEN_FILE_ENV: &str = "LATENT_ATLAS_TOKEN_FILE";

/// Reads a token from a file: its first line, trimmed; an empty one is an error naming it.
pub fn read_token_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read the token: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_owned();
    if token.is_empty() {
        anyhow::bail!("{}: the token file is empty", path.display());
    }
    Ok(token)
}

/// A token set by the program, which connections present before any from the environment.
static TOKEN: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Sets the token later connections present (`None`: back to the environment's), for a
/// program that holds it already (an embedding, a test) rather than in its environment.
pub fn set_token(token: Option<String>) {
    *TOKEN.lock().unwrap_or_else(|p| p.into_inner()) = token;
}

/// The token connections present: the one set by [`set_token`], else `LATENT_ATLAS_TOKEN`, else
/// the file named by `LATENT_ATLAS_TOKEN_FILE`; `None` when there is none.
pub fn token_from_env() -> anyhow::Result<Option<String>> {
    if let Some(token) = TOKEN.lock().unwrap_or_else(|p| p.into_inner()).clone() {
        return Ok(Some(token));
    }
    if let Ok(token) = std::env::var(TOKEN_ENV) {
        let token = token.trim().to_owned();
        if token.is_empty() {
            anyhow::bail!("{TOKEN_ENV} is set but empty");
        }
        return Ok(Some(token));
    }
    match std::env::var_os(TOKEN_FILE_ENV) {
        Some(path) => read_token_file(Path::new(&path)).map(Some),
        None => Ok(None),
    }
}

/// A random token of 32 hex digits from the operating system's random source.
pub fn random_token() -> anyhow::Result<String> {
    let bytes = crate::platform::random_bytes::<16>().map_err(|e| {
        anyhow::anyhow!("cannot draw a random token ({e}); give one with --token-file")
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Bytes the relays sent to servers and received from them, over the process's life.
static SENT: AtomicU64 = AtomicU64::new(0);
static RECEIVED: AtomicU64 = AtomicU64::new(0);

/// Bytes sent to and received from remote servers so far, through every relay.
pub fn traffic() -> (u64, u64) {
    (
        SENT.load(Ordering::Relaxed),
        RECEIVED.load(Ordering::Relaxed),
    )
}

/// The `host:port` part of a `ws://` URL, or `None` for another scheme.
pub fn ws_authority(url: &str) -> Option<&str> {
    let rest = url.trim().strip_prefix("ws://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    (!authority.is_empty()).then_some(authority)
}

/// A local TCP port that passes bytes unchanged to and from one server, counting them.
///
/// burn's client keeps one session per server address for the life of the process and never
/// reopens it once the connection drops. Each connection attempt therefore goes through a
/// relay of its own, on a fresh loopback port: to burn a new address, so a new session, while
/// the bytes on the wire are exactly burn's.
pub struct Relay {
    /// The loopback address the client dials.
    pub local: SocketAddr,
}

impl Relay {
    /// Resolves `authority` (`host:port`), checks that the server answers, and starts relaying
    /// from a free loopback port.
    pub fn start(authority: &str) -> std::io::Result<Relay> {
        use std::net::{TcpStream, ToSocketAddrs};
        use std::time::Duration;
        let targets: Vec<SocketAddr> = authority.to_socket_addrs()?.collect();
        let reach = |targets: &[SocketAddr]| -> std::io::Result<TcpStream> {
            let mut last = std::io::Error::other("the name resolves to no address");
            for t in targets {
                match TcpStream::connect_timeout(t, Duration::from_secs(10)) {
                    Ok(s) => return Ok(s),
                    Err(e) => last = e,
                }
            }
            Err(last)
        };
        drop(reach(&targets)?);
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
        let local = listener.local_addr()?;
        std::thread::Builder::new()
            .name("latent-atlas-relay".into())
            .spawn(move || {
                for client in listener.incoming() {
                    let Ok(client) = client else {
                        // Out of descriptors, say: wait rather than spin.
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    };
                    // Only this process dials the relay; anything else is turned away.
                    if !client.peer_addr().is_ok_and(|a| a.ip().is_loopback()) {
                        continue;
                    }
                    match reach(&targets) {
                        Ok(server) => pipe(client, server),
                        // Closing the client's side makes burn report the failure.
                        Err(e) => log::warn!("relay: cannot reach {targets:?}: {e}"),
                    }
                }
            })?;
        Ok(Relay { local })
    }
}

/// The environment variable that delays every relayed chunk by this many milliseconds each
/// way, to measure training over a link slower than loopback (`bench`): a round trip of twice
/// the delay, the bandwidth unchanged.
pub const DELAY_ENV: &str = "LATENT_ATLAS_LINK_DELAY_MS";

/// The one-way delay asked for by [`DELAY_ENV`] (zero when unset or unreadable).
fn link_delay() -> std::time::Duration {
    std::env::var(DELAY_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms > 0.0)
        .map_or(std::time::Duration::ZERO, |ms| {
            std::time::Duration::from_secs_f64(ms / 1e3)
        })
}

/// Makes the operating system notice a peer gone silent: keepalive probes after 10 s idle,
/// every 5 s, 4 unanswered ones ending the connection; and 40 s for unacknowledged data.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn watch_peer(stream: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    let set = |level: libc::c_int, name: libc::c_int, value: libc::c_int| {
        // SAFETY: `fd` is an open socket owned by `stream` for the duration of the call, and
        // the option value is a c_int of the size passed.
        unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 10);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 5);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 4);
    set(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, 40_000);
}

/// Elsewhere the system's defaults apply.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn watch_peer(_stream: &std::net::TcpStream) {}

/// Copies bytes both ways between `client` and `server` until either side closes, each chunk
/// held back by the [`DELAY_ENV`] delay when one is set.
fn pipe(client: std::net::TcpStream, server: std::net::TcpStream) {
    fn copy(
        mut from: std::net::TcpStream,
        mut to: std::net::TcpStream,
        counter: &'static AtomicU64,
        delay: std::time::Duration,
    ) {
        use std::io::{Read, Write};
        use std::time::Instant;
        let close = |a: &std::net::TcpStream, b: &std::net::TcpStream| {
            let _ = a.shutdown(std::net::Shutdown::Both);
            let _ = b.shutdown(std::net::Shutdown::Both);
        };
        let mut buf = vec![0u8; 64 * 1024];
        if delay.is_zero() {
            while let Ok(n @ 1..) = from.read(&mut buf) {
                // Counted before it is passed on, so whoever sees it has seen it counted.
                counter.fetch_add(n as u64, Ordering::Relaxed);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            close(&to, &from);
            return;
        }
        // A second thread writes each chunk once its time has come.
        let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
        let (Ok(writer_to), Ok(writer_from)) = (to.try_clone(), from.try_clone()) else {
            close(&to, &from);
            return;
        };
        let writer = std::thread::Builder::new()
            .name("latent-atlas-relay-delay".into())
            .spawn(move || {
                let mut to = writer_to;
                for (due, chunk) in rx {
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    if to.write_all(&chunk).is_err() {
                        break;
                    }
                }
                close(&to, &writer_from);
            });
        if writer.is_err() {
            close(&to, &from);
            return;
        }
        while let Ok(n @ 1..) = from.read(&mut buf) {
            counter.fetch_add(n as u64, Ordering::Relaxed);
            if tx
                .send((Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
            {
                break;
            }
        }
    }
    // Small messages go out at once, as on a direct connection.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    // burn's own socket now ends at this relay, so the relay watches the server for it: a host
    // that vanishes without closing is noticed in about a minute, not never.
    watch_peer(&server);
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let delay = link_delay();
    let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
        let _ = std::thread::Builder::new().name(name.into()).spawn(f);
    };
    spawn(
        "latent-atlas-relay-up",
        Box::new(move || copy(client, server, &SENT, delay)),
    );
    spawn(
        "latent-atlas-relay-down",
        Box::new(move || copy(server2, client2, &RECEIVED, delay)),
    );
}

/// A server connected to: its device, and how to describe it.
#[derive(Clone, Debug)]
pub struct Connected {
    /// The server's device, which tensors are put on from here.
    pub device: Device,
    /// "remote ws://HOST:PORT".
    pub description: String,
}

/// Connects to the server at `url` with the token from the environment.
pub fn connect(url: &str) -> Result<Connected, String> {
    let token = token_from_env().map_err(|e| format!("{e:#}"))?;
    connect_with(url, token.as_deref())
}

/// Connects to the server at `url` with `token`: a `ws://` server through a new [`Relay`]
/// (so a server that went away and came back gets a new session), another address as given.
#[cfg(feature = "remote")]
pub fn connect_with(url: &str, token: Option<&str>) -> Result<Connected, String> {
    use burn::remote::{ConnectError, RemoteHost};
    let unreachable = || format!("cannot reach {url}: is `latent-atlas serve` running there?");
    let dial = match ws_authority(url) {
        Some(authority) => {
            let relay = Relay::start(authority).map_err(|e| format!("{} ({e})", unreachable()))?;
            format!("ws://{}", relay.local)
        }
        None => url.to_owned(),
    };
    let mut host = RemoteHost::websocket(&dial);
    if let Some(token) = token {
        host = host.with_credential(token);
    }
    let device: Device = Device::remote_options(&host).init().map_err(|e| match e {
        ConnectError::Unauthorized => format!(
            "{url} refused the token (set {TOKEN_ENV} or {TOKEN_FILE_ENV} to the server's token)"
        ),
        ConnectError::Unreachable { reason } => format!("{} ({reason})", unreachable()),
        other => format!("{url}: {other}"),
    })?;
    Ok(Connected {
        device,
        description: format!("remote {url}"),
    })
}

/// Without the `remote` feature: says how to get it.
#[cfg(not(feature = "remote"))]
pub fn connect_with(_url: &str, _token: Option<&str>) -> Result<Connected, String> {
    Err("this build has no remote backend: rebuild with `--features remote`".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_passes_bytes_both_ways_and_counts_them() {
        use std::io::{Read, Write};
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let authority = server.local_addr().unwrap().to_string();
        let echo = std::thread::spawn(move || {
            // The relay's reachability check, then the relayed connection.
            let _probe = server.accept().unwrap();
            let (mut s, _) = server.accept().unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf.map(|b| b.to_ascii_uppercase())).unwrap();
        });
        let (sent, received) = traffic();
        let relay = Relay::start(&authority).unwrap();
        let mut c = std::net::TcpStream::connect(relay.local).unwrap();
        c.write_all(b"hello").unwrap();
        let mut back = [0u8; 5];
        c.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"HELLO");
        echo.join().unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "the server's close reaches the client");
        let (sent2, received2) = traffic();
        assert!(sent2 - sent >= 5 && received2 - received >= 5);
        // A server that is not there is an error at once, not a relay that closes later.
        drop(c);
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let gone = closed.local_addr().unwrap().to_string();
        drop(closed);
        assert!(Relay::start(&gone).is_err());
        assert_eq!(ws_authority("ws://gpu-box:3000/x"), Some("gpu-box:3000"));
        assert_eq!(ws_authority("wss://gpu-box:3000"), None);
    }
}
