//! A domain's rotation policy: built-in defaults, overridden by `defaults:`, overridden by the
//! domain's own keys.

use serde::Deserialize;

use super::monitor::{Monitor, RawMonitor};
use super::values::KeyList;
use super::{
    ActivationWindow, Authoritative, Interval, RetireMode, SelectorTemplate, ServerAddr,
    TimeZoneName,
};
use crate::keys::KeyAlgorithm;

/// How a domain's keys are rotated.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Key types, each rotated under its own selector.
    pub keys: Vec<KeyAlgorithm>,
    /// Selector template (when there is no ring).
    pub selector: SelectorTemplate,
    /// A fixed ring of selectors, reused in turn once their previous key is retired (for
    /// selectors delegated by one CNAME each, set up once); empty: new names from `selector`.
    pub selector_ring: Vec<SelectorTemplate>,
    /// Age at which an active key is replaced.
    pub rotate_every: Interval,
    /// TTL of published records.
    pub ttl: u32,
    /// How visibility is checked.
    pub propagation: Propagation,
    /// How long a replaced key stays published.
    pub grace: Interval,
    /// What happens after the grace window.
    pub retire: RetireMode,
    /// How long a revoked record stays published.
    pub revoke_for: Interval,
    /// When signers may be switched (any time if unset).
    pub activate_window: Option<ActivationWindow>,
    /// The time zone of `activate_window`.
    pub timezone: TimeZoneName,
    /// How often the signers of an active key sign a probe again (0: every pass).
    pub probe_every: Interval,
    /// How DMARC reports watch its rotations (none: timers alone decide).
    pub monitor: Option<Monitor>,
}

/// How rotor decides a record is visible.
#[derive(Clone, Debug, PartialEq)]
pub struct Propagation {
    /// Recursive resolvers that must return the record.
    pub resolvers: Vec<ServerAddr>,
    /// Authoritative nameservers that must return it.
    pub authoritative: Authoritative,
    /// Never activate sooner than this after publishing.
    pub min_wait: Interval,
    /// Time between checks.
    pub poll_every: Interval,
    /// Give up (the key fails; the old one keeps signing) after this.
    pub timeout: Interval,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPropagation {
    pub(super) resolvers: Option<Vec<ServerAddr>>,
    pub(super) authoritative: Option<Authoritative>,
    pub(super) min_wait: Option<Interval>,
    pub(super) poll_every: Option<Interval>,
    pub(super) timeout: Option<Interval>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub(super) keys: Option<KeyList>,
    pub(super) selector: Option<SelectorTemplate>,
    pub(super) selectors: Option<Vec<SelectorTemplate>>,
    pub(super) rotate_every: Option<Interval>,
    pub(super) ttl: Option<u32>,
    pub(super) propagation: Option<RawPropagation>,
    pub(super) grace: Option<Interval>,
    pub(super) retire: Option<RetireMode>,
    pub(super) revoke_for: Option<Interval>,
    pub(super) activate_window: Option<ActivationWindow>,
    pub(super) timezone: Option<TimeZoneName>,
    pub(super) probe_every: Option<Interval>,
    pub(super) monitor: Option<RawMonitor>,
}

impl RawPolicy {
    /// Whether this layer sets nothing (a domain that overrides no default).
    pub(super) fn is_empty(&self) -> bool {
        let Self {
            keys,
            selector,
            selectors,
            rotate_every,
            ttl,
            propagation,
            grace,
            retire,
            revoke_for,
            activate_window,
            timezone,
            probe_every,
            monitor,
        } = self;
        keys.is_none()
            && selector.is_none()
            && selectors.is_none()
            && rotate_every.is_none()
            && ttl.is_none()
            && propagation.is_none()
            && grace.is_none()
            && retire.is_none()
            && revoke_for.is_none()
            && activate_window.is_none()
            && timezone.is_none()
            && probe_every.is_none()
            && monitor.is_none()
    }

    /// What is wrong with this layer's selectors, if anything.
    pub(super) fn selectors_error(&self) -> Option<&'static str> {
        match (&self.selector, &self.selectors) {
            (Some(_), Some(_)) => {
                Some("set `selector:` (a template) or `selectors:` (a ring), not both")
            }
            (_, Some(ring)) if ring.is_empty() => {
                Some("an empty ring: list at least two names, or remove it to use `selector:`")
            }
            _ => None,
        }
    }
}

/// The value from the last layer that sets it.
fn layered<T>(layers: &[&RawPolicy; 2], get: impl Fn(&RawPolicy) -> Option<T>) -> Option<T> {
    layers.iter().rev().find_map(|layer| get(layer))
}

pub(super) fn interval(value: Option<Interval>, default: &str) -> Interval {
    value.unwrap_or_else(|| default.parse().expect("built-in defaults are valid"))
}

impl Policy {
    /// Built-in defaults, overridden by `defaults:`, overridden by the domain's own keys.
    pub(super) fn resolve(layers: [&RawPolicy; 2]) -> Self {
        let layers = &layers;
        let propagation = |get: fn(&RawPropagation) -> Option<Interval>| {
            layered(layers, |l| l.propagation.as_ref().and_then(get))
        };
        Self {
            keys: layered(layers, |l| l.keys.clone())
                .map_or_else(|| vec![KeyAlgorithm::Rsa2048], |k| k.0),
            selector: layered(layers, |l| l.selector.clone())
                .unwrap_or_else(|| "rotor{yyyy}{mm}{dd}".parse().expect("valid")),
            // The innermost layer that names selectors decides: a template or a ring.
            selector_ring: layers
                .iter()
                .rev()
                .find(|l| l.selector.is_some() || l.selectors.is_some())
                .and_then(|l| l.selectors.clone())
                .unwrap_or_default(),
            rotate_every: interval(layered(layers, |l| l.rotate_every), "90d"),
            ttl: layered(layers, |l| l.ttl).unwrap_or(300),
            propagation: Propagation {
                resolvers: layered(layers, |l| l.propagation.as_ref()?.resolvers.clone())
                    .unwrap_or_default(),
                authoritative: layered(layers, |l| l.propagation.as_ref()?.authoritative.clone())
                    .unwrap_or(Authoritative::Auto),
                min_wait: interval(propagation(|p| p.min_wait), "4h"),
                poll_every: interval(propagation(|p| p.poll_every), "5m"),
                timeout: interval(propagation(|p| p.timeout), "48h"),
            },
            grace: interval(layered(layers, |l| l.grace), "7d"),
            retire: layered(layers, |l| l.retire).unwrap_or(RetireMode::Delete),
            revoke_for: interval(layered(layers, |l| l.revoke_for), "7d"),
            activate_window: layered(layers, |l| l.activate_window.clone()),
            timezone: layered(layers, |l| l.timezone).unwrap_or(TimeZoneName(chrono_tz::Tz::UTC)),
            probe_every: interval(layered(layers, |l| l.probe_every), "0s"),
            monitor: layered(layers, |l| l.monitor.as_ref().map(RawMonitor::resolve)),
        }
    }
}
