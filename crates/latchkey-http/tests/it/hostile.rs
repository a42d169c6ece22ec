//! Hostile and malformed input: each case gets a clear OAuth error, never a
//! 500 or a dropped connection.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};

use crate::backend_tests;
use crate::support::{Backend, MCP, TestApp, assert_oauth_error, basic, form, header};

async fn malformed_token_requests_get_oauth_errors(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = app.confidential_client().await;
    let secret = client.client_secret.clone().unwrap();
    let auth = basic(&client.client_id, &secret);
    let wrong_secret = basic(&client.client_id, "lks_wrong");
    let many_scopes: Vec<String> = (0..65).map(|index| format!("s{index}")).collect();
    let many_scopes = many_scopes.join(" ");
    let long_scope = "x".repeat(9 * 1024);
    let cases: Vec<(&str, String, Option<&str>, u16, &str)> = vec![
        (
            "duplicate parameter",
            "grant_type=client_credentials&grant_type=client_credentials".to_owned(),
            Some(&auth),
            400,
            "invalid_request",
        ),
        (
            "empty body",
            String::new(),
            Some(&auth),
            400,
            "invalid_request",
        ),
        (
            "bad percent-encoding",
            "grant_type=client%ZZcredentials".to_owned(),
            Some(&auth),
            400,
            "invalid_request",
        ),
        (
            "unknown grant type",
            form(&[
                ("grant_type", "password"),
                ("username", "a"),
                ("password", "b"),
            ]),
            Some(&auth),
            400,
            "unsupported_grant_type",
        ),
        (
            "implicit-era grant type",
            form(&[("grant_type", "urn:ietf:params:oauth:grant-type:device_code")]),
            Some(&auth),
            400,
            "unsupported_grant_type",
        ),
        (
            "too many scopes",
            form(&[
                ("grant_type", "client_credentials"),
                ("resource", MCP),
                ("scope", &many_scopes),
            ]),
            Some(&auth),
            400,
            "invalid_scope",
        ),
        (
            "an 9 KiB scope value",
            form(&[
                ("grant_type", "client_credentials"),
                ("resource", MCP),
                ("scope", &long_scope),
            ]),
            Some(&auth),
            400,
            "invalid_request",
        ),
        (
            "Basic and a body secret",
            form(&[
                ("grant_type", "client_credentials"),
                ("client_secret", &secret),
            ]),
            Some(&auth),
            400,
            "invalid_request",
        ),
        (
            "malformed Basic",
            form(&[("grant_type", "client_credentials")]),
            Some("Basic !!!not-base64"),
            401,
            "invalid_client",
        ),
        (
            "Basic without a colon",
            form(&[("grant_type", "client_credentials")]),
            Some("Basic bm9jb2xvbg=="),
            401,
            "invalid_client",
        ),
        (
            "another scheme",
            form(&[("grant_type", "client_credentials")]),
            Some("Digest username=x"),
            401,
            "invalid_client",
        ),
        (
            "wrong secret",
            form(&[("grant_type", "client_credentials"), ("resource", MCP)]),
            Some(&wrong_secret),
            401,
            "invalid_client",
        ),
        (
            "no client at all",
            form(&[("grant_type", "client_credentials"), ("resource", MCP)]),
            None,
            401,
            "invalid_client",
        ),
        (
            "a client assertion",
            form(&[
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", "a.b.c"),
            ]),
            None,
            401,
            "invalid_client",
        ),
    ];
    for (name, body, authorization, status, error) in cases {
        let mut request = app.post_form("/token", body);
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        let response = request.send().await.unwrap();
        if error == "invalid_client" {
            assert_eq!(
                header(&response, "www-authenticate").as_deref(),
                Some("Basic realm=\"latchkey\""),
                "{name}"
            );
        }
        let body = assert_oauth_error(response, status, error).await;
        assert!(body["error_description"].is_string(), "{name}: {body}");
    }
}

async fn wrong_content_types_and_oversized_bodies(backend: Backend) {
    let app = TestApp::start(backend).await;
    let body = form(&[("grant_type", "client_credentials")]);
    for content_type in [
        Some("application/json"),
        Some("text/plain"),
        Some("multipart/form-data; boundary=x"),
        Some("application/x-www-form-urlencoded; charset=latin1"),
        None,
    ] {
        for path in ["/token", "/revoke", "/introspect"] {
            let mut request = app.http.post(app.url(path)).body(body.clone());
            if let Some(value) = content_type {
                request = request.header(CONTENT_TYPE, value);
            }
            let response = request.send().await.unwrap();
            assert_oauth_error(response, 400, "invalid_request").await;
        }
    }
    // A charset parameter is fine.
    let with_charset = app
        .http
        .post(app.url("/token"))
        .header(
            CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=UTF-8",
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_oauth_error(with_charset, 401, "invalid_client").await;

    let oversized = format!(
        "grant_type=client_credentials&padding={}",
        "a".repeat(100 * 1024)
    );
    for path in ["/token", "/revoke", "/introspect"] {
        let response = app.post_form(path, oversized.clone()).send().await.unwrap();
        let body = assert_oauth_error(response, 413, "invalid_request").await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("65536")
        );
    }
    // Chunked, without a Content-Length, the limit still holds.
    let mut request = format!(
        "POST /token HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.base.trim_start_matches("http://")
    )
    .into_bytes();
    for _ in 0..10 {
        request.extend_from_slice(format!("{:x}\r\n", 8 * 1024).as_bytes());
        request.extend_from_slice(&[b'a'; 8 * 1024]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let response = raw_exchange(&app, &request).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("invalid_request"), "{response}");
}

async fn non_utf8_authorization_headers_are_invalid_client(backend: Backend) {
    let app = TestApp::start(backend).await;
    let body = "grant_type=client_credentials";
    let mut request = format!(
        "POST /token HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\nAuthorization: Basic ",
        app.base.trim_start_matches("http://"),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(b"\xff\xfe\r\n\r\n");
    request.extend_from_slice(body.as_bytes());
    let response = raw_exchange(&app, &request).await;
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert!(response.contains("invalid_client"), "{response}");

    let twice = app
        .post_form("/token", body)
        .header(AUTHORIZATION, "Basic YTpi")
        .header(AUTHORIZATION, "Basic YzpkCg==")
        .send()
        .await
        .unwrap();
    assert_oauth_error(twice, 400, "invalid_request").await;
}

/// Sends raw bytes on a fresh connection and reads the response head and
/// as much of the body as arrives.
async fn raw_exchange(app: &TestApp, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    let mut buffer = [0_u8; 4096];
    let reading = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => response.extend_from_slice(&buffer[..read]),
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), reading)
        .await
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

backend_tests!(
    malformed_token_requests_get_oauth_errors,
    wrong_content_types_and_oversized_bodies,
    non_utf8_authorization_headers_are_invalid_client,
);
