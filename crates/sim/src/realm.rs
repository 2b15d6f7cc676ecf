//! Data-residency realms (platform.md §7).

use std::fmt;
use std::str::FromStr;

/// Where a site's data lives. Hosted storage is pinned to the realm of the installation's
/// site and moves with it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Realm {
    #[serde(rename = "US")]
    Us,
    #[serde(rename = "EU")]
    Eu,
    #[serde(rename = "DE")]
    De,
    #[serde(rename = "AU")]
    Au,
    #[serde(rename = "SG")]
    Sg,
    #[serde(rename = "CA")]
    Ca,
    #[serde(rename = "IN")]
    In,
    #[serde(rename = "KR")]
    Kr,
    #[serde(rename = "JP")]
    Jp,
    #[serde(rename = "GB")]
    Gb,
    #[serde(rename = "CH")]
    Ch,
    /// The global default for sites without a pinned realm.
    #[serde(rename = "GLOBAL")]
    Global,
}

impl Realm {
    pub const ALL: [Realm; 12] = [
        Realm::Us,
        Realm::Eu,
        Realm::De,
        Realm::Au,
        Realm::Sg,
        Realm::Ca,
        Realm::In,
        Realm::Kr,
        Realm::Jp,
        Realm::Gb,
        Realm::Ch,
        Realm::Global,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Realm::Us => "US",
            Realm::Eu => "EU",
            Realm::De => "DE",
            Realm::Au => "AU",
            Realm::Sg => "SG",
            Realm::Ca => "CA",
            Realm::In => "IN",
            Realm::Kr => "KR",
            Realm::Jp => "JP",
            Realm::Gb => "GB",
            Realm::Ch => "CH",
            Realm::Global => "GLOBAL",
        }
    }
}

impl fmt::Display for Realm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A realm name that is not one of the platform's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown realm `{0}` (expected one of US, EU, DE, AU, SG, CA, IN, KR, JP, GB, CH, GLOBAL)")]
pub struct UnknownRealm(pub String);

impl FromStr for Realm {
    type Err = UnknownRealm;

    fn from_str(s: &str) -> Result<Realm, UnknownRealm> {
        Realm::ALL
            .into_iter()
            .find(|r| r.code().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownRealm(s.to_string()))
    }
}
