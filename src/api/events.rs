//! `GET /v1/events`: the daemon's status as server-sent events, for the web
//! page's live status bar.
//!
//! One `status` event (the body of `/v1/status`) at once, then each second,
//! and at once when a round finishes. A stream is bounded: at most
//! `MAX_STREAMS` are open at a time, each ends after `MAX_STREAM_FOR` (the
//! browser reconnects by itself), it ends when the client goes away (the
//! next write fails and actix drops it), and when the daemon drains or the
//! API stops, so that no stream holds a graceful shutdown.

use std::convert::Infallible;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;

use super::{parse_params, ApiState};

/// Event streams open at once; a page holds one.
pub const MAX_STREAMS: usize = 16;
/// A stream's longest life; `EventSource` reconnects after it.
const MAX_STREAM_FOR: Duration = Duration::from_secs(600);
/// How often a status event is sent when nothing else happens.
const EVERY: Duration = Duration::from_secs(1);
/// What a browser waits before reconnecting, sent as `retry:`.
const RETRY_MS: u64 = 1000;

/// A status made less than `SHARED_FOR` ago is sent as it is.
const SHARED_FOR: Duration = Duration::from_millis(250);

/// The status, made afresh if `fresh` (a round has just ended) or unless
/// another stream made one within `SHARED_FOR`.
async fn shared_status(state: &ApiState, fresh: bool) -> Option<serde_json::Value> {
    let mut recent = state.recent_status.lock().await;
    if let Some((made, status)) = recent.as_ref() {
        if !fresh && made.elapsed() < SHARED_FOR {
            return Some(status.clone());
        }
    }
    let status = super::status_value(state).await?;
    *recent = Some((std::time::Instant::now(), status.clone()));
    Some(status)
}

/// Set when the API server stops (see `ApiServer::stop`).
pub struct Closing(pub watch::Receiver<bool>);

/// What a stream carries from one event to the next.
struct Stream {
    state: web::Data<ApiState>,
    rounds: watch::Receiver<Option<super::RoundSummary>>,
    closing: watch::Receiver<bool>,
    tick: tokio::time::Interval,
    until: Instant,
    first: bool,
    done: bool,
    /// Held for the stream's life: its place among `MAX_STREAMS`.
    _permit: OwnedSemaphorePermit,
}

pub(super) async fn events(
    state: web::Data<ApiState>,
    closing: web::Data<Closing>,
    req: HttpRequest,
) -> HttpResponse {
    if let Err(e) = parse_params(req.query_string(), &[]) {
        return e.response();
    }
    let Ok(permit) = state.event_streams.clone().try_acquire_owned() else {
        return HttpResponse::ServiceUnavailable()
            .insert_header((actix_web::http::header::RETRY_AFTER, "1"))
            .json(serde_json::json!({
                "error": format!("{MAX_STREAMS} event streams are open already; poll /v1/status instead")
            }));
    };
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rounds = state.rounds.clone();
    rounds.mark_unchanged();
    let stream = Stream {
        rounds,
        closing: closing.0.clone(),
        state,
        tick,
        until: Instant::now() + MAX_STREAM_FOR,
        first: true,
        done: false,
        _permit: permit,
    };
    let body = futures_util::stream::unfold(stream, |mut s| async move {
        if s.done {
            return None;
        }
        let mut text = String::new();
        let mut fresh = false;
        if s.first {
            text.push_str(&format!("retry: {RETRY_MS}\n\n"));
            s.first = false;
            // The interval's first tick is immediate: take it, so the
            // first event is not followed by a second at once.
            s.tick.tick().await;
        } else {
            tokio::select! {
                _ = s.tick.tick() => {}
                changed = s.rounds.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    s.tick.reset();
                    fresh = true;
                }
                _ = s.closing.wait_for(|c| *c) => return None,
            }
        }
        let status = shared_status(&s.state, fresh).await?;
        // The last event of a stream says why it ends: the daemon drains
        // (the page shows it) or the stream has lived long enough.
        s.done = status["state"] == "draining" || Instant::now() >= s.until;
        text.push_str(&format!("event: status\ndata: {status}\n\n"));
        Some((Ok::<_, Infallible>(web::Bytes::from(text)), s))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(body)
}
