//! What changed since a follower last looked: the relationships written or
//! erased through the engine, model activations, and writes to the book
//! that went around the engine. The score index (`crate::book`) follows it
//! to keep its rows current.
//!
//! Nothing is kept until someone subscribes, so an engine without a
//! follower (the command line, benchmarks) holds nothing. Ids written many
//! times before the follower looks are kept once: the follower re-reads the
//! relationship, so it needs to know that it changed, not how often.

use std::collections::HashSet;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

#[derive(Default)]
pub struct Changes {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    subscribed: bool,
    ids: HashSet<String>,
    /// Counts notes, so a reader can wait for a follower to have taken
    /// everything noted before it asked (see [`Changes::noted`]).
    noted: u64,
    models: bool,
    book: bool,
}

/// What [`Changes::wait`] hands over.
#[derive(Debug, Default)]
pub struct Taken {
    /// Relationships written or erased, each once, in no order.
    pub ids: Vec<String>,
    /// The note count once taken: everything noted up to it is in here.
    pub upto: u64,
    /// A model was activated.
    pub models: bool,
    /// The book changed in a way no id list says (a table training stored its rows).
    pub book: bool,
}

impl Changes {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change to the state is one field write: a panic cannot leave it half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts keeping changes for a follower.
    pub fn subscribe(&self) {
        self.lock().subscribed = true;
    }

    pub fn is_subscribed(&self) -> bool {
        self.lock().subscribed
    }

    pub fn note_ids<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut state = self.lock();
        if !state.subscribed {
            return;
        }
        for id in ids {
            if !state.ids.contains(id) {
                state.ids.insert(id.to_string());
            }
        }
        state.noted += 1;
        self.wake.notify_all();
    }

    pub fn note_models(&self) {
        self.note(|state| state.models = true);
    }

    pub fn note_book(&self) {
        self.note(|state| state.book = true);
    }

    fn note(&self, set: impl FnOnce(&mut State)) {
        let mut state = self.lock();
        if state.subscribed {
            set(&mut state);
            state.noted += 1;
            self.wake.notify_all();
        }
    }

    /// How many notes there have been: a follower that has handled a
    /// [`Taken`] with `upto` at least this has seen every change before now.
    pub fn noted(&self) -> u64 {
        self.lock().noted
    }

    /// Takes everything noted, waiting up to `timeout` for a first note.
    pub fn wait(&self, timeout: Duration) -> Taken {
        let state = self.lock();
        let (mut state, _) = self
            .wake
            .wait_timeout_while(state, timeout, |s| s.ids.is_empty() && !s.models && !s.book)
            .unwrap_or_else(PoisonError::into_inner);
        Taken {
            ids: state.ids.drain().collect(),
            upto: state.noted,
            models: std::mem::take(&mut state.models),
            book: std::mem::take(&mut state.book),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_kept_before_a_follower_subscribes() {
        let changes = Changes::default();
        changes.note_ids(["a"]);
        changes.note_models();
        assert_eq!(changes.noted(), 0);
        changes.subscribe();
        changes.note_ids(["a", "b", "a"]);
        changes.note_ids(["b"]);
        let taken = changes.wait(Duration::ZERO);
        let mut ids = taken.ids.clone();
        ids.sort();
        assert_eq!(ids, ["a", "b"], "each id once");
        assert_eq!(taken.upto, 2);
        assert!(!taken.models);
        changes.note_models();
        let taken = changes.wait(Duration::from_secs(5));
        assert!(taken.models && taken.ids.is_empty() && taken.upto == 3);
    }
}
