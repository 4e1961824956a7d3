//! Handle response codes (RFC 3652 2.2.2.3): what every answer of the node core says, in the
//! codes the Handle binary protocol carries and the Handle.Net JSON API echoes as `responseCode`.
//!
//! The core's errors each name their code ([`crate::node::WriteError::code`] and the like); a
//! front end maps a code to its own signal once (the HTTP API's one table is
//! `http::response::status`), so no handler pairs codes and statuses by hand.

use std::fmt;

/// A Handle response code. The discriminants are the protocol's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ResponseCode {
    Success = 1,
    /// The server failed (its storage, a bug): nothing the client can fix.
    Error = 2,
    ServerTooBusy = 3,
    /// The request is malformed: bad parameters, a body that is no request, too large.
    ProtocolError = 4,
    /// The protocol operation is not built (the Handle protocol's opcodes beyond resolution).
    OperationNotSupported = 5,
    /// A request was relayed from node to node too many times.
    RecursionCountTooHigh = 6,
    HandleNotFound = 100,
    HandleAlreadyExists = 101,
    InvalidHandle = 102,
    ValuesNotFound = 200,
    /// A value to add is already at its index.
    ValueAlreadyExists = 201,
    InvalidValue = 202,
    /// The identifier is not served here (CNRI's RC_SERVER_NOT_RESP): its prefix lives on
    /// another node.
    ServerNotResponsible = 301,
    /// The identifier's prefix is served by another node: the answer says which.
    PrefixReferral = 303,
    InvalidAdmin = 400,
    InsufficientPermissions = 401,
    AuthenticationNeeded = 402,
    AuthenticationFailed = 403,
    /// The answer names a challenge the node does not hold (never issued, answered, or expired).
    AuthenticationTimeout = 405,
    /// The request names a session the node does not hold (never set up, ended, or expired).
    SessionTimeout = 500,
    SessionFailed = 501,
    InvalidSessionSetup = 504,
    /// A session request was replayed (its counter was seen).
    SessionMessageRejected = 505,
    /// The administrator made all the requests its day allows (the national system's
    /// RC_REQUEST_LIMIT_DAILY; `[quota] daily_requests`).
    RequestLimitDaily = 603,
    /// The prefix holds all the identifiers it may (RC_REGISTER_COUNT_LIMIT; `[quota]
    /// identifiers`).
    RegisterCountLimit = 604,
    /// The prefix has all the derived prefixes it may (RC_PREFIX_LIMIT; `[quota] prefixes`).
    PrefixLimit = 605,
}

impl ResponseCode {
    /// The number the protocols carry.
    pub fn number(self) -> u32 {
        self as u32
    }

    /// Whether only the national system's clients know this code (603-605): CNRI's decoder
    /// throws "Unknown responseCode" on them, so other Handle clients get RC_ERROR instead.
    pub fn is_national(self) -> bool {
        matches!(self, Self::RequestLimitDaily | Self::RegisterCountLimit | Self::PrefixLimit)
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

impl serde::Serialize for ResponseCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.number())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_protocols_numbers() {
        assert_eq!(ResponseCode::Success.number(), 1);
        assert_eq!(ResponseCode::PrefixReferral.number(), 303);
        assert_eq!(ResponseCode::OperationNotSupported.number(), 5);
        assert_eq!(ResponseCode::ServerNotResponsible.number(), 301);
        assert_eq!(ResponseCode::AuthenticationFailed.number(), 403);
        assert_eq!(serde_json::to_string(&ResponseCode::ValuesNotFound).unwrap(), "200");
        let national = [ResponseCode::RequestLimitDaily, ResponseCode::RegisterCountLimit, ResponseCode::PrefixLimit];
        assert_eq!(national.map(ResponseCode::number), [603, 604, 605]);
        assert!(national.iter().all(|c| c.is_national()) && !ResponseCode::Error.is_national());
    }
}
