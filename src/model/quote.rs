//! Quote currencies: what a market's prices are counted in (`USD` in
//! `BTC/USD`). Shared by the config (`[exchanges.NAME] quotes`, checked
//! here once) and the client adapters (which market of a symbol to ask, and
//! which of an exchange's listed markets make its universe under
//! `symbols = "all"`). A plain value: no I/O.

/// The quotes a market is chosen in when a config names none, in order of
/// preference: a price in USD first, then in the two largest dollar
/// stablecoins (a price in USDT is not a price in USD, so each cell keeps
/// the market it was asked in).
pub const DEFAULT_QUOTES: [&str; 3] = ["USD", "USDT", "USDC"];

/// The quote codes a config may name: the fiat currencies and stablecoins
/// exchanges quote daily candles in, and the crypto quotes they list whole
/// markets against. A code outside it is far more likely a typo (`UDST`)
/// than a wish.
pub const KNOWN_QUOTES: [&str; 24] = [
    "USD", "USDT", "USDC", "EUR", "GBP", "JPY", "KRW", "CAD", "AUD", "CHF", "TRY", "BRL", "MXN",
    "PLN", "DAI", "BUSD", "TUSD", "FDUSD", "USDP", "PYUSD", "USDE", "BTC", "ETH", "BNB",
];

/// Why `code` cannot be a quote: not upper case, or not one pricegrid knows.
pub fn quote_problem(code: &str) -> Option<String> {
    if KNOWN_QUOTES.contains(&code) {
        return None;
    }
    let upper = code.to_ascii_uppercase();
    if upper != code && KNOWN_QUOTES.contains(&upper.as_str()) {
        return Some(format!("quote {code:?} must be upper case: {upper:?}"));
    }
    Some(format!(
        "unknown quote {code:?}: expected one of {}",
        KNOWN_QUOTES.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quote_is_a_known_upper_case_code() {
        for q in DEFAULT_QUOTES {
            assert_eq!(quote_problem(q), None, "{q}");
        }
        assert_eq!(
            quote_problem("usdt").as_deref(),
            Some("quote \"usdt\" must be upper case: \"USDT\"")
        );
        let typo = quote_problem("UDST").expect("a typo");
        assert!(
            typo.starts_with("unknown quote \"UDST\": expected one of USD, USDT"),
            "{typo}"
        );
    }
}
