//! The web console at the edge (docs/console.md): its static pages, browser sessions, and the
//! exchange of a session cookie for the usual access token on REST calls.
//!
//! - `POST /console/session` signs in (user name and password, JSON or a form) through
//!   AuthService's Login, so limits and audit are the login's own, and sets an HttpOnly,
//!   SameSite=Strict cookie (`__Host-` prefixed and Secure when the gateway terminates TLS).
//! - `GET /console/session` tells the page who it is and its CSRF token; `DELETE` logs out.
//! - A REST call under `/v1/` that carries the cookie and no `Authorization` gets a short-lived
//!   access token of the session's user minted here, so the edge check, policy, limits and audit
//!   treat it as any other call and the services verify it themselves. A state-changing call must
//!   also carry the session's `X-CSRF-Token` and an `Origin` of this gateway, or it is refused
//!   with 403 before anything else looks at it.

mod assets;
mod endpoints;
pub mod sessions;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::middleware::Next;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use prfix_auth::{PrincipalKind, Role};
use subtle::ConstantTimeEq;

use crate::auth::AuthApi;
use crate::problem;
use crate::security_audit::ClientInfo;
use sessions::{Session, Sessions};

/// The path of the session resource.
pub const SESSION_PATH: &str = "/console/session";
/// The cookie's name when the gateway terminates TLS: `__Host-` makes the browser insist on
/// Secure, `Path=/` and no `Domain`, so no sibling host can plant or shadow it.
pub const HOST_COOKIE: &str = "__Host-prfix_console";
/// The cookie's name on plain HTTP (a loopback `prfix up`): browsers refuse `__Host-` cookies
/// without Secure, and Secure cookies over plain HTTP.
pub const PLAIN_COOKIE: &str = "prfix_console";
/// The header state-changing calls carry the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Largest sign-in body.
const MAX_SIGN_IN_BYTES: usize = 16 * 1024;

/// The console's state.
pub struct Console {
    /// Login, token minting, security events.
    pub auth: AuthApi,
    /// The session table.
    pub sessions: Sessions,
    /// Whether the gateway terminates TLS (cookie name and Secure).
    pub tls: bool,
    /// Absolute session lifetime, the cookie's Max-Age.
    pub absolute_secs: u64,
}

impl Console {
    fn cookie_name(&self) -> &'static str {
        cookie_name(self.tls)
    }

    fn set_cookie(&self, value: &str, max_age: u64) -> Option<HeaderValue> {
        set_cookie(self.tls, value, max_age)
    }

    /// The session token the request's cookie carries, if any.
    fn cookie<B>(&self, request: &Request<B>) -> Option<String> {
        let name = self.cookie_name();
        request
            .headers()
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_owned())
    }
}

/// The cookie's name: `__Host-` prefixed when the gateway terminates TLS.
fn cookie_name(tls: bool) -> &'static str {
    if tls { HOST_COOKIE } else { PLAIN_COOKIE }
}

/// The `Set-Cookie` value of a session (an empty `value` with `max_age` 0 clears it).
fn set_cookie(tls: bool, value: &str, max_age: u64) -> Option<HeaderValue> {
    let secure = if tls { "; Secure" } else { "" };
    format!("{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}", cookie_name(tls)).parse().ok()
}

fn client_info<B>(request: &Request<B>) -> ClientInfo {
    ClientInfo {
        ip: request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()).unwrap_or_default(),
        request_id: request_id(request),
        trace: prfix_runtime::trace::TraceContext::from_headers(request.headers()),
    }
}

