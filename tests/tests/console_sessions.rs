//! Console sessions at the gateway's edge (docs/console.md): the cookie's attributes, the exchange
//! for an access token on REST calls, CSRF refusals, logout, idle and absolute expiry, and the
//! console's own Content-Security-Policy. Real Postgres, real HTTP.

use std::time::Duration;

use prfix_tests::auth::ADMIN_PASSWORD;
use prfix_tests::{TestApp, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn url(app: &TestApp, path: &str) -> String {
    format!("http://{}{path}", app.gateway.addr)
}

fn origin(app: &TestApp) -> String {
    format!("http://{}", app.gateway.addr)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("a client")
}

/// A signed-in session: the `Set-Cookie` line, the cookie pair to send back, the CSRF token.
struct Signed {
    set_cookie: String,
    cookie: String,
    csrf: String,
}

async fn sign_in(app: &TestApp) -> Signed {
    let response = client()
        .post(url(app, "/console/session"))
        .header("origin", origin(app))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("sign-in request");
    assert_eq!(response.status(), StatusCode::OK, "sign-in refused: {:?}", response.text().await);
    let set_cookie =
        response.headers().get("set-cookie").and_then(|v| v.to_str().ok()).expect("sign-in sets a cookie").to_owned();
    let body: Value = response.json().await.expect("a JSON session");
    let cookie = set_cookie.split(';').next().expect("a cookie pair").to_owned();
    let csrf = body["csrf_token"].as_str().expect("a CSRF token").to_owned();
    assert_eq!(body["username"], "admin", "{body}");
    Signed { set_cookie, cookie, csrf }
}

async fn whoami(app: &TestApp, cookie: &str) -> reqwest::Response {
    client().get(url(app, "/v1/auth/whoami")).header("cookie", cookie).send().await.expect("whoami request")
}

#[tokio::test]
async fn sign_in_sets_an_httponly_samesite_strict_cookie_that_calls_rest_as_the_user() {
    let app = spawn_app().await;
    let signed = sign_in(&app).await;
    let attributes: Vec<&str> = signed.set_cookie.split(';').map(str::trim).collect();
    assert!(signed.cookie.starts_with("prfix_console="), "plain HTTP uses the unprefixed name: {}", signed.set_cookie);
    for wanted in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(attributes.contains(&wanted), "the cookie lacks {wanted}: {}", signed.set_cookie);
    }
    assert!(!attributes.contains(&"Secure"), "no Secure without TLS (browsers would drop it): {}", signed.set_cookie);
    let response = whoami(&app, &signed.cookie).await;
    assert_eq!(response.status(), StatusCode::OK);
    let me: Value = response.json().await.expect("JSON");
    assert_eq!(me["subject"], "admin", "{me}");
    // The session's token never reaches the page: the body holds the CSRF token, not a bearer token.
    let described: Value = client()
        .get(url(&app, "/console/session"))
        .header("cookie", &signed.cookie)
        .send()
        .await
        .expect("session request")
        .json()
        .await
        .expect("JSON");
    assert_eq!(described["csrf_token"], signed.csrf.as_str());
    assert!(!described.to_string().contains("eyJ"), "a JWT in the session body: {described}");
}

