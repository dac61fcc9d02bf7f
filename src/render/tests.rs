//! Rendering reads back: CSV and JSON give the identical numbers, tables
//! line up, and a format is named the same everywhere.

use chrono::NaiveDate;

use super::*;
use crate::model::Ohlcv;
use crate::query::across;
use crate::query::fixtures::{cv, day, ex, row, sym};

/// Numbers whose shortest text is long or unusual: the cases where a
/// fixed precision or a lossy parse would change the value.
fn awkward_rows() -> Vec<Row> {
    let d = day(2020, 3, 13);
    vec![
        row(
            "kraken",
            "btc",
            d,
            Some(Ohlcv {
                open: 0.1 + 0.2,
                high: 1.0 / 3.0,
                low: 1e-7,
                close: 5e-324,
                volume: f64::MAX,
            }),
        ),
        row("binance", "btc", d, None),
        row(
            "coinbase-pro",
            "eth",
            day(2021, 12, 31),
            Some(Ohlcv {
                open: 123_456.789,
                high: 9_007_199_254_740_993.0,
                low: 0.0,
                close: 2.5,
                volume: 1e21,
            }),
        ),
    ]
}

fn opt_cell(cell: &str) -> Option<f64> {
    (!cell.is_empty()).then(|| cell.parse::<f64>().expect("a number cell"))
}

fn same_bits(a: Option<f64>, b: Option<f64>) -> bool {
    a.map(f64::to_bits) == b.map(f64::to_bits)
}

#[test]
fn csv_rows_read_back_to_identical_values() {
    let rows = awkward_rows();
    let text = render_rows(&rows, None, Format::Csv);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("a header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        [
            "exchange", "symbol", "day", "state", "open", "high", "low", "close", "volume",
            "flags", "reason"
        ]
    );
    let records: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .expect("valid CSV");
    assert_eq!(records.len(), rows.len());
    for (rec, row) in records.iter().zip(&rows) {
        assert_eq!(&rec[0], row.exchange.as_str());
        assert_eq!(&rec[1], row.symbol.as_str());
        assert_eq!(rec[2].parse::<NaiveDate>(), Ok(row.day));
        assert_eq!(&rec[3], row.state.as_str());
        for (i, f) in Field::ALL.iter().enumerate() {
            let want = row.price.map(|p| f.of(&p));
            let got = opt_cell(&rec[4 + i]);
            assert!(same_bits(got, want), "{f}: {got:?} != {want:?}");
        }
    }
    // The row without a price is there, with five empty cells.
    assert!(
        text.contains("\nbinance,btc,2020-03-13,none,,,,,,,\n"),
        "{text}"
    );
}

#[test]
fn csv_with_one_field_has_just_that_column() {
    let rows = awkward_rows();
    let text = render_rows(&rows, Some(Field::Volume), Format::Csv);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.headers().expect("a header"),
        vec!["exchange", "symbol", "day", "state", "volume", "flags", "reason"]
    );
    let got: Vec<Option<f64>> = reader
        .records()
        .map(|r| opt_cell(&r.expect("valid CSV")[4]))
        .collect();
    let want: Vec<Option<f64>> = rows.iter().map(|r| r.price.map(|p| p.volume)).collect();
    assert_eq!(got.len(), want.len());
    assert!(got.iter().zip(&want).all(|(g, w)| same_bits(*g, *w)));
}

