//! Unit tests of the client (`source/mod.rs`): how a failed connection is classified.

use awc::error::{ConnectError, SendRequestError};

use super::*;

fn connect(e: ConnectError) -> Option<Unreachable> {
    unreachable_kind(&SendRequestError::Connect(e))
}

/// No test resolves a real name (no traffic off loopback): the error a
/// failed lookup gives the dialer is classified here instead.
#[test]
fn a_failed_lookup_is_a_dns_failure() {
    let lookup =
        std::io::Error::other("failed to lookup address information: Name or service not known");
    assert_eq!(
        connect(ConnectError::Resolver(Box::new(lookup))),
        Some(Unreachable::Dns)
    );
    assert_eq!(connect(ConnectError::NoRecords), Some(Unreachable::Dns));
}

#[test]
fn refused_unrouted_and_tls_failures_are_told_apart_from_the_rest() {
    use std::io::{Error, ErrorKind};
    assert_eq!(
        connect(ConnectError::Io(Error::from(ErrorKind::ConnectionRefused))),
        Some(Unreachable::Refused)
    );
    assert_eq!(
        connect(ConnectError::Io(Error::from(ErrorKind::NetworkUnreachable))),
        Some(Unreachable::NoRoute)
    );
    let tls = Error::other(transport::TlsFailure(Error::other(
        "invalid peer certificate: UnknownIssuer",
    )));
    assert_eq!(connect(ConnectError::Io(tls)), Some(Unreachable::Tls));
    assert_eq!(connect(ConnectError::Timeout), None);
    assert_eq!(
        connect(ConnectError::Io(Error::from(ErrorKind::ConnectionReset))),
        None
    );
    assert_eq!(unreachable_kind(&SendRequestError::Timeout), None);
}
