//! `GET /v1/reference?symbol=&from=&to=`: the reference close of each
//! symbol-day (`crate::quality`'s method), with its constituents, what was
//! left out and why, and its dispersion; paged like `/v1/prices` (`limit`,
//! `after` = the `next` of the page before, `symbol/day`), under the same
//! access rules and query limit. Worked out on a blocking thread from a
//! frozen store the Aggregator hands over with its judging context.

use actix_web::{web, HttpRequest, HttpResponse};

use super::params::{parse_group_cursor, parse_params, ParamError};
use super::{paged, unavailable, ApiState, LARGE_ANSWER};
use crate::actors::aggregator::GetReferenceView;
use crate::quality::ReferenceRow;
use crate::query::{self, Known};
use crate::render::{self, Format};

const ALLOWED: [&str; 6] = ["symbol", "from", "to", "format", "limit", "after"];

pub(super) async fn reference(state: web::Data<ApiState>, req: HttpRequest) -> HttpResponse {
    let params = match parse_params(req.query_string(), &ALLOWED) {
        Ok(p) => p,
        Err(e) => return e.response(),
    };
    let Ok(_permit) = state.queries.clone().try_acquire_owned() else {
        return HttpResponse::ServiceUnavailable()
            .insert_header((actix_web::http::header::RETRY_AFTER, "1"))
            .json(serde_json::json!({
                "error": "too many queries at once (api.max_concurrent_queries); try again in a second"
            }));
    };
    let Ok(view) = state.aggregator.send(GetReferenceView).await else {
        return unavailable("the aggregator");
    };
    let format = params.format.unwrap_or(Format::Json);
    let answer = web::block(move || {
        Known::of_store(&view.store)
            .check(&params.filter)
            .map_err(|e| ParamError::new(e.kind.parameter(), e.to_string()))?;
        let after = match &params.after {
            Some(raw) => Some(parse_group_cursor(raw).map_err(|e| ParamError::new("after", e))?),
            None => None,
        };
        let (groups, next) =
            query::across::across_page(&view.store, &params.filter, after.as_ref(), params.limit);
        let rows: Vec<ReferenceRow> = groups
            .iter()
            .filter_map(|g| {
                Some(ReferenceRow {
                    symbol: g.symbol.clone(),
                    day: g.day,
                    round: None,
                    reference: view.reference(&g.symbol, g.day)?,
                })
            })
            .collect();
        let text = render::render_references(&rows, format);
        Ok::<_, ParamError>(paged(text, next.map(|(s, d)| format!("{s}/{d}")), format))
    })
    .await;
    if matches!(&answer, Ok(Ok(page)) if page.text.len() >= LARGE_ANSWER) {
        crate::heap::give_back();
    }
    match answer {
        Ok(Ok(page)) => {
            let mut resp = HttpResponse::Ok();
            resp.content_type(format.media_type());
            if let Some(next) = &page.next {
                resp.insert_header(("X-Next-Cursor", next.as_str()));
            }
            resp.body(page.text)
        }
        Ok(Err(e)) => e.response(),
        Err(_) => unavailable("the query worker"),
    }
}