#[test]
fn json_rows_read_back_to_identical_values() {
    let rows = awkward_rows();
    let text = render_rows(&rows, None, Format::Json);
    let back: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(back.len(), rows.len());
    for (obj, row) in back.iter().zip(&rows) {
        assert_eq!(obj.len(), 10, "{obj:?}");
        assert_eq!(obj["state"], row.state.as_str());
        assert_eq!(obj["exchange"], row.exchange.as_str());
        assert_eq!(obj["symbol"], row.symbol.as_str());
        assert_eq!(obj["day"], row.day.format("%Y-%m-%d").to_string());
        for f in Field::ALL {
            let want = row.price.map(|p| f.of(&p));
            let got = match &obj[f.name()] {
                serde_json::Value::Null => None,
                v => Some(v.as_f64().expect("a number")),
            };
            assert!(same_bits(got, want), "{f}: {got:?} != {want:?}");
        }
    }
    // Keys come in column order, as a person reading the JSON expects.
    let first = text.find("\"exchange\"").expect("exchange key");
    let open = text.find("\"open\"").expect("open key");
    let volume = text.find("\"volume\"").expect("volume key");
    assert!(first < open && open < volume);
}

#[test]
fn json_with_one_field_has_just_that_key_or_null() {
    let rows = awkward_rows();
    let text = render_rows(&rows, Some(Field::Close), Format::Json);
    let back: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(&text).expect("valid JSON");
    let keys: Vec<&str> = back[0].keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["close", "day", "exchange", "flags", "state", "symbol"]
    );
    assert_eq!(
        back[0]["close"].as_f64().map(f64::to_bits),
        Some(5e-324f64.to_bits())
    );
    assert!(back[1]["close"].is_null());
    assert_eq!(back[2]["close"].as_f64(), Some(2.5));
}

#[test]
fn a_table_has_a_header_and_one_aligned_line_per_row() {
    let rows = awkward_rows();
    let text = render_rows(&rows, None, Format::Table);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + rows.len());
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "exchange", "symbol", "day", "state", "open", "high", "low", "close", "volume",
            "flags", "reason"
        ]
    );
    let width = lines[0].len();
    assert!(lines.iter().all(|l| l.len() == width), "{text}");
    for (line, row) in lines[1..].iter().zip(&rows) {
        assert!(line.starts_with(row.exchange.as_str()), "{line}");
        assert!(line.contains(&format!("  {}  ", row.symbol)), "{line}");
        assert!(line.contains(&row.day.format("%Y-%m-%d").to_string()));
        match row.price {
            // Numbers are right-aligned: the volume ends its column.
            Some(p) => {
                for f in Field::ALL {
                    assert!(line.contains(&table_number(f.of(&p))), "{line}");
                }
                assert!(
                    line.trim_end()
                        .ends_with(&format!(" {}", table_number(p.volume))),
                    "{line}"
                );
            }
            None => assert_eq!(line.split_whitespace().count(), 4, "{line}"),
        }
    }
}

#[test]
fn a_table_with_one_field_shows_that_column() {
    let d = day(2020, 3, 13);
    let rows = [
        row("kraken", "btc", d, Some(cv(6500.25, 10.0))),
        row("binance", "btc", d, Some(cv(7.5, 10.0))),
    ];
    let text = render_rows(&rows, Some(Field::Close), Format::Table);
    assert_eq!(
        text,
        "exchange  symbol  day         state    close  flags  reason\n\
         kraken    btc     2020-03-13  final  6500.25               \n\
         binance   btc     2020-03-13  final      7.5               \n"
    );
}

#[test]
fn nothing_to_show_renders_only_the_header() {
    let table = render_rows(&[], None, Format::Table);
    assert_eq!(table.lines().count(), 1);
    assert!(table.starts_with("exchange  symbol  day"), "{table}");
    assert_eq!(
        render_rows(&[], Some(Field::Open), Format::Csv),
        "exchange,symbol,day,state,open,flags,reason\n"
    );
    assert_eq!(render_rows(&[], None, Format::Json).trim_end(), "[]");
    assert_eq!(render_across(&[], Format::Json).trim_end(), "[]");
    let across_table = render_across(&[], Format::Table);
    assert_eq!(across_table.lines().count(), 1);
    assert!(across_table.starts_with("symbol"), "{across_table}");
}

// ---- render_across ----

