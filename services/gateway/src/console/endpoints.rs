//! `/console/session`: sign-in (through AuthService's Login), the session's description with its
//! CSRF token, and logout.

use axum::body::Body;
use axum::extract::FromRequest;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use prfix_auth::Role;
use prfix_proto::audit::v1::AuditResult;
use prfix_proto::auth::v1 as pb;
use prfix_proto::auth::v1::auth_service_server::AuthService;
use subtle::ConstantTimeEq;

use super::{
    CSRF_HEADER, Console, MAX_SIGN_IN_BYTES, client_info, forbidden, json, request_id, same_origin, session_body,
};
use crate::auth::sha256;
use crate::problem;
use crate::ratelimit::Class;
use crate::security_audit::SecurityEvent;

/// `/console/session`: POST signs in, GET describes the session, DELETE logs out.
pub(super) async fn session(console: &Console, request: Request<Body>) -> Response<Body> {
    let id = request_id(&request);
    match *request.method() {
        Method::POST => sign_in(console, request).await,
        Method::GET => {
            let Some(token) = console.cookie(&request) else {
                return problem::from_status(&tonic::Status::unauthenticated("no console session"), &id);
            };
            match console.sessions.touch(&token).await {
                Ok(Some(s)) => json(StatusCode::OK, &session_body(&s.username, &s.roles, &s.csrf_token, s.expires_at)),
                Ok(None) => problem::from_status(&tonic::Status::unauthenticated("no console session"), &id),
                Err(error) => {
                    tracing::error!(%error, "cannot read a console session");
                    problem::from_status(&tonic::Status::unavailable("console sessions are unavailable"), &id)
                }
            }
        }
        Method::DELETE => log_out(console, request).await,
        _ => {
            let mut response = problem::response(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "allowed on /console/session: GET, POST, DELETE",
                &id,
                None,
            );
            response.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
            response
        }
    }
}

/// What a sign-in carries.
#[derive(serde::Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

async fn read_credentials(request: Request<Body>, id: &str) -> Result<Credentials, Response<Body>> {
    let bad = |detail: String| problem::response(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", &detail, id, None);
    if crate::edge::content_type_is(&request, "application/x-www-form-urlencoded") {
        let (parts, body) = request.into_parts();
        let limited = Body::new(http_body_util::Limited::new(body, MAX_SIGN_IN_BYTES));
        return axum::Form::<Credentials>::from_request(Request::from_parts(parts, limited), &())
            .await
            .map(|form| form.0)
            .map_err(|e| bad(format!("the sign-in form: {e}")));
    }
    if !crate::edge::content_type_is(&request, "application/json") {
        return Err(problem::response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "sign in with application/json or application/x-www-form-urlencoded",
            id,
            None,
        ));
    }
    let body = http_body_util::Limited::new(request.into_body(), MAX_SIGN_IN_BYTES)
        .collect()
        .await
        .map_err(|e| bad(format!("cannot read the body: {e}")))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| bad(format!("the body must be {{\"username\", \"password\"}}: {e}")))
}

async fn sign_in(console: &Console, request: Request<Body>) -> Response<Body> {
    let id = request_id(&request);
    let client = client_info(&request);
    // Signing someone in from another site (login CSRF) is refused as other state changes are.
    if request.headers().contains_key(http::header::ORIGIN) && !same_origin(&request) {
        return forbidden("a console sign-in must come from this origin", &id);
    }
    // The address budget of credential checks, as the edge applies to Login.
    if let Err(denied) = console.auth.limiter.check(Class::Strict, &format!("ip:{}", client.ip)).await {
        return problem::from_status(&denied.into_status(), &id);
    }
    let credentials = match read_credentials(request, &id).await {
        Ok(credentials) => credentials,
        Err(response) => return response,
    };
    let mut login =
        tonic::Request::new(pb::LoginRequest { username: credentials.username, password: credentials.password });
    login.extensions_mut().insert(client.clone());
    let answer = match console.auth.login(login).await {
        Ok(answer) => answer.into_inner(),
        Err(status) => return problem::from_status(&status, &id),
    };
    let (Some(tokens), Some(user)) = (answer.tokens, answer.user) else {
        return problem::from_status(&tonic::Status::internal("login answered without tokens"), &id);
    };
    let roles: Vec<String> =
        user.roles.iter().filter_map(|r| Role::from_proto(*r)).map(|r| r.as_str().to_owned()).collect();
    let created = match console.sessions.create(&user.username, &sha256(tokens.refresh_token.as_bytes())).await {
        Ok(created) => created,
        Err(error) => {
            tracing::error!(%error, "cannot store a console session");
            return problem::from_status(&tonic::Status::unavailable("console sessions are unavailable"), &id);
        }
    };
    let expires_at = chrono::Utc::now().timestamp() + i64::try_from(console.absolute_secs).unwrap_or(i64::MAX / 2);
    let mut response = json(StatusCode::OK, &session_body(&user.username, &roles, &created.csrf_token, expires_at));
    if let Some(cookie) = console.set_cookie(&created.token, console.absolute_secs) {
        response.headers_mut().insert(http::header::SET_COOKIE, cookie);
    }
    response
}

async fn log_out(console: &Console, request: Request<Body>) -> Response<Body> {
    let id = request_id(&request);
    let client = client_info(&request);
    let Some(token) = console.cookie(&request) else {
        return problem::from_status(&tonic::Status::unauthenticated("no console session"), &id);
    };
    if !same_origin(&request) {
        return forbidden("a console logout must come from this origin", &id);
    }
    let session = match console.sessions.touch(&token).await {
        Ok(Some(session)) => session,
        Ok(None) => return problem::from_status(&tonic::Status::unauthenticated("no console session"), &id),
        Err(error) => {
            tracing::error!(%error, "cannot read a console session");
            return problem::from_status(&tonic::Status::unavailable("console sessions are unavailable"), &id);
        }
    };
    let sent = request.headers().get(CSRF_HEADER).map(HeaderValue::as_bytes).unwrap_or_default();
    if !bool::from(sent.ct_eq(session.csrf_token.as_bytes())) {
        return forbidden("the X-CSRF-Token does not match the console session", &id);
    }
    // Deleted (and its Login's refresh family revoked) before the answer: a logout that is not
    // recorded is not a logout.
    match console.sessions.delete(&token).await {
        Ok(Some((_, refresh_hash))) => {
            if let Err(error) = console.auth.store.revoke_family_of(&refresh_hash).await {
                tracing::warn!(%error, "cannot revoke the refresh family of a console session");
            }
        }
        Ok(None) => {}
        Err(error) => {
            tracing::error!(%error, "cannot delete a console session");
            return problem::from_status(&tonic::Status::unavailable("console sessions are unavailable"), &id);
        }
    }
    let event = SecurityEvent::new(
        "auth.logout",
        &session.username,
        session.roles.clone(),
        format!("users/{}", session.username),
        AuditResult::Success,
        "",
    )
    .with("via", "console");
    console.auth.audit.record(event, &client).await;
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    if let Some(cookie) = console.set_cookie("", 0) {
        response.headers_mut().insert(http::header::SET_COOKIE, cookie);
    }
    response
}