fn request_id<B>(request: &Request<B>) -> String {
    request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// Whether a method changes state (and so needs the CSRF token).
fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether the request's `Origin` names this gateway: its host and port are those the request was
/// sent to (`Host`, or the HTTP/2 authority). The scheme is not compared, so a TLS-terminating
/// proxy in front does not break it; no other site can have our host. A missing Origin is `false`.
fn same_origin<B>(request: &Request<B>) -> bool {
    let Some(origin) = request.headers().get(http::header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(&h))
}

fn forbidden(detail: &str, id: &str) -> Response<Body> {
    problem::response(StatusCode::FORBIDDEN, "PERMISSION_DENIED", detail, id, None)
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn session_body(username: &str, roles: &[String], csrf_token: &str, expires_at: i64) -> serde_json::Value {
    serde_json::json!({
        "username": username,
        "roles": roles,
        "csrf_token": csrf_token,
        "expires_at": expires_at,
    })
}

/// The middleware, outside REST transcoding: console pages and sessions are answered here, and
/// REST calls with a session cookie leave with a bearer token in its place.
pub async fn handle(State(console): State<Arc<Console>>, mut request: Request<Body>, next: Next) -> Response<Body> {
    let path = request.uri().path();
    if path == SESSION_PATH {
        return endpoints::session(&console, request).await;
    }
    if let Some(response) = assets::serve(&request) {
        return response;
    }
    let rest_call = path.starts_with("/v1/")
        && !request.headers().contains_key(http::header::AUTHORIZATION)
        && !crate::edge::is_grpc(&request);
    if !rest_call {
        return next.run(request).await;
    }
    let Some(token) = console.cookie(&request) else {
        return next.run(request).await;
    };
    let id = request_id(&request);
    let state_changing = changes_state(request.method());
    // A cross-site page cannot read our CSRF token nor forge our Origin: without both, a call that
    // would change something with the browser's cookie is refused before it reaches anything.
    if state_changing && (!request.headers().contains_key(CSRF_HEADER) || !same_origin(&request)) {
        return forbidden("a console call that changes state needs the session's X-CSRF-Token and this origin", &id);
    }
    let session = match console.sessions.touch(&token).await {
        Ok(Some(session)) => session,
        // No live session: the call goes on without credentials and the edge refuses it as any
        // unauthenticated call.
        Ok(None) => return next.run(request).await,
        Err(error) => {
            tracing::error!(%error, "cannot read a console session");
            let status = tonic::Status::unavailable("console sessions are unavailable; try again");
            return problem::from_status(&status, &id);
        }
    };
    if state_changing {
        let sent = request.headers().get(CSRF_HEADER).map(HeaderValue::as_bytes).unwrap_or_default();
        if !bool::from(sent.ct_eq(session.csrf_token.as_bytes())) {
            return forbidden("the X-CSRF-Token does not match the console session", &id);
        }
    }
    match mint(&console.auth, &session) {
        Some(value) => {
            request.headers_mut().insert(http::header::AUTHORIZATION, value);
        }
        None => {
            let status = tonic::Status::internal("internal error; the gateway log has the details");
            return problem::from_status(&status, &id);
        }
    }
    next.run(request).await
}

/// An access token of the session's user, as an `Authorization` value.
fn mint(auth: &AuthApi, session: &Session) -> Option<HeaderValue> {
    let roles: Vec<Role> = session.roles.iter().filter_map(|r| Role::parse(r)).collect();
    match auth.issuer.mint(&session.username, &roles, PrincipalKind::User) {
        Ok((token, _)) => format!("Bearer {token}").parse().ok(),
        Err(error) => {
            tracing::error!(%error, "cannot sign an access token for a console session");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_tls_the_cookie_is_host_prefixed_and_secure_and_on_plain_http_neither() {
        let tls = set_cookie(true, "t", 60).map(|v| v.to_str().unwrap_or_default().to_owned()).unwrap_or_default();
        assert_eq!(tls, "__Host-prfix_console=t; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure");
        let plain = set_cookie(false, "t", 60).map(|v| v.to_str().unwrap_or_default().to_owned()).unwrap_or_default();
        assert_eq!(plain, "prfix_console=t; Path=/; HttpOnly; SameSite=Strict; Max-Age=60");
    }

    fn request(host: &str, origin: Option<&str>) -> Request<()> {
        let mut builder = Request::post("/v1/api-keys").header(http::header::HOST, host);
        if let Some(origin) = origin {
            builder = builder.header(http::header::ORIGIN, origin);
        }
        builder.body(()).unwrap_or_default()
    }

    #[test]
    fn only_an_origin_naming_the_gateways_own_host_and_port_is_the_same_origin() {
        assert!(same_origin(&request("gw.example:8443", Some("https://gw.example:8443"))));
        assert!(same_origin(&request("gw.example", Some("http://GW.example"))), "hosts compare without case");
        assert!(!same_origin(&request("gw.example:8443", Some("https://gw.example:9443"))), "another port");
        assert!(!same_origin(&request("gw.example", Some("https://gw.example.evil.test"))), "a longer host");
        assert!(!same_origin(&request("gw.example", Some("null"))), "an opaque origin");
        assert!(!same_origin(&request("gw.example", None)), "no Origin");
    }
}