fn sample_across() -> Vec<Across> {
    let d = day(2020, 3, 13);
    across(&[
        row("kraken", "btc", d, Some(cv(0.1 + 0.2, 3.0))),
        row("binance", "btc", d, Some(cv(1.0 / 3.0, 7.0))),
        row("coinbase", "btc", d, Some(cv(0.7, 0.0))),
        row("kraken", "eth", d, Some(cv(0.0, 0.0))),
        row("binance", "eth", d, Some(cv(2.0, 0.0))),
    ])
}

#[test]
fn csv_across_reads_back_to_identical_values() {
    let figures = sample_across();
    assert_eq!(figures.len(), 2);
    let text = render_across(&figures, Format::Csv);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.headers().expect("a header"),
        vec![
            "symbol",
            "day",
            "exchanges",
            "min_close",
            "min_exchange",
            "max_close",
            "max_exchange",
            "median_close",
            "vwap_close",
            "spread_pct"
        ]
    );
    let records: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .expect("valid CSV");
    assert_eq!(records.len(), figures.len());
    for (rec, a) in records.iter().zip(&figures) {
        let back = Across {
            symbol: sym(&rec[0]),
            day: rec[1].parse().expect("a date"),
            exchanges: rec[2].parse().expect("a count"),
            min_close: rec[3].parse().expect("a number"),
            min_exchange: ex(&rec[4]),
            max_close: rec[5].parse().expect("a number"),
            max_exchange: ex(&rec[6]),
            median_close: rec[7].parse().expect("a number"),
            vwap_close: opt_cell(&rec[8]),
            spread_pct: opt_cell(&rec[9]),
        };
        assert_eq!(&back, a);
    }
    // eth: nothing traded and a zero close, so two empty cells.
    assert!(text.ends_with(",,\n"), "{text}");
}

#[test]
fn json_across_reads_back_to_identical_values() {
    let figures = sample_across();
    let text = render_across(&figures, Format::Json);
    let back: Vec<serde_json::Value> = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(back.len(), figures.len());
    for (v, a) in back.iter().zip(&figures) {
        assert_eq!(v["symbol"], a.symbol.as_str());
        assert_eq!(v["day"], "2020-03-13");
        assert_eq!(v["exchanges"].as_u64(), Some(a.exchanges as u64));
        assert_eq!(v["min_close"].as_f64(), Some(a.min_close));
        assert_eq!(v["min_exchange"], a.min_exchange.as_str());
        assert_eq!(v["max_close"].as_f64(), Some(a.max_close));
        assert_eq!(v["max_exchange"], a.max_exchange.as_str());
        assert_eq!(v["median_close"].as_f64(), Some(a.median_close));
        assert_eq!(v["vwap_close"].as_f64(), a.vwap_close);
        assert_eq!(v["spread_pct"].as_f64(), a.spread_pct);
    }
    assert!(back[1]["vwap_close"].is_null() && back[1]["spread_pct"].is_null());
}

#[test]
fn an_across_table_lines_up_every_figure() {
    let figures = sample_across();
    let text = render_across(&figures, Format::Table);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + figures.len());
    assert!(lines[0].starts_with("symbol"));
    assert!(lines[0].ends_with("spread_pct"));
    let width = lines[0].len();
    assert!(lines.iter().all(|l| l.len() == width), "{text}");
    for (line, a) in lines[1..].iter().zip(&figures) {
        for cell in across_cells(a, table_number)
            .iter()
            .filter(|c| !c.is_empty())
        {
            assert!(line.contains(cell.as_str()), "{line} lacks {cell}");
        }
    }
}

// ---- Format ----

#[test]
fn one_format_name_means_the_same_format_everywhere() {
    for f in Format::ALL {
        assert_eq!(f.name().parse::<Format>(), Ok(f));
        assert_eq!(
            <Format as clap::ValueEnum>::from_str(f.name(), false),
            Ok(f)
        );
        assert_eq!(f.to_string(), f.name());
    }
}

