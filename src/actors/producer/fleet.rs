//! The Producer's part in a fleet (a PostgreSQL record shared by several
//! daemons): before a round, it asks the Recorder for this daemon's leases
//! and the round's number (`TakeLeases`), has the Aggregator adopt what the
//! record holds for lanes it just took (another daemon may have settled
//! them), and keeps to the lanes it holds. It decides no lease itself (the
//! record does, in one transaction) and never touches the map.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::watch;

use super::RoundError;
use crate::actors::aggregator::{Adopt, Aggregator};
use crate::actors::recorder::{Recorder, TakeLeases};
use crate::model::LeaseScope;
use crate::model::{Exchange, Symbol};
use crate::record::Fleet;

/// How this daemon leases its lanes.
pub struct FleetLink {
    pub recorder: Addr<Recorder>,
    pub scope: LeaseScope,
    pub ttl: Duration,
    /// The fleet as the last lease saw it (for `/v1/status`).
    pub view: Arc<watch::Sender<Option<Fleet>>>,
}

impl FleetLink {
    /// Leases the lanes of `pairs`: returns the round's number and the
    /// pairs of the lanes held (a symbol list cut to them under
    /// `lease = "market"`).
    pub async fn lease(
        &self,
        pairs: Vec<(Exchange, Arc<[Symbol]>)>,
        aggregator: &Addr<Aggregator>,
    ) -> Result<(u64, Vec<(Exchange, Arc<[Symbol]>)>), RoundError> {
        let scope = self.scope;
        let mut lanes: Vec<String> = pairs
            .iter()
            .flat_map(|(e, symbols)| {
                symbols
                    .iter()
                    .map(move |s| scope.lane(e.as_str(), s.as_str()))
            })
            .collect();
        lanes.sort();
        lanes.dedup();
        let (held, adopted) = self
            .recorder
            .send(TakeLeases {
                lanes,
                scope,
                ttl: self.ttl,
            })
            .await??;
        if !held.taken.is_empty() || !held.released.is_empty() {
            log::info!(
                "round {}: holding {} lane(s){}{}",
                held.round,
                held.lanes.len(),
                if held.taken.is_empty() {
                    String::new()
                } else {
                    format!(", took {}", held.taken.join(", "))
                },
                if held.released.is_empty() {
                    String::new()
                } else {
                    format!(", gave back {}", held.released.join(", "))
                },
            );
        }
        if !adopted.is_empty() {
            log::info!(
                "round {}: {} cell(s) of the lanes taken read from the record",
                held.round,
                adopted.len()
            );
            aggregator.send(Adopt { cells: adopted }).await?;
        }
        let round = held.round;
        let kept = pairs
            .into_iter()
            .filter_map(|(e, symbols)| {
                let mine: Vec<Symbol> = symbols
                    .iter()
                    .filter(|s| held.lanes.contains_key(&scope.lane(e.as_str(), s.as_str())))
                    .cloned()
                    .collect();
                (!mine.is_empty()).then(|| (e, Arc::from(mine)))
            })
            .collect();
        self.view.send_replace(Some(held.fleet));
        Ok((round, kept))
    }
}
