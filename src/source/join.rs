//! A request's URL from the client's base and a path (`join`): what
//! `Url::join` gives, without parsing the whole URL again for every
//! request when the path is plain (the classic API's names and dates, and
//! the adapters' paths and queries are). A path that is not plain goes
//! through `Url::join`. Plain strings in, a string out; no I/O.

use url::Url;

/// `base` (whose path ends in '/', with no query or fragment) joined with
/// the relative `path`, as `Url::join` would.
pub(super) fn join(base: &Url, path: &str) -> String {
    let path = path.trim_start_matches('/');
    if base.path().ends_with('/')
        && base.query().is_none()
        && base.fragment().is_none()
        && plain(path)
    {
        let mut url = String::with_capacity(base.as_str().len() + path.len());
        url.push_str(base.as_str());
        url.push_str(path);
        return url;
    }
    base.join(path)
        .map_or_else(|_| format!("{base}{path}"), String::from)
}

/// A relative path that `Url::join` leaves as written: only characters it
/// never encodes (no `%`, `'`, space, `#`, `\`, ...), no `.` or `..`
/// segment, and no `:` before the first `/` (it would read as a scheme).
fn plain(path: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~!$&()*+,;=:@/?".contains(c);
    if !path.chars().all(allowed) {
        return false;
    }
    let route = path.split('?').next().unwrap_or_default();
    let first = route.split('/').next().unwrap_or_default();
    !first.contains(':') && route.split('/').all(|s| s != "." && s != "..")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DayRange, ExchangeApi};
    use crate::source::exchanges;

    /// How a path was joined before `join`.
    fn by_url(base: &Url, path: &str) -> String {
        let path = path.trim_start_matches('/');
        base.join(path)
            .map_or_else(|_| format!("{base}{path}"), String::from)
    }

    /// Every path the client asks (the classic API's and each adapter's
    /// candles and listing, for markets as the exchanges name them) joins
    /// as `Url::join` joins it, and is plain.
    #[test]
    fn every_path_the_client_asks_joins_as_url_joins_it() {
        let day = |d: &str| d.parse::<chrono::NaiveDate>().expect("a date");
        let days = DayRange {
            from: day("2020-01-01"),
            to: day("2020-03-31"),
        };
        let markets = [
            "BTCUSDT", "XXBTZUSD", "BTC-USD", "btcusd", "tBTCUSD", "BTC_USDT", "BTC/USD", "BTC:USD",
        ];
        let mut paths = vec!["price/kraken/btc/2020-03-01".to_owned(), "exchanges".into()];
        for api in ExchangeApi::ALL.into_iter().filter_map(exchanges::adapter) {
            paths.push(api.instruments_call().path);
            for market in markets {
                paths.push(api.candles_call(market, days).path);
            }
        }
        for base in ["http://127.0.0.1:8080/", "https://api.example.com/v1/"] {
            let base = Url::parse(base).expect("a URL");
            for path in &paths {
                assert!(plain(path.trim_start_matches('/')), "{path}");
                assert_eq!(join(&base, path), by_url(&base, path), "{path}");
            }
        }
    }

    /// Any path, plain or not, joins as `Url::join` joins it: 20,000
    /// strings over an alphabet of the characters that matter.
    #[test]
    fn any_path_joins_as_url_joins_it() {
        let alphabet: Vec<char> = "ab0-._~:/?#%' \\@=&+é.".chars().collect();
        let base = Url::parse("http://127.0.0.1:8080/api/").expect("a URL");
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut plain_ones = 0;
        for _ in 0..20_000 {
            let mut path = String::new();
            for _ in 0..(seed % 12) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                path.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            assert_eq!(join(&base, &path), by_url(&base, &path), "{path:?}");
            plain_ones += usize::from(plain(path.trim_start_matches('/')));
        }
        assert!(
            plain_ones > 2_000,
            "only {plain_ones} plain paths were tried"
        );
    }
}
