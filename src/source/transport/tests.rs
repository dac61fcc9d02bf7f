//! Unit tests of the transport (`transport/mod.rs`).

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What awc would read through `Checked` when a server answers a GET
/// with `answer` and then closes: the bytes, and the error that ended
/// them if any.
async fn through(answer: &[u8]) -> (Vec<u8>, Option<io::Error>) {
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    let mut checked = Checked::new(client);
    checked.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    server.write_all(answer).await.unwrap();
    drop(server);
    let mut out = Vec::new();
    let mut buf = [0u8; 7];
    for _ in 0..10_000 {
        match checked.read(&mut buf).await {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Some(e)),
        }
    }
    panic!("no end after 10,000 reads");
}

#[tokio::test]
async fn an_http_1_1_body_without_length_is_shown_as_http_1_0_and_read_to_the_close() {
    let (out, err) = through(b"HTTP/1.1 200 OK\r\nX: y\r\n\r\nnull").await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(out, b"HTTP/1.0 200 OK\r\nX: y\r\n\r\nnull");
}

#[tokio::test]
async fn a_chunked_body_is_whole_only_with_its_last_chunk_and_end() {
    let whole =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=1\r\nnull\r\n0\r\nT: 1\r\n\r\n";
    let (out, err) = through(whole).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(out, whole);
    for cut in [
        &whole[..52],
        &whole[..61],
        &whole[..64],
        &whole[..whole.len() - 2],
    ] {
        let (_, err) = through(cut).await;
        let err = err.expect("a cut body is an error");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        assert!(err.to_string().contains("body cut off"), "{err}");
    }
}

#[tokio::test]
async fn a_length_delimited_body_cut_short_is_an_error_and_bytes_past_it_wait() {
    let (_, err) = through(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnull").await;
    let err = err.expect("a cut body is an error");
    assert!(err.to_string().contains("5 bytes short"), "{err}");

    let (client, mut server) = tokio::io::duplex(1024);
    let mut checked = Checked::new(client);
    checked.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnull";
    server.write_all(answer).await.unwrap();
    server.write_all(b"stray").await.unwrap();
    let mut got = Vec::new();
    while got.len() < answer.len() {
        let mut buf = [0u8; 1024];
        let n = checked.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, answer, "nothing past the answer comes with it");
    let mut buf = [0u8; 1024];
    let n = checked.read(&mut buf).await.unwrap();
    assert_eq!(
        &buf[..n],
        b"stray",
        "stray bytes are seen by awc's idle check"
    );
}

#[tokio::test]
async fn interim_answers_are_skipped_and_a_204_has_no_body() {
    let (out, err) =
        through(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnull")
            .await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(out, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnull");
    let (out, err) = through(b"HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\n").await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(out, b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
}

#[tokio::test]
async fn conflicting_lengths_are_refused_naming_them() {
    let (_, err) =
        through(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nnull").await;
    let err = err.expect("refused");
    assert!(
        err.to_string()
            .contains("two Content-Length headers (4 and 5)"),
        "{err}"
    );
}
