//! Test-only faults inside the fetchers (feature `fault-hooks`): make a
//! fetch panic on chosen keys, either inside the fetcher's panic guard (the
//! actor is rebuilt) or outside it (the worker thread dies), or hang.
//!
//! Process-global on purpose: fetchers run on threads the tests cannot
//! reach. Each chosen key panics once, so the retry can succeed.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::model::TaskKey;

/// Where the panic happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanicKind {
    /// Inside the fetch: caught, the actor is rebuilt on its thread.
    Caught,
    /// Outside the guard: the worker thread dies.
    KillThread,
    /// No panic: the fetch blocks this long first (a hung fetcher).
    Hang(std::time::Duration),
}

static PLAN: Mutex<Option<HashMap<TaskKey, PanicKind>>> = Mutex::new(None);

/// Panics on the next fetch of each of these keys.
pub fn panic_on(keys: impl IntoIterator<Item = (TaskKey, PanicKind)>) {
    let mut plan = PLAN.lock().unwrap_or_else(|e| e.into_inner());
    plan.get_or_insert_with(HashMap::new).extend(keys);
}

/// Forgets every planned panic.
pub fn clear() {
    *PLAN.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

fn take(key: &TaskKey, kind: PanicKind) -> bool {
    let mut plan = PLAN.lock().unwrap_or_else(|e| e.into_inner());
    let Some(map) = plan.as_mut() else {
        return false;
    };
    if map.get(key) == Some(&kind) {
        map.remove(key);
        true
    } else {
        false
    }
}

/// Called by a fetcher inside its panic guard.
pub fn before_fetch(key: &TaskKey) {
    if take(key, PanicKind::Caught) {
        panic!("fault hook: planned panic on {key}");
    }
    let hang = {
        let mut plan = PLAN.lock().unwrap_or_else(|e| e.into_inner());
        match plan.as_mut().and_then(|m| m.get(key).copied()) {
            Some(PanicKind::Hang(d)) => {
                plan.as_mut().map(|m| m.remove(key));
                Some(d)
            }
            _ => None,
        }
    };
    if let Some(d) = hang {
        std::thread::sleep(d);
    }
}

/// Called by a fetcher outside its panic guard.
pub fn before_guard(key: &TaskKey) {
    if take(key, PanicKind::KillThread) {
        panic!("fault hook: planned thread death on {key}");
    }
}
