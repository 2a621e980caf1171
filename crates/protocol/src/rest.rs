//! The query strings of the REST API, parsed the way the gateway parses them (serde over
//! `application/x-www-form-urlencoded`), so they can be checked and fuzzed without a server.

use serde::Deserialize;

/// The most users one presence query may name.
pub const MAX_PRESENCE_USERS: usize = 500;

/// `GET /v1/chats/{chat_id}/messages?before_seq=&after_seq=&limit=`
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct HistoryParams {
    pub before_seq: Option<u64>,
    pub after_seq: Option<u64>,
    pub limit: Option<u32>,
}

/// `GET /v1/presence?user_ids=a,b`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PresenceParams {
    pub user_ids: String,
}

impl PresenceParams {
    /// The named users: comma-separated, empty names skipped.
    pub fn user_ids(&self) -> Vec<String> {
        self.user_ids
            .split(',')
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// Parses a query string (without the `?`) into `T`; the error says what is wrong.
pub fn parse_query<'de, T: Deserialize<'de>>(query: &'de str) -> Result<T, String> {
    serde_urlencoded::from_str(query).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_params_parse_or_say_why_not() {
        let p: HistoryParams = parse_query("before_seq=10&limit=5").unwrap();
        assert_eq!(
            (p.before_seq, p.after_seq, p.limit),
            (Some(10), None, Some(5))
        );
        assert!(parse_query::<HistoryParams>("limit=-1").is_err());
        assert!(parse_query::<HistoryParams>("after_seq=x").is_err());
    }

    #[test]
    fn presence_ids_skip_empty_names() {
        let p: PresenceParams = parse_query("user_ids=a,,b,").unwrap();
        assert_eq!(p.user_ids(), vec!["a", "b"]);
        assert!(parse_query::<PresenceParams>("").is_err());
    }
}
