//! Scripted answers of a fake provider: replies for one device token first, then the
//! general script, then (when both are used up) the provider's success.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

pub(crate) struct Script<R> {
    general: Mutex<VecDeque<R>>,
    by_token: Mutex<HashMap<String, VecDeque<R>>>,
}

impl<R> Default for Script<R> {
    fn default() -> Self {
        Script {
            general: Mutex::default(),
            by_token: Mutex::default(),
        }
    }
}

impl<R> Script<R> {
    pub(crate) fn extend(&self, replies: impl IntoIterator<Item = R>) {
        self.general.lock().unwrap().extend(replies);
    }

    pub(crate) fn extend_for(&self, token: &str, replies: impl IntoIterator<Item = R>) {
        let mut by_token = self.by_token.lock().unwrap();
        by_token
            .entry(token.to_owned())
            .or_default()
            .extend(replies);
    }

    /// The next scripted answer for a request to `token`, if any.
    pub(crate) fn next(&self, token: &str) -> Option<R> {
        let for_token = self
            .by_token
            .lock()
            .unwrap()
            .get_mut(token)
            .and_then(VecDeque::pop_front);
        for_token.or_else(|| self.general.lock().unwrap().pop_front())
    }
}
