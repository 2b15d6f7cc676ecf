//! The local console of signoff-sim (`signoff sim serve SCENARIO`): the simulated site as a
//! person would use it, in the browser. Spaces and pages with their versions; the apps'
//! Custom UI (byline items, global pages, space settings) in iframes, with the console as
//! the host side of `@forge/bridge`, so that `invoke` runs the app's resolver as the user
//! chosen in the console; the virtual clock; the egress ledger and the runtime RoA report;
//! hosted storage by installation and realm; the apps' logs; the site admin's switches.
//!
//! Two listeners, both on 127.0.0.1 only: the console itself, and the apps' frames on a port
//! of their own, so that an app's UI runs in another origin than the console, as a Custom UI
//! runs in another origin than Confluence. The simulation stays on the thread that ran the
//! scenario (it owns Node workers and wasm instances); the web server runs on a thread of its
//! own and hands every request to the simulation as a job.

mod api;
mod frames;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::mpsc;

use signoff_sim::scenario::RunOutcome;

pub use api::State;

/// Where to listen.
#[derive(Debug, Clone, Copy, Default)]
pub struct Config {
    /// The console's port on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// The apps' frames' port on 127.0.0.1 (0: any free port).
    pub frame_port: u16,
}

/// Where the console listens, once it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    pub console: SocketAddr,
    pub frames: SocketAddr,
}

/// The console could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the web server's runtime: {0}")]
    Runtime(std::io::Error),
}

/// A request for the simulation, run on the simulation's thread.
pub(crate) type Job = Box<dyn FnOnce(&mut State) + Send>;

/// Serves the console for a finished scenario run until the process is stopped (or, when
/// `stop` is given, until it is dropped or sent to). `ready` learns the addresses once both
/// listeners are bound, before any request is served.
pub fn serve(
    outcome: RunOutcome,
    config: Config,
    ready: impl FnOnce(Addresses),
    stop: Option<tokio::sync::oneshot::Receiver<()>>,
) -> Result<(), ConsoleError> {
    let bind = |port: u16| {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| ConsoleError::Bind { addr, source })
    };
    let console = bind(config.port)?;
    let frames = bind(config.frame_port)?;
    let local = |l: &std::net::TcpListener, port: u16| {
        l.local_addr().map_err(|source| ConsoleError::Bind {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            source,
        })
    };
    let addresses = Addresses {
        console: local(&console, config.port)?,
        frames: local(&frames, config.frame_port)?,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(ConsoleError::Runtime)?;

    let (jobs, inbox) = mpsc::channel::<Job>();
    let mut state = State::new(outcome);
    let server = std::thread::Builder::new()
        .name("signoff-console".into())
        .spawn(move || {
            runtime.block_on(async move {
                let shared = api::Shared { jobs, addresses };
                let console = tokio::net::TcpListener::from_std(console);
                let frames = tokio::net::TcpListener::from_std(frames);
                let (Ok(console), Ok(frames)) = (console, frames) else {
                    tracing::error!("the console's listeners could not join the runtime");
                    return;
                };
                let a = axum::serve(console, api::console_router(shared.clone()));
                let b = axum::serve(frames, frames::router(shared));
                let stop = async move {
                    match stop {
                        Some(rx) => {
                            let _ = rx.await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    r = a => if let Err(e) = r { tracing::error!("console server: {e}") },
                    r = b => if let Err(e) = r { tracing::error!("frame server: {e}") },
                    () = stop => {}
                }
            });
        })
        .map_err(ConsoleError::Runtime)?;
    ready(addresses);
    // Jobs run one at a time, in the order they came, until the server ends (its end drops
    // the sending side).
    while let Ok(job) = inbox.recv() {
        job(&mut state);
    }
    let _ = server.join();
    Ok(())
}
