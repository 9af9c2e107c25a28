//! Where a job may run: providers declare a region, offers name the regions they prefer or
//! require. The rule that ranks providers with it is the contracts' (STATE.md, "Assignment").

use borsh::{BorshDeserialize, BorshSerialize};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The most bytes of a region's name.
pub const REGION_BYTES_MAX: usize = 32;
/// The most regions an offer's placement may name.
pub const PLACEMENT_REGIONS_MAX: usize = 8;

/// Checks a region's name: 1 to [`REGION_BYTES_MAX`] bytes of lowercase ASCII letters, digits
/// and `-`, starting and ending with a letter or a digit (`eu-west`, `ap1`). Names are compared
/// byte for byte, so there is one spelling of each.
pub fn check_region(name: &str) -> Result<()> {
    if !is_region(name) {
        return Err(Error::Invalid(format!(
            "region {name:?}: a region is 1 to {REGION_BYTES_MAX} bytes of lowercase letters, digits and '-', \
             starting and ending with a letter or a digit"
        )));
    }
    Ok(())
}

/// Whether `name` is a region's name (what [`check_region`] checks).
pub fn is_region(name: &str) -> bool {
    let b = name.as_bytes();
    let edge_ok = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    !b.is_empty()
        && b.len() <= REGION_BYTES_MAX
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && edge_ok(b.first())
        && edge_ok(b.last())
}

/// Checks a provider's declared region: empty (none declared) or a valid name.
pub fn check_provider_region(name: &str) -> Result<()> {
    if name.is_empty() { Ok(()) } else { check_region(name) }
}

/// Where an offer's job may run.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Placement {
    /// Any provider.
    #[default]
    Anywhere,
    /// Providers in these regions are ranked first, the others after them.
    Prefer {
        /// The regions, 1 to [`PLACEMENT_REGIONS_MAX`] distinct names.
        regions: Vec<String>,
    },
    /// Only providers in these regions.
    Only {
        /// The regions, 1 to [`PLACEMENT_REGIONS_MAX`] distinct names.
        regions: Vec<String>,
    },
}

impl Placement {
    /// The regions named (none for [`Placement::Anywhere`]).
    pub fn regions(&self) -> &[String] {
        match self {
            Placement::Anywhere => &[],
            Placement::Prefer { regions } | Placement::Only { regions } => regions,
        }
    }

    /// Checks the names: 1 to [`PLACEMENT_REGIONS_MAX`] distinct valid regions, unless anywhere.
    pub fn check(&self) -> Result<()> {
        self.regions().iter().try_for_each(|r| check_region(r))?;
        if !self.counts_ok() {
            return Err(Error::Invalid(format!(
                "a placement that prefers or requires regions names 1 to {PLACEMENT_REGIONS_MAX} distinct ones \
                 (this one names {}); use anywhere for none",
                self.regions().len()
            )));
        }
        Ok(())
    }

    /// Whether the placement names a right number of distinct regions: none for anywhere, 1 to
    /// [`PLACEMENT_REGIONS_MAX`] otherwise, none twice.
    pub fn counts_ok(&self) -> bool {
        let regions = self.regions();
        if *self == Placement::Anywhere {
            return true;
        }
        !regions.is_empty()
            && regions.len() <= PLACEMENT_REGIONS_MAX
            && regions.iter().enumerate().all(|(i, r)| !regions[..i].contains(r))
    }

    /// Whether a provider in `region` (empty: none declared) may run the job.
    pub fn allows(&self, region: &str) -> bool {
        match self {
            Placement::Only { regions } => regions.iter().any(|r| r == region),
            Placement::Anywhere | Placement::Prefer { .. } => true,
        }
    }

    /// Whether a provider in `region` is ranked among the first: in a preferred region, or
    /// any provider when nothing is preferred.
    pub fn prefers(&self, region: &str) -> bool {
        match self {
            Placement::Prefer { regions } => regions.iter().any(|r| r == region),
            Placement::Anywhere | Placement::Only { .. } => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names_have_one_spelling() {
        for ok in ["eu", "eu-west", "ap1", "0", &"a".repeat(REGION_BYTES_MAX)] {
            assert!(check_region(ok).is_ok(), "{ok}");
        }
        for bad in ["", "EU", "eu_west", "-eu", "eu-", "eu west", "é", &"a".repeat(REGION_BYTES_MAX + 1)] {
            assert!(check_region(bad).is_err(), "{bad:?}");
        }
        assert!(check_provider_region("").is_ok());
        assert!(check_provider_region("Eu").is_err());
    }

    #[test]
    fn a_placement_names_a_few_distinct_regions() {
        let p = |r: &[&str]| Placement::Prefer { regions: r.iter().map(|s| (*s).to_owned()).collect() };
        assert!(Placement::Anywhere.check().is_ok());
        assert!(p(&["eu", "us"]).check().is_ok());
        assert!(p(&[]).check().is_err());
        assert!(p(&["eu", "eu"]).check().is_err());
        assert!(p(&["EU"]).check().is_err());
        let nine: Vec<String> = (0..=PLACEMENT_REGIONS_MAX).map(|i| format!("r{i}")).collect();
        assert!(Placement::Only { regions: nine }.check().is_err());
    }

    #[test]
    fn prefer_ranks_first_only_restricts() {
        let regions = vec!["eu".to_owned()];
        let prefer = Placement::Prefer { regions: regions.clone() };
        let only = Placement::Only { regions };
        assert!(prefer.allows("us") && prefer.prefers("eu") && !prefer.prefers("us") && !prefer.prefers(""));
        assert!(only.allows("eu") && !only.allows("us") && !only.allows(""));
        assert!(Placement::Anywhere.allows("") && Placement::Anywhere.prefers("us"));
    }

    #[test]
    fn encoding_is_pinned() {
        assert_eq!(borsh::to_vec(&Placement::Anywhere).expect("encodes"), [0]);
        let only = Placement::Only { regions: vec!["eu".into()] };
        assert_eq!(borsh::to_vec(&only).expect("encodes"), [2, 1, 0, 0, 0, 2, 0, 0, 0, b'e', b'u']);
        assert_eq!(serde_json::to_string(&only).expect("encodes"), r#"{"kind":"only","regions":["eu"]}"#);
    }
}
