//! `GET /v1/coverage`: per (exchange, symbol) of the live store, the first
//! and last day held, the cells by state, the gaps and the share final
//! (`crate::query::coverage`), paged by (exchange, symbol) like the other
//! paged routes. The window is `from..=to` where given, else the configured
//! universe's days, else the days the selected cells span. Read-only over a
//! frozen copy of the store (`from_store`); the route table is `api/mod.rs`'s.

use actix_web::{web, HttpRequest, HttpResponse};

use super::{from_store, paged, ApiState, ParamError};
use crate::query::coverage::{coverage_page, window, PairCursor};
use crate::render;

/// The parameters `/v1/coverage` takes: the names and days of a question,
/// its format and its page.
const ALLOWED: [&str; 7] = [
    "exchange", "symbol", "from", "to", "format", "limit", "after",
];

pub(super) async fn coverage(state: web::Data<ApiState>, req: HttpRequest) -> HttpResponse {
    let universe = state.daemon.borrow().universe.as_ref().map(|u| {
        let days = u.days(state.clock.today());
        (days.from, days.to)
    });
    from_store(state, req, &ALLOWED, move |store, params, format| {
        let after = match &params.after {
            Some(raw) => Some(
                raw.parse::<PairCursor>()
                    .map_err(|e| ParamError::new("after", e))?,
            ),
            None => None,
        };
        let (rows, next) = match window(store, &params.filter, universe) {
            Some(days) => coverage_page(store, &params.filter, days, after.as_ref(), params.limit),
            None => (Vec::new(), None),
        };
        let text = render::render_coverage(&rows, format);
        Ok(paged(text, next.map(|c| c.to_string()), format))
    })
    .await
}
