//! Tests of metadata-document resolution against a real HTTP server on
//! 127.0.0.1 (the development setting on), counting the fetches it serves.
//! The server is a few lines of tokio so that each misbehaviour (a
//! redirect, an endless body, a server that never answers) is exact.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use latchkey_protocol::ErrorCode;
use latchkey_protocol::client::ClientMetadataError;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::testing::{Fixture, basic, none};

/// What the document server answers on a path.
#[derive(Debug, Clone)]
enum Reply {
    /// 200 with this JSON (`{url}` in the text is replaced by the full URL)
    /// and an optional `Cache-Control`.
    Json(String, Option<&'static str>),
    /// A raw status line and headers, no body.
    Status(String),
    /// A body of this many bytes, without `Content-Length` (read until the
    /// connection closes).
    Endless(usize),
    /// Never answer.
    Silent,
}

/// A document server on 127.0.0.1 that counts requests.
struct DocumentServer {
    address: SocketAddr,
    replies: Arc<Mutex<HashMap<String, Reply>>>,
    fetches: Arc<AtomicUsize>,
}

impl DocumentServer {
    async fn start() -> DocumentServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let replies: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let fetches = Arc::new(AtomicUsize::new(0));
        let (task_replies, task_fetches) = (Arc::clone(&replies), Arc::clone(&fetches));
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let replies = Arc::clone(&task_replies);
                let fetches = Arc::clone(&task_fetches);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0_u8; 1024];
                    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => request.extend_from_slice(&buffer[..read]),
                        }
                    }
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let text = String::from_utf8_lossy(&request).into_owned();
                    let path = text.split(' ').nth(1).unwrap_or("/").to_owned();
                    let host = text
                        .lines()
                        .find_map(|line| {
                            line.strip_prefix("host: ").or(line.strip_prefix("Host: "))
                        })
                        .unwrap_or_default()
                        .trim()
                        .to_owned();
                    assert!(text.contains("accept: application/json"), "{text}");
                    let reply = replies.lock().unwrap().get(&path).cloned();
                    let response = match reply {
                        Some(Reply::Json(body, cache_control)) => {
                            let body = body.replace("{url}", &format!("http://{host}{path}"));
                            let cache = cache_control
                                .map(|value| format!("cache-control: {value}\r\n"))
                                .unwrap_or_default();
                            format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{cache}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            )
                        }
                        Some(Reply::Status(head)) => {
                            format!("HTTP/1.1 {head}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        }
                        Some(Reply::Endless(len)) => {
                            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n";
                            format!("{head}{}", "x".repeat(len))
                        }
                        Some(Reply::Silent) => {
                            std::future::pending::<()>().await;
                            return;
                        }
                        None => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
                    };
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        DocumentServer {
            address,
            replies,
            fetches,
        }
    }

    /// The client-id URL of `path`.
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn reply(&self, path: &str, reply: Reply) {
        self.replies.lock().unwrap().insert(path.to_owned(), reply);
    }

    /// Serves a valid document on `path`.
    fn document(&self, path: &str, cache_control: Option<&'static str>) {
        self.reply(path, Reply::Json(valid_document(), cache_control));
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// A document with a port-less loopback redirect URI, no
/// `token_endpoint_auth_method` and a field Latchkey does not know.
fn valid_document() -> String {
    json!({
        "client_id": "{url}",
        "client_name": "Document App",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "software_statement_url": "https://example.com/ignored"
    })
    .to_string()
}

async fn development_fixture() -> Fixture {
    Fixture::with(|config| {
        config.metadata_documents.allow_insecure = true;
        config.metadata_documents.fetch_timeout = Duration::from_millis(500);
    })
    .await
}

/// The error a lookup of `client_id` ends in.
async fn failure(fixture: &Fixture, client_id: &str) -> MetadataDocumentError {
    match fixture.service.lookup_client(client_id).await.unwrap() {
        ClientLookup::Document(error) => error,
        other => panic!("{client_id}: expected a document error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_document_is_fetched_validated_and_stored_as_a_client() {
    let fixture = development_fixture().await;
    let server = DocumentServer::start().await;
    server.document("/client.json", Some("max-age=600"));
    let url = server.url("/client.json");

    let client = fixture.service.client(&url).await.unwrap().unwrap();
    assert_eq!(client.client_id(), url);
    assert_eq!(client.origin(), ClientOrigin::MetadataDocument);
    assert_eq!(client.document_host(), Some("127.0.0.1"));
    // A missing token_endpoint_auth_method means none; unknown fields are
    // ignored.
    assert!(client.metadata().is_public());
    assert_eq!(client.metadata().client_name(), Some("Document App"));
    assert!(!fixture.service.is_client_verified(&client));

    let record = fixture.store.find_client(&url).await.unwrap().unwrap();
    assert_eq!(record.origin, ClientOrigin::MetadataDocument);
    assert_eq!(record.created_at, fixture.clock_now());
    assert_eq!(
        record.expires_at,
        Some(fixture.clock_now() + time::Duration::seconds(600))
    );

    // A public client authenticates with its URL alone, never a secret.
    let authenticated = fixture.service.authenticate(&none(&url)).await.unwrap();
    assert_eq!(authenticated.client_id(), url);
    let error = fixture
        .service
        .authenticate(&basic(&url, "lks_secret"))
        .await
        .unwrap_err();
    assert_eq!(error.oauth().unwrap().code(), ErrorCode::InvalidClient);
    assert_eq!(server.fetches(), 1);
}

#[tokio::test]
async fn loopback_redirects_match_any_port_for_document_clients() {
    let fixture = development_fixture().await;
    let server = DocumentServer::start().await;
    server.document("/client.json", None);
    let client = fixture
        .service
        .client(&server.url("/client.json"))
        .await
        .unwrap()
        .unwrap();
    // RFC 8252 §7.3: the port-less loopback URI matches an ephemeral port.
    assert!(
        client
            .metadata()
            .match_redirect_uri("http://127.0.0.1:51234/callback")
            .is_some()
    );
    assert!(
        client
            .metadata()
            .match_redirect_uri("http://127.0.0.1/callback")
            .is_some()
    );
    // Only the port may differ: another path or host does not match.
    for refused in [
        "http://127.0.0.1:51234/other",
        "http://localhost:51234/callback",
        "http://127.0.0.1:51234/callback?x=1",
        "https://127.0.0.1:51234/callback",
    ] {
        assert!(
            client.metadata().match_redirect_uri(refused).is_none(),
            "{refused}"
        );
    }
}

#[tokio::test]
async fn max_age_is_respected_within_bounds_and_shared_through_the_store() {
    let fixture = development_fixture().await;
    let server = DocumentServer::start().await;
    server.document("/a.json", Some("public, max-age=600"));
    let url = server.url("/a.json");
    assert!(fixture.service.client(&url).await.unwrap().is_some());
    assert!(fixture.service.client(&url).await.unwrap().is_some());
    assert_eq!(server.fetches(), 1);

    // Another instance on the same store uses the stored copy.
    let sibling = fixture
        .sibling_with(|config| config.metadata_documents.allow_insecure = true)
        .await;
    assert!(sibling.client(&url).await.unwrap().is_some());
    assert_eq!(server.fetches(), 1);

    fixture.clock.advance(Duration::from_secs(599));
    assert!(fixture.service.client(&url).await.unwrap().is_some());
    assert_eq!(server.fetches(), 1);
    // Stale: fetched again.
    fixture.clock.advance(Duration::from_secs(1));
    assert!(fixture.service.client(&url).await.unwrap().is_some());
    assert_eq!(server.fetches(), 2);

    // Below the minimum (and no-store) is clamped up to 5 minutes; above
    // the maximum down to 24 hours.
    for (path, cache_control, fresh_for) in [
        ("/short.json", Some("max-age=1"), 300),
        ("/no-store.json", Some("no-store, max-age=3600"), 300),
        ("/silent.json", None, 300),
        ("/long.json", Some("max-age=31536000"), 86_400),
    ] {
        server.document(path, cache_control);
        let url = server.url(path);
        assert!(fixture.service.client(&url).await.unwrap().is_some());
        let record = fixture.store.find_client(&url).await.unwrap().unwrap();
        assert_eq!(
            record.expires_at,
            Some(fixture.clock_now() + time::Duration::seconds(fresh_for)),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_failed_refetch_serves_the_last_good_copy_only_up_to_the_maximum() {
    let fixture = development_fixture().await;
    let server = DocumentServer::start().await;
    server.document("/client.json", Some("max-age=3600"));
    let url = server.url("/client.json");
    assert!(fixture.service.client(&url).await.unwrap().is_some());

    server.reply(
        "/client.json",
        Reply::Status("500 Internal Server Error".to_owned()),
    );
    fixture.clock.advance(Duration::from_secs(3601));
    assert!(fixture.service.client(&url).await.unwrap().is_some());
    assert_eq!(server.fetches(), 2);

    // 24 hours after the good fetch, the stale copy is no longer used.
    fixture.clock.advance(Duration::from_secs(86_400 - 3601));
    assert_eq!(
        failure(&fixture, &url).await,
        MetadataDocumentError::Status(500)
    );
}

#[tokio::test]
async fn every_kind_of_failure_is_reported_precisely() {
    let fixture = development_fixture().await;
    let server = DocumentServer::start().await;
    let mismatch = json!({
        "client_id": "http://127.0.0.1:1/other.json",
        "client_name": "Impostor",
        "redirect_uris": ["http://127.0.0.1/callback"]
    })
    .to_string();
    let secret_method = json!({
        "client_id": "{url}",
        "client_name": "Secretive",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "token_endpoint_auth_method": "client_secret_post"
    })
    .to_string();
    let no_redirects = json!({"client_id": "{url}", "client_name": "X"}).to_string();
    // If the redirect were followed, this would be fetched (and counted).
    server.document("/target.json", None);
    let too_large = json!({
        "client_id": "{url}",
        "client_name": "x".repeat(6000),
        "redirect_uris": ["http://127.0.0.1/callback"]
    })
    .to_string();
    let cases = [
        (
            "/mismatch.json",
            Reply::Json(mismatch, None),
            MetadataDocumentError::Invalid(ClientMetadataError::ClientIdMismatch),
        ),
        (
            "/secret.json",
            Reply::Json(secret_method, None),
            MetadataDocumentError::Invalid(ClientMetadataError::SharedSecretAuthMethod(
                "client_secret_post".to_owned(),
            )),
        ),
        (
            "/no-redirects.json",
            Reply::Json(no_redirects, None),
            MetadataDocumentError::Invalid(ClientMetadataError::MissingField("redirect_uris")),
        ),
        (
            "/redirect.json",
            Reply::Status(format!(
                "302 Found\r\nlocation: {}",
                server.url("/target.json")
            )),
            MetadataDocumentError::Redirect(302),
        ),
        (
            "/too-large.json",
            Reply::Json(too_large, None),
            MetadataDocumentError::TooLarge(MAX_METADATA_DOCUMENT_LEN),
        ),
        (
            "/endless.json",
            Reply::Endless(1 << 20),
            MetadataDocumentError::TooLarge(MAX_METADATA_DOCUMENT_LEN),
        ),
        (
            "/gone.json",
            Reply::Status("404 Not Found".to_owned()),
            MetadataDocumentError::Status(404),
        ),
        ("/slow.json", Reply::Silent, MetadataDocumentError::Timeout),
    ];
    for (path, reply, expected) in cases {
        server.reply(path, reply);
        let url = server.url(path);
        let error = failure(&fixture, &url).await;
        assert_eq!(error, expected, "{path}");
        // The token endpoint says invalid_client with the same reason.
        let token_error = fixture.service.authenticate(&none(&url)).await.unwrap_err();
        let oauth = token_error.oauth().unwrap();
        assert_eq!(oauth.code(), ErrorCode::InvalidClient, "{path}");
        assert_eq!(oauth, &expected.to_oauth(), "{path}");
        assert!(fixture.store.find_client(&url).await.unwrap().is_none());
    }
    // The redirect was not followed: one request per case, none for
    // /target.json (and the second lookup of each was answered by the
    // negative cache).
    assert_eq!(server.fetches(), 8);
}

#[tokio::test]
async fn a_fetch_that_does_not_finish_in_time_does_not_hang() {
    let fixture = Fixture::with(|config| {
        config.metadata_documents.allow_insecure = true;
        config.metadata_documents.fetch_timeout = Duration::from_millis(200);
    })
    .await;
    let server = DocumentServer::start().await;
    server.reply("/slow.json", Reply::Silent);
    let started = std::time::Instant::now();
    let error = failure(&fixture, &server.url("/slow.json")).await;
    assert_eq!(error, MetadataDocumentError::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn failures_are_remembered_briefly() {
    let fixture = development_fixture().await;
    let server = DocumentServer::start().await;
    let url = server.url("/client.json");
    server.reply(
        "/client.json",
        Reply::Status("503 Service Unavailable".to_owned()),
    );
    assert_eq!(
        failure(&fixture, &url).await,
        MetadataDocumentError::Status(503)
    );
    server.document("/client.json", None);
    fixture.clock.advance(Duration::from_secs(59));
    assert_eq!(
        failure(&fixture, &url).await,
        MetadataDocumentError::Status(503)
    );
    assert_eq!(server.fetches(), 1);
    fixture.clock.advance(Duration::from_secs(1));
    assert!(fixture.service.client(&url).await.unwrap().is_some());
    assert_eq!(server.fetches(), 2);
}

#[tokio::test]
async fn fetches_are_limited_per_host() {
    let fixture = Fixture::with(|config| {
        config.metadata_documents.allow_insecure = true;
        config.metadata_documents.fetches_per_host_per_minute = 3;
    })
    .await;
    let server = DocumentServer::start().await;
    for index in 0..4 {
        server.document(&format!("/c{index}.json"), None);
    }
    for index in 0..3 {
        let url = server.url(&format!("/c{index}.json"));
        assert!(fixture.service.client(&url).await.unwrap().is_some());
    }
    let url = server.url("/c3.json");
    assert_eq!(
        failure(&fixture, &url).await,
        MetadataDocumentError::RateLimited("127.0.0.1".to_owned())
    );
    assert_eq!(server.fetches(), 3);
    // Rate limiting is not remembered as a failure of the document.
    fixture.clock.advance(Duration::from_secs(120));
    assert!(fixture.service.client(&url).await.unwrap().is_some());
    assert_eq!(server.fetches(), 4);
}

#[tokio::test]
async fn loopback_and_private_addresses_are_refused_without_the_development_setting() {
    let fixture = Fixture::new().await;
    let server = DocumentServer::start().await;
    server.document("/client.json", None);
    let port = server.address.port();

    // Plain http is not a client-id URL at all: an unknown client.
    assert!(matches!(
        fixture
            .service
            .lookup_client(&server.url("/client.json"))
            .await
            .unwrap(),
        ClientLookup::Unknown
    ));
    for (url, host, reason) in [
        (
            format!("https://127.0.0.1:{port}/client.json"),
            "127.0.0.1",
            "loopback",
        ),
        (
            format!("https://[::1]:{port}/client.json"),
            "[::1]",
            "loopback",
        ),
        (
            format!("https://localhost:{port}/client.json"),
            "localhost",
            "loopback",
        ),
        (
            "https://10.1.2.3/client.json".to_owned(),
            "10.1.2.3",
            "private (RFC 1918)",
        ),
        (
            "https://169.254.169.254/latest/meta-data".to_owned(),
            "169.254.169.254",
            "link-local",
        ),
    ] {
        assert_eq!(
            failure(&fixture, &url).await,
            MetadataDocumentError::RefusedAddress {
                host: host.to_owned(),
                reason,
            },
            "{url}"
        );
    }
    assert_eq!(server.fetches(), 0);

    // Even in development only loopback is allowed, never private ranges.
    let development = development_fixture().await;
    assert!(matches!(
        failure(&development, "https://192.168.0.10/client.json").await,
        MetadataDocumentError::RefusedAddress { .. }
    ));
    // And https URLs must be valid client-id URLs.
    assert_eq!(
        failure(&fixture, "https://app.example.com/").await,
        MetadataDocumentError::InvalidUrl(ClientIdUrlError::RootPath)
    );
}

#[tokio::test]
async fn allow_listed_hosts_are_verified() {
    let fixture = Fixture::with(|config| {
        config.metadata_documents.allow_insecure = true;
        config.metadata_documents.trusted_hosts = vec!["127.0.0.1".to_owned()];
    })
    .await;
    let server = DocumentServer::start().await;
    server.document("/client.json", None);
    let client = fixture
        .service
        .client(&server.url("/client.json"))
        .await
        .unwrap()
        .unwrap();
    assert!(fixture.service.is_client_verified(&client));
}

#[tokio::test]
async fn a_stored_http_document_is_unusable_once_the_development_setting_is_off() {
    let fixture = development_fixture().await;
    let server = DocumentServer::start().await;
    server.document("/client.json", Some("max-age=3600"));
    let url = server.url("/client.json");
    assert!(fixture.service.client(&url).await.unwrap().is_some());
    let strict = fixture.sibling_with(|_| {}).await;
    assert!(strict.client(&url).await.unwrap().is_none());
}