#[tokio::test]
async fn a_wrong_password_gets_no_cookie() {
    let app = spawn_app().await;
    let response = client()
        .post(url(&app, "/console/session"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=admin&password=not-the-password-at-all")
        .send()
        .await
        .expect("sign-in request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get("set-cookie").is_none(), "a refused sign-in set a cookie");
    assert_eq!(response.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn a_cross_site_state_changing_request_without_the_csrf_token_or_from_another_origin_is_refused() {
    let app = spawn_app().await;
    let signed = sign_in(&app).await;
    let create = |origin: Option<String>, csrf: Option<&str>| {
        let mut request = client()
            .post(url(&app, "/v1/api-keys"))
            .header("cookie", &signed.cookie)
            .json(&json!({"name": "from-console", "roles": ["ROLE_DEVELOPER"]}));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        request.send()
    };
    let cases = [
        ("another site, no token", Some("https://evil.example".to_owned()), None),
        ("another site with the token", Some("https://evil.example".to_owned()), Some(signed.csrf.as_str())),
        ("this origin, no token", Some(origin(&app)), None),
        ("this origin, a wrong token", Some(origin(&app)), Some("not-the-token")),
        ("no origin, the token", None, Some(signed.csrf.as_str())),
    ];
    for (what, origin, csrf) in cases {
        let response = create(origin, csrf).await.expect("request");
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{what}");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{what}");
        let problem: Value = response.json().await.expect("a problem body");
        assert_eq!(
            (problem["status"].as_u64(), problem["code"].as_str()),
            (Some(403), Some("PERMISSION_DENIED")),
            "{what}: {problem}"
        );
    }
    let response = create(Some(origin(&app)), Some(&signed.csrf)).await.expect("request");
    assert_eq!(response.status(), StatusCode::OK, "same origin with the token: {:?}", response.text().await);
    // A refused request created nothing: only the last one made a key.
    let keys: Value = client()
        .get(url(&app, "/v1/api-keys"))
        .header("cookie", &signed.cookie)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("JSON");
    let names: Vec<&str> =
        keys["apiKeys"].as_array().into_iter().flatten().filter_map(|k| k["name"].as_str()).collect();
    assert_eq!(names.iter().filter(|n| **n == "from-console").count(), 1, "{keys}");
}

#[tokio::test]
async fn the_cookie_is_useless_after_logout() {
    let app = spawn_app().await;
    let signed = sign_in(&app).await;
    let refused = client()
        .delete(url(&app, "/console/session"))
        .header("cookie", &signed.cookie)
        .header("origin", "https://evil.example")
        .header("x-csrf-token", &signed.csrf)
        .send()
        .await
        .expect("logout request");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "a cross-site logout");
    let response = client()
        .delete(url(&app, "/console/session"))
        .header("cookie", &signed.cookie)
        .header("origin", origin(&app))
        .header("x-csrf-token", &signed.csrf)
        .send()
        .await
        .expect("logout request");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let cleared = response.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(cleared.contains("Max-Age=0"), "logout clears the cookie: {cleared}");
    assert_eq!(whoami(&app, &signed.cookie).await.status(), StatusCode::UNAUTHORIZED);
    let rows = app
        .db
        .connect()
        .await
        .query_one("SELECT count(*) FROM gateway.console_sessions", &[])
        .await
        .expect("count sessions")
        .get::<_, i64>(0);
    assert_eq!(rows, 0, "logout deletes the session row");
}

#[tokio::test]
async fn a_session_ends_at_its_idle_and_at_its_absolute_expiry() {
    let app = spawn_app().await;
    let db = app.db.connect().await;
    let (idle, absolute) = (sign_in(&app).await, sign_in(&app).await);
    assert_eq!(whoami(&app, &idle.cookie).await.status(), StatusCode::OK);
    assert_eq!(whoami(&app, &absolute.cookie).await.status(), StatusCode::OK);
    // The database's clock decides; moving a session's times back is what the passing of time does.
    let hash = |cookie: &str| {
        let token = cookie.split_once('=').map(|(_, v)| v).unwrap_or_default();
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref().to_vec()
    };
    let moved = db
        .execute(
            "UPDATE gateway.console_sessions SET last_seen_at = now() - interval '31 minutes' WHERE token_hash = $1",
            &[&hash(&idle.cookie)],
        )
        .await
        .expect("age the idle session");
    assert_eq!(moved, 1);
    let moved = db
        .execute(
            "UPDATE gateway.console_sessions SET expires_at = now() - interval '1 second' WHERE token_hash = $1",
            &[&hash(&absolute.cookie)],
        )
        .await
        .expect("expire the other session");
    assert_eq!(moved, 1);
    assert_eq!(whoami(&app, &idle.cookie).await.status(), StatusCode::UNAUTHORIZED, "idle for 31 minutes");
    assert_eq!(whoami(&app, &absolute.cookie).await.status(), StatusCode::UNAUTHORIZED, "past its absolute expiry");
}

#[tokio::test]
async fn a_change_of_the_users_roles_ends_their_console_sessions() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let created = client()
        .post(url(&app, "/v1/users"))
        .bearer_auth(&admin)
        .json(
            &json!({"username": "dana", "password": "dana-password-123", "roles": ["ROLE_DEVELOPER", "ROLE_AUDITOR"]}),
        )
        .send()
        .await
        .expect("create a user");
    assert_eq!(created.status(), StatusCode::OK, "{:?}", created.text().await);
    let response = client()
        .post(url(&app, "/console/session"))
        .json(&json!({"username": "dana", "password": "dana-password-123"}))
        .send()
        .await
        .expect("sign in");
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    assert_eq!(whoami(&app, &cookie).await.status(), StatusCode::OK);
    let changed = client()
        .patch(url(&app, "/v1/users/dana"))
        .bearer_auth(&admin)
        .json(&json!({"roles": ["ROLE_DEVELOPER"], "updateMask": "roles"}))
        .send()
        .await
        .expect("change roles");
    assert_eq!(changed.status(), StatusCode::OK, "{:?}", changed.text().await);
    assert_eq!(whoami(&app, &cookie).await.status(), StatusCode::UNAUTHORIZED, "the session outlived the change");
}

#[tokio::test]
async fn the_console_page_has_its_own_strict_csp_and_the_api_keeps_its_own() {
    let app = spawn_app().await;
    let page = client().get(url(&app, "/")).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().expect("ascii").to_owned();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("http"), "{csp}");
    let html = page.text().await.expect("html");
    assert!(!html.contains("<script>") && !html.contains("style="), "inline script or style in the page");
    let script = client().get(url(&app, "/console/assets/app.js")).send().await.expect("script");
    assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8");
    let api = client().get(url(&app, "/openapi.json")).send().await.expect("openapi");
    assert_eq!(api.headers()["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
    let missing = client().get(url(&app, "/console/assets/nothing.js")).send().await.expect("missing");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
