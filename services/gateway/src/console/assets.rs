//! The console's static files, compiled into the binary (`services/gateway/console/`): plain ES
//! modules and CSS with no build step, so a gateway serves its console with no Node toolchain.
//! `/` is the page; the rest lives under `/console/assets/`.

use axum::body::Body;
use http::{HeaderValue, Method, Request, Response};

/// The console's Content-Security-Policy: its own origin only, no inline script or style, no
/// framing, forms and `<base>` pinned. `blob:` images are not needed; downloads are navigations.
pub const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                               connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
                               form-action 'self'; frame-ancestors 'none'";

/// Where the files are served from.
pub const PREFIX: &str = "/console/assets/";

macro_rules! asset {
    ($name:literal, $type:literal) => {
        ($name, $type, include_bytes!(concat!("../../console/", $name)) as &[u8])
    };
}

/// Every file: name, media type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("dom.js", "text/javascript; charset=utf-8"),
    asset!("diff.js", "text/javascript; charset=utf-8"),
    asset!("formats.js", "text/javascript; charset=utf-8"),
    asset!("tasks.js", "text/javascript; charset=utf-8"),
    asset!("audit.js", "text/javascript; charset=utf-8"),
    asset!("admin.js", "text/javascript; charset=utf-8"),
];

/// The answer for a console page or file, or `None` when the request is for something else.
pub fn serve<B>(request: &Request<B>) -> Option<Response<Body>> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return None;
    }
    let path = request.uri().path();
    let name = if path == "/" { "index.html" } else { path.strip_prefix(PREFIX)? };
    let &(_, media_type, bytes) = ASSETS.iter().find(|(n, _, _)| *n == name)?;
    let body = if request.method() == Method::HEAD { Body::empty() } else { Body::from(bytes) };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    headers.insert(http::header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONSOLE_CSP));
    Some(response)
}
