//! The flags the services know, with their safe defaults. Only these are counted in `/metrics` by
//! name (others as `other`), so the label set stays bounded whatever an Unleash server holds.

/// What kind of value a flag has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// On or off (a kill switch).
    Switch,
    /// A variant name (and payload) chooses between versions.
    Variant,
}

/// A flag the services evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownFlag {
    /// Its name.
    pub name: &'static str,
    /// Its kind.
    pub kind: Kind,
    /// Whether a switch is on when nothing says otherwise (variants: the flag is on, with the
    /// variant below).
    pub default_on: bool,
    /// The variant when nothing says otherwise (`""`: none, the service's own setting applies).
    pub default_variant: &'static str,
    /// What it does.
    pub description: &'static str,
}

/// Reviews: off refuses new reviews with UNAVAILABLE.
pub const AGENT_REVIEW: &str = "agent.review";
/// Describes: off refuses new describes.
pub const AGENT_DESCRIBE: &str = "agent.describe";
/// Fixes: off refuses new fixes.
pub const AGENT_FIX: &str = "agent.fix";
/// Posting results on a forge: off computes reviews but does not post them.
pub const FORGE_POST: &str = "forge.post";
/// The reasoning model (reviews, describes, fix plans): a variant whose payload (or name) is the model.
pub const AGENT_MODEL_REASONING: &str = "agent.model.reasoning";
/// The coding model (fix edits): a variant whose payload (or name) is the model.
pub const AGENT_MODEL_CODING: &str = "agent.model.coding";
/// The review prompt version: a variant named after the version (`v1`, `v2`).
pub const AGENT_PROMPT_REVIEW: &str = "agent.prompt.review";

/// Every known flag.
pub const KNOWN: &[KnownFlag] = &[
    KnownFlag {
        name: AGENT_REVIEW,
        kind: Kind::Switch,
        default_on: true,
        default_variant: "",
        description: "reviews are accepted",
    },
    KnownFlag {
        name: AGENT_DESCRIBE,
        kind: Kind::Switch,
        default_on: true,
        default_variant: "",
        description: "describes are accepted",
    },
    KnownFlag {
        name: AGENT_FIX,
        kind: Kind::Switch,
        default_on: true,
        default_variant: "",
        description: "fixes are accepted",
    },
    KnownFlag {
        name: FORGE_POST,
        kind: Kind::Switch,
        default_on: true,
        default_variant: "",
        description: "results are posted on the forge (off: computed, not posted)",
    },
    KnownFlag {
        name: AGENT_MODEL_REASONING,
        kind: Kind::Variant,
        default_on: true,
        default_variant: "",
        description: "the reasoning model, when a variant names one (else agent.reasoning_model)",
    },
    KnownFlag {
        name: AGENT_MODEL_CODING,
        kind: Kind::Variant,
        default_on: true,
        default_variant: "",
        description: "the coding model, when a variant names one (else agent.coding_model)",
    },
    KnownFlag {
        name: AGENT_PROMPT_REVIEW,
        kind: Kind::Variant,
        default_on: true,
        default_variant: "v1",
        description: "the review prompt version",
    },
];

/// The known flag called `name`.
pub fn known(name: &str) -> Option<&'static KnownFlag> {
    KNOWN.iter().find(|f| f.name == name)
}

/// The model flag of a model role (`reasoning`, `coding`).
pub fn model_flag(role: &str) -> Option<&'static str> {
    match role {
        "reasoning" => Some(AGENT_MODEL_REASONING),
        "coding" => Some(AGENT_MODEL_CODING),
        _ => None,
    }
}
