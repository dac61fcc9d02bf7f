//! The malformed-answer corpus: every way a price answer can be framed or
//! formed wrong, one case per cell, through a real round (the real actors
//! against a raw server on loopback that writes each case's exact bytes).
//! Every cell ends in the state its case deserves: a price, "none" only for
//! the answers the README names (a `200` with `null` or an empty body, a
//! `404` empty or `{"error": "no price"}`), or a failure with its reason,
//! transient (asked again within the round) or permanent.
//!
//! The table `CASES` is the documentation: each row names its case, its
//! bytes (head and body; `{len}` is the body's length, `{price}` the cell's
//! price JSON, `{hex}` its length in hex) and its expected outcome.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use common::*;

/// The corpus round, bounded.
const ROUND_DEADLINE: Duration = Duration::from_secs(60);
use pricegrid::commands::fetch::fetch_round;
use pricegrid::model::{CellState, Exchange, Ohlcv, Symbol};
use pricegrid::origin::Source;

/// The first day of the corpus; case `i` is the cell of day `FIRST + i`.
const FIRST: &str = "2020-01-01";
/// Attempts per task in a round: a transient failure uses them all.
const ATTEMPTS: u32 = 2;

/// What a cell must hold after the round.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// The price of `PRICE`.
    Price,
    /// The source's "no price".
    NoPrice,
    /// A failure asked again within the round, its reason containing this.
    Transient(&'static str),
    /// A failure left for the next round, its reason containing this.
    Permanent(&'static str),
}
use Expect::*;

/// One row: a name, the answer's head and body, and what the cell holds.
struct Case {
    name: &'static str,
    head: &'static str,
    body: &'static str,
    /// Keep the connection for the next request (else close it after).
    keep: bool,
    expect: Expect,
}

const fn case(name: &'static str, head: &'static str, body: &'static str, expect: Expect) -> Case {
    Case {
        name,
        head,
        body,
        keep: false,
        expect,
    }
}

const fn kept(name: &'static str, head: &'static str, body: &'static str, expect: Expect) -> Case {
    Case {
        name,
        head,
        body,
        keep: true,
        expect,
    }
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n";
const CUT: &str = "cut off";
const JSON: &str = "malformed price JSON";

#[rustfmt::skip]
const CASES: &[Case] = &[
    // Content-Length framing.
    case("CL exact, closed", "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n", "{price}", Price),
    kept("CL exact, kept alive", "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n", "{price}", Price),
    case("CL exact, HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: {len}\r\n\r\n", "{price}", Price),
    case("CL exact, Connection: close", "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n", "{price}", Price),
    case("CL 0", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "", NoPrice),
    case("CL shorter than the body, closed", "HTTP/1.1 200 OK\r\nContent-Length: {len-10}\r\n\r\n", "{price}", Transient(JSON)),
    kept("CL shorter than the body, stray bytes on a kept connection", "HTTP/1.1 200 OK\r\nContent-Length: {len-10}\r\n\r\n", "{price}", Transient(JSON)),
    case("CL longer than the body, closed", "HTTP/1.1 200 OK\r\nContent-Length: {len+10}\r\n\r\n", "{price}", Transient(CUT)),
    case("CL, closed before any body byte", "HTTP/1.1 200 OK\r\nContent-Length: 134\r\n\r\n", "", Transient(CUT)),
    case("CL not a number", "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", "{price}", Transient("Content-Length")),
    case("CL negative", "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", "{price}", Transient("Content-Length")),
    case("CL with a plus sign", "HTTP/1.1 200 OK\r\nContent-Length: +{len}\r\n\r\n", "{price}", Transient("Content-Length")),
    case("CL as a list", "HTTP/1.1 200 OK\r\nContent-Length: {len}, {len}\r\n\r\n", "{price}", Transient("Content-Length")),
    case("two CL that disagree", "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nContent-Length: {len+10}\r\n\r\n", "{price}", Transient("two Content-Length")),
    case("two CL that agree", "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nContent-Length: {len}\r\n\r\n", "{price}", Transient("two Content-Length")),
    case("CL larger than source.max_body_bytes", "HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n", "", Transient("larger than")),
    // Chunked framing.
    case("chunked, one chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "{hex}\r\n{price}\r\n0\r\n\r\n", Price),
    kept("chunked, kept alive", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "{hex}\r\n{price}\r\n0\r\n\r\n", Price),
    case("chunked, many chunks", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "1\r\n{\r\n{hex-1}\r\n{price-1}\r\n0\r\n\r\n", Price),
    case("chunked, upper-case hex and leading zeros", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "00{HEX}\r\n{price}\r\n0\r\n\r\n", Price),
    case("chunked, with extensions", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "{hex};name=value;x\r\n{price}\r\n0;end\r\n\r\n", Price),
    case("chunked, with trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "{hex}\r\n{price}\r\n0\r\nX-Checksum: 1\r\nX-Other: 2\r\n\r\n", Price),
    case("chunked, Transfer-Encoding in capitals", "HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n", "{hex}\r\n{price}\r\n0\r\n\r\n", Price),
    case("chunked and a Content-Length: chunked wins", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "{hex}\r\n{price}\r\n0\r\n\r\n", Price),
    case("chunked, only the last chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "0\r\n\r\n", NoPrice),
    case("chunked null", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "4\r\nnull\r\n0\r\n\r\n", NoPrice),
    case("chunked, cut before any chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "", Transient(CUT)),
    case("chunked, cut in a size line", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "4", Transient(CUT)),
    case("chunked, cut mid-chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "a\r\nnull", Transient(CUT)),
    case("chunked, cut before the 0 chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "4\r\nnull\r\n", Transient(CUT)),
    case("chunked, cut after a chunk's data", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "4\r\nnull", Transient(CUT)),
    case("chunked, no final CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "4\r\nnull\r\n0\r\n", Transient(CUT)),
    case("chunked, cut in the trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "4\r\nnull\r\n0\r\nX-Checksum: 1\r\n", Transient(CUT)),
    case("chunked, bad hex", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "zz\r\nnull\r\n0\r\n\r\n", Transient("chunk-size")),
    case("chunked, data longer than its size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "2\r\nnull\r\n0\r\n\r\n", Transient("longer than its size")),
    case("chunked in HTTP/1.0: not a framing, read to the close", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "{hex}\r\n{price}\r\n0\r\n\r\n", Transient(JSON)),
    case("Transfer-Encoding gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "{price}", Transient("Transfer-Encoding")),
    case("two Transfer-Encoding headers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "{hex}\r\n{price}\r\n0\r\n\r\n", Transient("two Transfer-Encoding")),
    // Bodies that run to the close (RFC 9112 §6.3 rule 8).
    case("to the close, HTTP/1.1", "HTTP/1.1 200 OK\r\n\r\n", "{price}", Price),
    case("to the close, HTTP/1.1, Connection: close", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", "{price}", Price),
    case("to the close, HTTP/1.1, Connection: keep-alive", "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n", "{price}", Price),
    case("to the close, HTTP/1.0", "HTTP/1.0 200 OK\r\n\r\n", "{price}", Price),
    case("to the close, HTTP/1.0, Connection: close", "HTTP/1.0 200 OK\r\nConnection: close\r\n\r\n", "{price}", Price),
    case("to the close, HTTP/1.1 null", "HTTP/1.1 200 OK\r\n\r\n", "null", NoPrice),
    case("to the close, HTTP/1.1 empty", "HTTP/1.1 200 OK\r\n\r\n", "", NoPrice),
    case("to the close, larger than source.max_body_bytes", "HTTP/1.1 200 OK\r\n\r\n", "{big}", Transient("larger than")),
    // Heads that are not answers.
    case("closed without a byte", "", "", Transient("connection")),
    case("closed in the head", "HTTP/1.1 200 OK\r\nContent-Le", "", Transient("head")),
    case("not HTTP at all", "hello there\r\n\r\n", "", Transient("malformed answer")),
    case("an Upgrade to websocket nobody asked for", "HTTP/1.1 200 OK\r\nUpgrade: websocket\r\nContent-Length: {len}\r\n\r\n", "{price}", Transient("Upgrade")),
    // Statuses.
    case("204 No Content", "HTTP/1.1 204 No Content\r\n\r\n", "", Permanent("204")),
    case("204 with a Content-Length and stray bytes", "HTTP/1.1 204 No Content\r\nContent-Length: {len}\r\n\r\n", "{price}", Permanent("204")),
    case("304 Not Modified", "HTTP/1.1 304 Not Modified\r\n\r\n", "", Permanent("304")),
    case("100 Continue, then the price", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n", "{price}", Price),
    case("103 Early Hints, then the price", "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n", "{price}", Price),
    case("301 redirect", "HTTP/1.1 301 Moved Permanently\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n", "", Permanent("301")),
    case("302 redirect with a body", "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: {len}\r\n\r\n", "<a href=\"/elsewhere\">here</a>", Permanent("302")),
    case("400 JSON error", "HTTP/1.1 400 Bad Request\r\nContent-Length: {len}\r\n\r\n", "{\"error\": \"bad date\"}", Permanent("400")),
    case("403 HTML", "HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\nContent-Length: {len}\r\n\r\n", "<html>Forbidden</html>", Permanent("403")),
    case("404 no price", "HTTP/1.1 404 Not Found\r\nContent-Length: {len}\r\n\r\n", "{\"error\": \"no price\"}", NoPrice),
    case("404 empty", "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "", NoPrice),
    case("404 no price, chunked", "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n", "15\r\n{\"error\": \"no price\"}\r\n0\r\n\r\n", NoPrice),
    case("404 no price, to the close", "HTTP/1.1 404 Not Found\r\n\r\n", "{\"error\": \"no price\"}", NoPrice),
    case("404 HTML", "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {len}\r\n\r\n", "<html>Not Found</html>", Permanent("404")),
    case("404 another error", "HTTP/1.1 404 Not Found\r\nContent-Length: {len}\r\n\r\n", "{\"error\": \"no route\"}", Permanent("404")),
    case("404 unknown exchange", "HTTP/1.1 404 Not Found\r\nContent-Length: {len}\r\n\r\n", "{\"error\": \"unknown exchange\"}", Permanent("unknown exchange")),
    case("404 no price, cut off", "HTTP/1.1 404 Not Found\r\nContent-Length: {len+10}\r\n\r\n", "{\"error\": \"no price\"}", Transient(CUT)),
    case("408 Request Timeout", "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n", "", Transient("408")),
    case("500 with a price body", "HTTP/1.1 500 Internal Server Error\r\nContent-Length: {len}\r\n\r\n", "{price}", Transient("500")),
    case("502 HTML", "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: {len}\r\n\r\n", "<html>Bad Gateway</html>", Transient("502")),
    case("503 with Retry-After", "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n", "", Transient("503")),
    // JSON bodies (each framed with an exact Content-Length).
    case("null", OK_CL, "null", NoPrice),
    case("null with whitespace", OK_CL, " \r\n null \n", NoPrice),
    case("whitespace only", OK_CL, " \n ", NoPrice),
    case("extra fields", OK_CL, "{price+extra}", Price),
    case("wrong Content-Type", "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len}\r\n\r\n", "{price}", Price),
    case("missing field close", OK_CL, "{price-close}", Transient("missing field `close`")),
    case("numbers as strings", OK_CL, "{price-strings}", Transient(JSON)),
    case("NaN", OK_CL, "{price-nan}", Transient(JSON)),
    case("a negative price", OK_CL, "{price-negative}", Transient("invalid price")),
    case("a number out of range", OK_CL, "{price-huge}", Transient(JSON)),
    case("day as a number", OK_CL, "{price-daynumber}", Transient(JSON)),
    case("another day", OK_CL, "{price-otherday}", Transient("field 'day'")),
    case("another exchange", OK_CL, "{price-otherexchange}", Transient("field 'exchange'")),
    case("a list, not an object", OK_CL, "[{price}]", Transient(JSON)),
    case("truncated JSON", OK_CL, "{price-truncated}", Transient(JSON)),
    case("a byte-order mark", OK_CL, "\u{feff}{price}", Transient(JSON)),
    case("gzip, as pricegrid asks", "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len}\r\n\r\n", "{gzip}", Price),
    case("gzip that is not gzip", "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len}\r\n\r\n", "{price}", Transient("cannot be decoded")),
    case("a content coding nobody asked for", "HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: {len}\r\n\r\n", "{gzip}", Transient("content coding")),
    case("the string \"null\"", OK_CL, "\"null\"", Transient(JSON)),
    case("an empty object", OK_CL, "{}", Transient(JSON)),
];

const OK_CL: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n";

/// The price every "Price" case carries.
const PRICE: Ohlcv = Ohlcv {
    open: 100.5,
    high: 110.0,
    low: 90.0,
    close: 105.25,
    volume: 1000.0,
};

fn price_json(day: &str, close: &str, extra: &str) -> String {
    format!(
        r#"{{"exchange":"kraken","symbol":"eth","open":100.5,"high":110,"low":90,"close":{close},"volume":1000,"day":"{day}"{extra}}}"#
    )
}

/// A case's body for `day`, placeholders filled.
fn body_of(case: &Case, day: &str) -> Vec<u8> {
    let price = price_json(day, "105.25", "");
    let special = match case.body {
        "{price+extra}" => Some(price_json(day, "105.25", r#","source":"x","trades":[1,2]"#)),
        "{price-close}" => Some(price.replace(r#""close":105.25,"#, "")),
        "{price-strings}" => Some(price_json(day, "\"105.25\"", "")),
        "{price-nan}" => Some(price_json(day, "NaN", "")),
        "{price-negative}" => Some(price_json(day, "-105.25", "")),
        "{price-huge}" => Some(price_json(day, "1e400", "")),
        "{price-daynumber}" => Some(price.replace(&format!("\"{day}\""), "20200101")),
        "{price-otherday}" => Some(price_json("1999-12-31", "105.25", "")),
        "{price-otherexchange}" => Some(price.replace("kraken", "bitstamp")),
        "{price-truncated}" => Some(price[..price.len() / 2].to_owned()),
        "{big}" => Some(" ".repeat(100 * 1024)),
        "{gzip}" => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(price.as_bytes()).unwrap();
            return gz.finish().unwrap();
        }
        _ => None,
    };
    let body = special.unwrap_or_else(|| {
        let (first, rest) = price.split_at(1);
        case.body
            .replace("{hex}", &format!("{:x}", price.len()))
            .replace("{HEX}", &format!("{:X}", price.len()))
            .replace("{hex-1}", &format!("{:x}", rest.len()))
            .replace("{price-1}", rest)
            .replace("\r\n{\r\n", &format!("\r\n{first}\r\n"))
            .replace("{price}", &price)
    });
    body.into_bytes()
}

/// A case's answer for `day`, byte for byte.
fn answer_of(case: &Case, day: &str) -> Script {
    let body = body_of(case, day);
    let len = body.len();
    let head = case
        .head
        .replace("{len}", &len.to_string())
        .replace("{len-10}", &len.saturating_sub(10).to_string())
        .replace("{len+10}", &(len + 10).to_string());
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&body);
    Script::send(
        bytes,
        if case.keep {
            Then::ReadNext
        } else {
            Then::Close
        },
    )
}

fn listing(names: &str) -> Script {
    let head = format!("{OK}Content-Length: {}\r\n\r\n{names}", names.len());
    Script::send(head.into_bytes(), Then::ReadNext)
}

fn day_of(i: usize) -> NaiveDate {
    day(FIRST) + chrono::Days::new(i as u64)
}

#[actix_rt::test]
async fn every_malformed_answer_ends_in_the_state_it_deserves() {
    within(ROUND_DEADLINE, async {
        let url = raw_server(|path| match path {
            "/exchanges" => listing(r#"["kraken"]"#),
            "/symbols" => listing(r#"["eth"]"#),
            _ => {
                let found = path
                    .strip_prefix("/price/kraken/eth/")
                    .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                    .and_then(|d| usize::try_from((d - day(FIRST)).num_days()).ok())
                    .and_then(|i| CASES.get(i).map(|c| (i, c)));
                match found {
                    Some((i, c)) => answer_of(c, &day_of(i).to_string()),
                    None => Script::send(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
                        Then::Close,
                    ),
                }
            }
        })
        .await;
        let last = day_of(CASES.len() - 1).to_string();
        let config = TestConfig::fetching_from(&url)
            .window(FIRST, last.as_str())
            .workers(4)
            .quick_backoff()
            .max_attempts(ATTEMPTS)
            .retry_for(Duration::from_secs(5))
            .timeout(Duration::from_secs(2))
            .build();
        let started = Instant::now();
        let report = fetch_round(arc(config), &Source::remote(url), false)
            .await
            .expect("the round runs");
        let took = started.elapsed();
        let c = report.summary.counts;
        println!("the corpus: {} cases in {took:.2?}; {c:?}", CASES.len());
        assert_eq!(c.tasks as usize, CASES.len(), "{c:?}");
        assert_eq!(c.tasks, c.done(), "{c:?}");

        let store = &report.snapshot.prices;
        let (kraken, eth) = (
            Exchange::new("kraken").unwrap(),
            Symbol::new("eth").unwrap(),
        );
        let mut wrong = Vec::new();
        for (i, case) in CASES.iter().enumerate() {
            let d = day_of(i);
            let cell = store.get(&kraken, &eth, d);
            let state = cell.as_ref().map(|c| c.state);
            let note = cell.as_ref().and_then(|c| c.note.clone());
            let (reason, attempts) = note
                .as_ref()
                .map_or((String::new(), 0), |n| (n.reason.clone(), n.attempts));
            let ok = match case.expect {
                Price => {
                    state == Some(CellState::Final)
                        && store.answer(&kraken, &eth, d) == Some(Some(PRICE))
                }
                NoPrice => state == Some(CellState::NoPrice),
                Transient(why) => {
                    state == Some(CellState::Failed) && reason.contains(why) && attempts == ATTEMPTS
                }
                Permanent(why) => {
                    state == Some(CellState::Failed) && reason.contains(why) && attempts == 1
                }
            };
            println!(
                "{:>2} {d} {:<60} {:?} -> {state:?} {reason:?} ({attempts} attempts){}",
                i,
                case.name,
                case.expect,
                if ok { "" } else { "  <-- WRONG" }
            );
            if !ok {
                wrong.push(case.name);
            }
        }
        assert!(wrong.is_empty(), "cases in the wrong state: {wrong:?}");
        assert!(took < Duration::from_secs(30), "the round took {took:?}");
    })
    .await;
}
