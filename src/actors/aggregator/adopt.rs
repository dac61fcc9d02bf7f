//! `Adopt`: cells the record holds for lanes this daemon just took over in
//! a fleet (another daemon asked them while it held them), put in the map
//! as the record has them, so what that daemon settled is not asked again
//! and what it left unsettled is. The record's value is the newer: it
//! replaces what this daemon held of those lanes before it lost them.
//! Only the Aggregator's map and index of settled days change here.

use actix::prelude::*;

use super::Aggregator;
use crate::model::TaskKey;
use crate::store::Cell;

/// Put these cells, read from the record, in place.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Adopt {
    pub cells: Vec<(TaskKey, Cell)>,
}

impl Handler<Adopt> for Aggregator {
    type Result = ();

    fn handle(&mut self, msg: Adopt, _: &mut Self::Context) {
        let mut live = self.live.write();
        for (key, cell) in &msg.cells {
            live.store.put(key, cell);
            self.settled.set(key, live.store.settled_by(key));
        }
        self.metrics
            .prices_stored
            .set(live.store.price_count() as i64);
    }
}
