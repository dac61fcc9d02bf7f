//! Starting an actix-web server the way every server in this crate starts:
//! bound before it returns (so port 0 tells its real port), without
//! actix's own signal handling (the process decides how it stops), and
//! running in the background on the current actix system.
//!
//! Every answer is gzipped when the client asks for it (`Accept-Encoding:
//! gzip`), so pricegrid's own client reads compressed answers end to end.
//! Knows nothing of routes or state; `api` and `server` bring their own.

use std::net::SocketAddr;

use actix_web::dev::ServerHandle;
use actix_web::middleware::Compress;
use actix_web::{web::ServiceConfig, App, HttpServer};

/// Binds `listen`, starts `workers` threads (at least one) serving an app
/// that `routes` sets up (state, routes, default service), and returns the
/// bound address with the handle that stops it. Must run inside an actix
/// system.
pub fn start_server<F>(
    listen: SocketAddr,
    workers: usize,
    routes: F,
) -> std::io::Result<(SocketAddr, ServerHandle)>
where
    F: Fn(&mut ServiceConfig) + Send + Clone + 'static,
{
    let server = HttpServer::new(move || {
        App::new()
            .wrap(Compress::default())
            .configure(|cfg| routes(cfg))
    })
    .workers(workers.max(1))
    .disable_signals()
    .bind(listen)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other(format!("binding {listen} gave no address")))?;
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok((addr, handle))
}

/// As `start_server`, on a listener already bound (the daemon binds its
/// API's port before it starts anything else).
pub fn start_server_on<F>(
    listener: std::net::TcpListener,
    workers: usize,
    routes: F,
) -> std::io::Result<(SocketAddr, ServerHandle)>
where
    F: Fn(&mut ServiceConfig) + Send + Clone + 'static,
{
    let addr = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .wrap(Compress::default())
            .configure(|cfg| routes(cfg))
    })
    .workers(workers.max(1))
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok((addr, handle))
}