#[test]
fn a_bad_format_name_is_named_with_the_allowed_ones() {
    let err = "xml".parse::<Format>().expect_err("not a format");
    assert_eq!(err, ParseFormatError("xml".to_owned()));
    let msg = err.to_string();
    assert!(msg.contains("\"xml\""), "{msg}");
    for allowed in ["table", "json", "csv"] {
        assert!(msg.contains(allowed), "{msg} lacks {allowed}");
    }
    assert!("CSV".parse::<Format>().is_err());
}

// ---- render_rounds ----

#[test]
fn a_running_round_is_listed_with_an_empty_finish_time() {
    use crate::record::{RoundRow, RoundStatus};
    let t = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().expect("a time");
    let rounds = [
        RoundRow {
            round: 8,
            started: t("2026-11-24T11:15:00Z"),
            finished: None,
            config_version: 3,
            status: RoundStatus::Running,
            counts: crate::model::Counts::default(),
        },
        RoundRow {
            round: 7,
            started: t("2026-11-24T10:15:00Z"),
            finished: Some(t("2026-11-24T10:15:02.5Z")),
            config_version: 3,
            status: RoundStatus::Finished,
            counts: crate::model::Counts {
                tasks: 10,
                finals: 9,
                none: 1,
                ..Default::default()
            },
        },
    ];
    assert_eq!(
        render_rounds(&rounds, Format::Csv),
        "round,started,finished,status,config,tasks,final,provisional,none,failed,rejected\n\
         8,2026-11-24T11:15:00.000Z,,running,3,0,0,0,0,0,0\n\
         7,2026-11-24T10:15:00.000Z,2026-11-24T10:15:02.500Z,finished,3,10,9,0,1,0,0\n"
    );
    let table = render_rounds(&rounds, Format::Table);
    let width = table.lines().next().expect("a header").len();
    assert!(table.lines().all(|l| l.len() <= width), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&render_rounds(&rounds, Format::Json)).expect("valid JSON");
    assert_eq!(json[1]["round"], 7);
    assert_eq!(json[1]["status"], "finished");
    assert!(json[0]["finished"].is_null());
}

#[test]
fn a_cell_asked_in_an_exchanges_market_names_it_in_json() {
    let mut on_kraken = row("kraken", "btc", day(2020, 3, 13), Some(cv(7.0, 1.0)));
    on_kraken.market = Some("XBTUSD".to_owned());
    let classic = row("bitstamp", "btc", day(2020, 3, 13), Some(cv(7.0, 1.0)));
    let text = render_rows(&[on_kraken, classic], None, Format::Json);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v[0]["market"], "XBTUSD");
    assert!(
        v[1].get("market").is_none(),
        "the classic API has no market"
    );
}

#[test]
fn a_table_rounds_computed_figures_and_csv_and_json_keep_them_exact() {
    for (x, shown) in [
        (4779.9050388583655, "4779.91"),
        (7.5, "7.5"),
        (6500.25, "6500.25"),
        (102.0, "102"),
        (-12.3456, "-12.35"),
        (0.30000000000000004, "0.3"),
        (1.0 / 3.0, "0.3333"),
        (0.000012345678, "0.00001235"),
        (0.0, "0"),
    ] {
        assert_eq!(table_number(x), shown, "{x}");
    }
    // Too small to round to anything but 0: shown exactly.
    assert_eq!(table_number(5e-324), number(5e-324));
    let mut figures = sample_across();
    figures[0].median_close = 4779.9050388583655;
    let table = render_across(&figures, Format::Table);
    assert!(
        table.contains("4779.91") && !table.contains("4779.905"),
        "{table}"
    );
    let csv = render_across(&figures, Format::Csv);
    assert!(csv.contains("4779.9050388583655"), "{csv}");
    let json = render_across(&figures, Format::Json);
    assert!(json.contains("4779.9050388583655"), "{json}");
}
