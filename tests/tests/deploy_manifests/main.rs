//! The deployment files: the Kubernetes manifests (`k8s/`, a kustomize base and two overlays), the
//! Helm charts (`charts/`, a library chart and one chart per service), and the images and Compose
//! set-up (`docker/`).
//!
//! The overlays are rendered by kustomize and the charts by helm (linted strictly first, with the
//! values files they ship), and every object is validated offline against the Kubernetes 1.30
//! schemas by kubernetes-validate (strict: an unknown field is an error); `docker/compose.yaml` is
//! validated against the Compose specification's schema by check-jsonschema. YAML is read as JSON
//! through python3's PyYAML (installed with kubernetes-validate), and the same checks (`checks`)
//! run, in Rust, on what kustomize and helm render: the restricted Pod Security profile of every
//! pod template, resources and gRPC probes, the metrics port, who may reach whom under the
//! NetworkPolicies, and the settings and secrets each service is given (loaded by the services' own
//! `Settings`). Then what is particular to each: the migration Job and hook, the backup CronJob
//! (its script run for real against Postgres), the values schemas, the hardening and start order of
//! the Compose services, the Dockerfile's stages, the seccomp profile, and the helper scripts.
//!
//! A missing tool fails the test, never skips it; `bash .ci/run` installs them all.

mod checks;
mod compose;
mod docker;
mod helm;
mod kustomize;
mod support;
