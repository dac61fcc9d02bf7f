//! A snapshot's header (format, time, round, counts) read without its
//! prices, so listing a directory of large snapshots stays cheap.

use std::fs::File;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{readable, CountsIn, SnapshotError};
use crate::model::Counts;

/// A snapshot's header: everything but the prices.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Header {
    pub format: u32,
    pub created: DateTime<Utc>,
    pub config_version: u64,
    pub round: u64,
    pub counts: Counts,
}

/// Reads only the header of a snapshot file (the fields written before
/// `prices`), without reading the prices.
pub fn read_header(path: &Path) -> Result<Header, SnapshotError> {
    use serde::de::{Error as _, IgnoredAny, MapAccess, Visitor};
    use std::cell::RefCell;

    const DONE: &str = "pricegrid: header complete";
    #[derive(Default)]
    struct Partial {
        format: Option<u32>,
        created: Option<DateTime<Utc>>,
        config_version: Option<u64>,
        round: Option<u64>,
        counts: Option<CountsIn>,
    }
    struct V<'a>(&'a RefCell<Partial>);
    impl<'de> Visitor<'de> for V<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a snapshot object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<String>()? {
                let mut h = self.0.borrow_mut();
                match key.as_str() {
                    "format" => h.format = Some(map.next_value()?),
                    "created" => h.created = Some(map.next_value()?),
                    "config_version" => h.config_version = Some(map.next_value()?),
                    "round" => h.round = Some(map.next_value()?),
                    "counts" => h.counts = Some(map.next_value()?),
                    "prices" | "failed" | "sources" => return Err(A::Error::custom(DONE)),
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(())
        }
    }
    let file = File::open(path).map_err(|source| SnapshotError::Read {
        path: path.to_owned(),
        source,
    })?;
    let partial = RefCell::new(Partial::default());
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(file));
    if let Err(e) = serde::Deserializer::deserialize_map(&mut de, V(&partial)) {
        if !e.to_string().starts_with(DONE) {
            return Err(SnapshotError::Parse {
                path: path.to_owned(),
                source: e,
            });
        }
    }
    let p = partial.into_inner();
    let missing = |field: &str| SnapshotError::Parse {
        path: path.to_owned(),
        source: serde_json::Error::custom(format!("missing field `{field}` before `prices`")),
    };
    let format = p.format.ok_or_else(|| missing("format"))?;
    if !readable(format) {
        return Err(SnapshotError::Version {
            path: path.to_owned(),
            found: format,
        });
    }
    Ok(Header {
        format,
        created: p.created.ok_or_else(|| missing("created"))?,
        config_version: p.config_version.unwrap_or(0),
        round: p.round.ok_or_else(|| missing("round"))?,
        counts: p.counts.ok_or_else(|| missing("counts"))?.into(),
    })
}
