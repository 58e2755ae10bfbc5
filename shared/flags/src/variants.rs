//! Choosing a variant: overrides first, then the context's place in the variants' total weight,
//! hashed with the variant seed, as the Unleash client specification defines it.

use crate::context::UnleashContext;
use crate::model::Variant;
use crate::murmur::{VARIANT_SEED, normalized};

/// A random identifier, for contexts that have no value to stick to.
pub fn random_identifier() -> String {
    (rand::random_range(1..=10_000u32)).to_string()
}

/// The identifier a context sticks to: the named field, or with `default` (or none) the user, the
/// session or the address, whichever is there first; random when none is.
fn seed(context: &UnleashContext, stickiness: Option<&str>) -> String {
    let found = match stickiness.filter(|s| !s.is_empty() && *s != "default") {
        Some(field) => context.value(field),
        None => ["userId", "sessionId", "remoteAddress"].into_iter().find_map(|f| context.value(f)),
    };
    found.map_or_else(random_identifier, str::to_owned)
}

/// The variant of `variants` for `context` in `group_id`, sticking to `stickiness`; `None` when the
/// weights add up to nothing.
pub fn select<'a>(
    group_id: &str,
    stickiness: Option<&str>,
    variants: &'a [Variant],
    context: &UnleashContext,
) -> Option<&'a Variant> {
    let total: u32 = variants.iter().map(|v| v.weight).fold(0, u32::saturating_add);
    if total == 0 {
        return None;
    }
    let overridden = variants.iter().find(|v| {
        v.overrides
            .iter()
            .any(|o| context.value(&o.context_name).is_some_and(|value| o.values.iter().any(|x| x == value)))
    });
    if overridden.is_some() {
        return overridden;
    }
    let target = normalized(&seed(context, stickiness), group_id, total, VARIANT_SEED);
    let mut counter = 0u32;
    variants.iter().filter(|v| v.weight > 0).find(|v| {
        counter = counter.saturating_add(v.weight);
        counter >= target
    })
}
