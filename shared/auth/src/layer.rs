//! A tower layer that authenticates and authorizes every call to a gRPC server by the method's
//! policy, and puts the [`Principal`] into the request extensions for the handlers.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{Request, Response};
use tower::{Layer, Service};

use crate::claims::Principal;
use crate::policy::{Decision, PolicyTable, authorize};
use crate::verifier::{AuthError, Verifier, bearer};

/// Checks a call to `path` with the `authorization` header value against the method's policy;
/// returns the principal when a token was verified.
pub async fn check(
    verifier: &Verifier,
    policies: &PolicyTable,
    path: &str,
    authorization: Option<&str>,
) -> Result<Option<Principal>, AuthError> {
    let policy = match policies.decide(path) {
        Decision::Open | Decision::Unknown => return Ok(None),
        Decision::NoPolicy => return Err(AuthError::Forbidden),
        Decision::Policy(policy) => policy,
    };
    if policy.public {
        return Ok(None);
    }
    let token = authorization.and_then(bearer).ok_or(AuthError::Missing)?;
    let principal = verifier.verify(token).await?;
    authorize(&policy, Some(&principal))?;
    Ok(Some(principal))
}

/// The layer; clone it into each server.
#[derive(Clone)]
pub struct AuthLayer {
    verifier: Arc<Verifier>,
    policies: Arc<PolicyTable>,
}

impl AuthLayer {
    /// Enforces `policies` with tokens checked by `verifier`.
    pub fn new(verifier: Arc<Verifier>, policies: Arc<PolicyTable>) -> Self {
        Self { verifier, policies }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, verifier: self.verifier.clone(), policies: self.policies.clone() }
    }
}

/// The service the layer makes.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    verifier: Arc<Verifier>,
    policies: Arc<PolicyTable>,
}

impl<S, B, RB> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone that was polled ready is the one that serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let policies = self.policies.clone();
        let path = request.uri().path().to_owned();
        let authorization =
            request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Box::pin(async move {
            match check(&verifier, &policies, &path, authorization.as_deref()).await {
                Ok(principal) => {
                    if let Some(principal) = principal {
                        request.extensions_mut().insert(principal);
                    }
                    inner.call(request).await
                }
                Err(error) => Ok(error.to_status().into_http()),
            }
        })
    }
}
