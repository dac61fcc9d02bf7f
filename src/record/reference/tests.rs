//! `record::reference` against a real SQLite file: points in time, the
//! rows it skips, the step from schema 2, and the cells left out read back.

use super::*;
use crate::model::Exchange;
use crate::quality::{Excluded, Exclusion};
use crate::record::SqliteRecord as Record;

#[test]
fn every_reason_for_leaving_a_cell_out_reads_back_exactly() {
    let x = |e: &str, why: Exclusion| Excluded {
        exchange: Exchange::new(e).unwrap(),
        why,
    };
    let excluded = vec![
        x(
            "a",
            Exclusion::Flagged {
                flags: vec!["zero".into(), "ohlc_order".into()],
            },
        ),
        x(
            "b",
            Exclusion::NotUsd {
                quote: "EUR".into(),
            },
        ),
        x(
            "c",
            Exclusion::OffPeg {
                coin: "usdt".into(),
                peg: 0.951,
            },
        ),
        x(
            "d",
            Exclusion::PegUnknown {
                coin: "usdc".into(),
            },
        ),
        x("e", Exclusion::Stale),
        x(
            "f",
            Exclusion::Outlier {
                median: 100.2,
                threshold: 2.004,
            },
        ),
        x(
            "g",
            Exclusion::PegUnknown {
                coin: "usdc".into(),
            },
        ),
    ];
    let text = encode_excluded(&excluded);
    assert!(text.contains("peg_unknown:usdc=d,g"), "{text}");
    assert_eq!(decode_excluded(&text).unwrap(), excluded);
    assert_eq!(decode_excluded("").unwrap(), []);
    assert!(decode_excluded("sideways=a").is_err());
}

fn reference(close: Option<f64>, status: Status) -> Reference {
    Reference {
        close,
        status,
        constituents: vec![Constituent {
            exchange: Exchange::new("kraken").unwrap(),
            close: 100.0,
            volume: 2.5,
            provisional: false,
        }],
        excluded: vec![Excluded {
            exchange: Exchange::new("okx").unwrap(),
            why: Exclusion::Outlier {
                median: 100.0,
                threshold: 2.0,
            },
        }],
        dispersion: close.map(|c| Dispersion {
            min: c,
            max: c,
            spread: 0.0,
            mad: 0.0,
        }),
    }
}

#[test]
fn a_reference_reads_back_as_it_stood_at_the_end_of_a_round() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let record = Record::open(&path).unwrap();
    assert!(!record.has_references().unwrap());
    let btc = Symbol::new("btc").unwrap();
    let d = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
    let first = reference(None, Status::Insufficient);
    let later = reference(Some(100.0), Status::Final);
    record
        .write_references(1, &[(btc.clone(), d, first)])
        .unwrap();
    record
        .write_references(3, &[(btc.clone(), d, later.clone())])
        .unwrap();
    let at = |round| {
        record
            .references(Some(&btc), None, None, round)
            .unwrap()
            .into_iter()
            .map(|r| (r.round, r.close, r.status))
            .collect::<Vec<_>>()
    };
    assert_eq!(at(Some(0)), []);
    assert_eq!(at(Some(1)), [(1, None, Status::Insufficient)]);
    assert_eq!(at(Some(2)), [(1, None, Status::Insufficient)]);
    assert_eq!(at(None), [(3, Some(100.0), Status::Final)]);
    record
        .write_references(4, &[(btc.clone(), d, later.clone())])
        .unwrap();
    assert_eq!(
        at(None),
        [(3, Some(100.0), Status::Final)],
        "judged again to the same answer: no row"
    );
    let nothing = Reference {
        close: None,
        status: Status::Insufficient,
        constituents: vec![],
        excluded: vec![],
        dispersion: None,
    };
    let next = d.succ_opt().unwrap();
    record
        .write_references(5, &[(btc.clone(), next, nothing.clone())])
        .unwrap();
    assert_eq!(
        record
            .references(Some(&btc), Some(next), None, None)
            .unwrap(),
        [],
        "an empty reference of a day that never had one writes nothing"
    );
    record
        .write_references(6, &[(btc.clone(), d, nothing)])
        .unwrap();
    assert_eq!(
        at(None),
        [(6, None, Status::Insufficient)],
        "a day whose prices went has no reference any more"
    );
    assert_eq!(at(Some(5)), [(3, Some(100.0), Status::Final)]);
    let read = record
        .references(Some(&btc), None, Some(d), Some(5))
        .unwrap();
    assert_eq!(read[0].constituents, [Exchange::new("kraken").unwrap()]);
    assert_eq!(read[0].excluded, later.excluded);
    assert_eq!(read[0].dispersion, later.dispersion);
    let other = Symbol::new("eth").unwrap();
    assert_eq!(
        record.references(Some(&other), None, None, None).unwrap(),
        []
    );
    assert_eq!(
        record
            .references(None, Some(d.succ_opt().unwrap()), None, None)
            .unwrap(),
        []
    );
}

#[test]
fn a_version_2_record_gains_an_empty_reference_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    drop(Record::open(&path).unwrap());
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TABLE reference; \
             UPDATE meta SET value = '2' WHERE key = 'schema_version';",
        )
        .unwrap();
    }
    assert!(matches!(
        Record::open_read_only(&path),
        Err(RecordError::OlderFormat { found: 2, .. })
    ));
    let record = Record::open(&path).unwrap();
    assert!(!record.has_references().unwrap());
    let version: String = record
        .conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        version,
        crate::record::SCHEMA_VERSION.to_string(),
        "and on to the newest"
    );
}
