//! Arrow Flight reads of vintages: tickets are versioned JSON queries; bearer-token auth on every
//! RPC; optional TLS; a bounded cache of results keyed by table snapshot.

pub mod access;
pub mod auth;
pub mod cache;
pub mod config;
pub mod error;
pub mod flightsql;
pub mod grants;
pub mod metrics;
pub mod service;
pub mod ticket;

use std::net::SocketAddr;
use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Identity, Server, ServerTlsConfig};

pub use config::QueryConfig;
pub use service::{Limits, VintageFlightService};

/// Binds the Flight service (so a taken port fails now) and serves it until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    service: Arc<VintageFlightService>,
    tls: Option<(Vec<u8>, Vec<u8>)>,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>, String> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("binding Flight on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let mut builder = Server::builder();
    if let Some((cert, key)) = tls {
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
            .map_err(|e| format!("TLS configuration: {e}"))?;
    }
    tracing::info!(addr = %local, "Arrow Flight service");
    let incoming = tokio_stream_listener(listener);
    let router = builder.add_service(FlightServiceServer::from_arc(service).max_decoding_message_size(64 << 20));
    Ok(tokio::spawn(async move { router.serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned()).await }))
}

fn tokio_stream_listener(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |l| async move {
        let next = l.accept().await.map(|(s, _)| {
            let _ = s.set_nodelay(true);
            s
        });
        Some((next, l))
    })
}

/// Shared handle type for the service's store.
pub type Store = Arc<vintagelake_storage::store::IcebergStore>;
