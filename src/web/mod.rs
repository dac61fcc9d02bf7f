//! The daemon's web page (`GET /` on `api.listen`): a live status bar, a
//! coverage map of one symbol's cells with its gaps, a cross-exchange chart
//! and the failures, in one page whose HTML, CSS and JavaScript are compiled into
//! the binary.
//!
//! Serves files only: the page reads the public API routes
//! (`/v1/events`, `/v1/status`, `/v1/prices`, `/v1/coverage`,
//! `/v1/aggregate`, `/v1/reference`, `/v1/failures`) like any other client, so it shows nothing the API does
//! not. Nothing it loads comes from outside the daemon (uPlot is vendored
//! under `vendor/`, see its `VENDORED.md`), and its Content-Security-Policy
//! forbids the browser to ask anywhere else.

use actix_web::{web, HttpResponse};

/// A file of the page: its route, media type and bytes.
struct Asset {
    path: &'static str,
    media_type: &'static str,
    body: &'static str,
}

const ASSETS: [Asset; 5] = [
    Asset {
        path: "/",
        media_type: "text/html; charset=utf-8",
        body: include_str!("index.html"),
    },
    Asset {
        path: "/web/app.js",
        media_type: "text/javascript; charset=utf-8",
        body: include_str!("app.js"),
    },
    Asset {
        path: "/web/app.css",
        media_type: "text/css; charset=utf-8",
        body: include_str!("app.css"),
    },
    Asset {
        path: "/web/vendor/uPlot.iife.min.js",
        media_type: "text/javascript; charset=utf-8",
        body: include_str!("vendor/uplot/uPlot.iife.min.js"),
    },
    Asset {
        path: "/web/vendor/uPlot.min.css",
        media_type: "text/css; charset=utf-8",
        body: include_str!("vendor/uplot/uPlot.min.css"),
    },
];

/// Only the daemon itself: scripts, styles, data and images from this
/// origin (uPlot sets inline styles; the favicon is a data URL).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'";

/// Adds the page's routes to the API.
pub fn routes(cfg: &mut web::ServiceConfig) {
    for asset in &ASSETS {
        let (media_type, body) = (asset.media_type, asset.body);
        let serve = move || async move {
            HttpResponse::Ok()
                .content_type(media_type)
                .insert_header(("Content-Security-Policy", CSP))
                // Built into the binary: a new build may change them.
                .insert_header(("Cache-Control", "no-cache"))
                .body(body)
        };
        cfg.service(
            web::resource(asset.path)
                .route(web::get().to(serve))
                .route(web::head().to(serve)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_from_outside() {
        for asset in ASSETS.iter().filter(|a| !a.path.contains("vendor")) {
            for outside in [
                "http://",
                "https://",
                "//cdn",
                "@import",
                "fonts.googleapis",
            ] {
                assert!(
                    !asset.body.contains(outside),
                    "{} mentions {outside:?}",
                    asset.path
                );
            }
        }
    }

    #[test]
    fn the_page_links_every_asset_it_serves() {
        let html = ASSETS[0].body;
        for asset in &ASSETS[1..] {
            assert!(
                html.contains(asset.path),
                "index.html does not load {}",
                asset.path
            );
        }
    }
}
