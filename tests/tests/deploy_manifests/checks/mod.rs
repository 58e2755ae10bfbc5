//! Checks of rendered Kubernetes objects, the same for the kustomize overlays (`k8s/`) and the Helm
//! charts (`charts/`): strict schema validation, the restricted Pod Security profile, resources and
//! probes, the metrics port, the settings and secrets each container is given, and who may reach
//! whom under the NetworkPolicies.

mod network;
mod pods;
mod settings;

pub use network::*;
pub use pods::*;
pub use settings::*;
