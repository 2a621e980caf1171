//! Close codes (RFC 6455 and ours) and which one a read error deserves.

use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::Error as WsError;

pub(crate) mod close_code {
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const INVALID_DATA: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const RESTART: u16 = 1012;
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// A newer connection of the same device took this one's place: do not reconnect.
    pub const REPLACED: u16 = 4001;
}

/// The close code and reason for a failed read, or `None` when the client is simply gone
/// (reset, closed) and there is nobody to tell.
pub(crate) fn close_for_read_error(error: axum::Error) -> Option<(u16, &'static str)> {
    let inner = error.into_inner();
    match inner.downcast_ref::<WsError>()? {
        WsError::Capacity(_) => Some((close_code::TOO_BIG, "frame too large")),
        WsError::Utf8(_) => Some((close_code::INVALID_DATA, "text frame is not valid UTF-8")),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(_) => Some((close_code::PROTOCOL_ERROR, "WebSocket protocol error")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::error::CapacityError;

    use super::*;

    fn close_of(e: WsError) -> Option<u16> {
        close_for_read_error(axum::Error::new(e)).map(|(code, _)| code)
    }

    #[test]
    fn each_read_error_gets_its_own_code() {
        let too_long = CapacityError::MessageTooLong {
            size: 10,
            max_size: 1,
        };
        assert_eq!(close_of(WsError::Capacity(too_long)), Some(1009));
        assert_eq!(close_of(WsError::Utf8("bad".into())), Some(1007));
        assert_eq!(
            close_of(WsError::Protocol(ProtocolError::NonZeroReservedBits)),
            Some(1002)
        );
        assert_eq!(close_of(WsError::ConnectionClosed), None);
        assert_eq!(
            close_of(WsError::Protocol(
                ProtocolError::ResetWithoutClosingHandshake
            )),
            None
        );
    }
}
