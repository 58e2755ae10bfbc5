//! `grpc.health.v1.Health` for the whole API, as seen through the gateway: the gateway answers for
//! itself and its own services, and asks the upstream for the services it forwards to, so one
//! health check per service name works against the gateway's port.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::{mpsc, watch};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::Health;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// How long an upstream health check may take before the service counts as not serving.
const UPSTREAM_CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a Watch re-checks an upstream service.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// The gateway's own readiness, flipped at start and at drain.
#[derive(Clone)]
pub struct Readiness(Arc<watch::Sender<ServingStatus>>);

impl Readiness {
    /// Starts NOT_SERVING.
    pub fn new() -> Self {
        Self(Arc::new(watch::channel(ServingStatus::NotServing).0))
    }

    /// Sets the gateway's status.
    pub fn set(&self, status: ServingStatus) {
        self.0.send_replace(status);
    }

    fn get(&self) -> ServingStatus {
        *self.0.borrow()
    }
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

/// The aggregated health service.
#[derive(Clone)]
pub struct GatewayHealth {
    readiness: Readiness,
    local_services: Vec<&'static str>,
    upstreams: Arc<HashMap<&'static str, HealthClient<Channel>>>,
}

impl GatewayHealth {
    /// Health for `local_services` (and "") from `readiness`, and for each upstream service from
    /// the upstream's own health service.
    pub fn new(
        readiness: Readiness,
        local_services: Vec<&'static str>,
        upstreams: HashMap<&'static str, HealthClient<Channel>>,
    ) -> Self {
        Self { readiness, local_services, upstreams: Arc::new(upstreams) }
    }

    async fn status_of(&self, service: &str) -> Result<ServingStatus, Status> {
        if service.is_empty() || self.local_services.contains(&service) {
            return Ok(self.readiness.get());
        }
        let Some(client) = self.upstreams.get(service) else {
            return Err(Status::not_found(format!("unknown service `{service}`")));
        };
        // A gateway that is draining reports everything behind it as not serving too.
        if self.readiness.get() != ServingStatus::Serving {
            return Ok(ServingStatus::NotServing);
        }
        let mut client = client.clone();
        let request = HealthCheckRequest { service: service.to_owned() };
        match tokio::time::timeout(UPSTREAM_CHECK_TIMEOUT, client.check(request)).await {
            Ok(Ok(response)) => {
                Ok(ServingStatus::try_from(response.into_inner().status).unwrap_or(ServingStatus::Unknown))
            }
            Ok(Err(status)) => {
                tracing::warn!(service, code = ?status.code(), message = status.message(), "upstream health check failed");
                Ok(ServingStatus::NotServing)
            }
            Err(_) => {
                tracing::warn!(service, "upstream health check timed out");
                Ok(ServingStatus::NotServing)
            }
        }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for GatewayHealth {
    async fn check(&self, request: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        let status = self.status_of(&request.into_inner().service).await?;
        Ok(Response::new(HealthCheckResponse { status: status as i32 }))
    }

    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<HealthCheckRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let service = request.into_inner().service;
        let first = self.status_of(&service).await?;
        let (tx, rx) = mpsc::channel(4);
        let this = self.clone();
        tokio::spawn(async move {
            let mut last = first;
            if tx.send(Ok(HealthCheckResponse { status: last as i32 })).await.is_err() {
                return;
            }
            let mut local = this.readiness.0.subscribe();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(WATCH_INTERVAL) => {}
                    changed = local.changed() => if changed.is_err() { return },
                    _ = tx.closed() => return,
                }
                let Ok(now) = this.status_of(&service).await else { return };
                if now != last {
                    last = now;
                    if tx.send(Ok(HealthCheckResponse { status: now as i32 })).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}
