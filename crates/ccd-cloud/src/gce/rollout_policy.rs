//! Compute's rules for a group's update policy, applied to what the spec
//! asks: a percentage only for groups of 10 or more instances, and for a
//! regional group a fixed number that is 0 or at least its zone count. The
//! spec's intent is kept, erring on the safe side: surge rounds up (more
//! spare capacity for a while), unavailability rounds down (never fewer
//! serving instances than asked), and at least one of them stays above 0.

use crate::model::{Share, UpdatePolicy};

/// The policy Compute accepts for a group of `size` instances over `zones`
/// zones (`None`: a zonal group).
pub(crate) fn effective(asked: UpdatePolicy, size: u32, zones: Option<u32>) -> UpdatePolicy {
    let fixed = |share: Share, round_up: bool| match share {
        Share::Percent(_) if size >= 10 => share,
        Share::Percent(p) => {
            let exact = u64::from(p.min(100)) * u64::from(size);
            let n = if round_up {
                exact.div_ceil(100)
            } else {
                exact / 100
            };
            Share::Fixed(u32::try_from(n).unwrap_or(u32::MAX))
        }
        Share::Fixed(_) => share,
    };
    let mut surge = fixed(asked.max_surge, true);
    let mut unavailable = fixed(asked.max_unavailable, false);
    if let Some(zones) = zones.filter(|z| *z > 1) {
        if let Share::Fixed(n @ 1..) = surge {
            surge = Share::Fixed(n.max(zones));
        }
        if let Share::Fixed(n @ 1..) = unavailable
            && n < zones
        {
            unavailable = Share::Fixed(0);
        }
    }
    if is_zero(surge) && is_zero(unavailable) {
        // Compute needs one of them above 0; surging is the safe one.
        surge = Share::Fixed(zones.unwrap_or(1).max(1));
    }
    UpdatePolicy {
        max_surge: surge,
        max_unavailable: unavailable,
    }
}

fn is_zero(s: Share) -> bool {
    matches!(s, Share::Fixed(0) | Share::Percent(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(surge: Share, unavailable: Share) -> UpdatePolicy {
        UpdatePolicy {
            max_surge: surge,
            max_unavailable: unavailable,
        }
    }

    #[test]
    fn percentages_become_numbers_below_ten_instances() {
        let asked = policy(Share::Percent(34), Share::Percent(34));
        let small = effective(asked, 3, None);
        assert_eq!(small.max_surge, Share::Fixed(2), "34% of 3 rounds up");
        assert_eq!(small.max_unavailable, Share::Fixed(1), "and down");
        assert_eq!(
            effective(asked, 10, None),
            asked,
            "kept from 10 instances on"
        );
    }

    #[test]
    fn a_regional_group_gets_zero_or_at_least_its_zones() {
        let asked = policy(Share::Fixed(1), Share::Fixed(0));
        let regional = effective(asked, 2, Some(3));
        assert_eq!(regional.max_surge, Share::Fixed(3));
        assert_eq!(regional.max_unavailable, Share::Fixed(0));
        assert_eq!(effective(asked, 2, None), asked, "zonal groups keep 1");
        let lossy = effective(policy(Share::Fixed(1), Share::Fixed(2)), 6, Some(3));
        assert_eq!(
            lossy.max_unavailable,
            Share::Fixed(0),
            "never more unavailable than asked"
        );
        assert_eq!(lossy.max_surge, Share::Fixed(3));
    }

    #[test]
    fn one_of_the_two_stays_above_zero() {
        let asked = policy(Share::Fixed(0), Share::Fixed(1));
        let regional = effective(asked, 4, Some(3));
        assert_eq!(regional.max_unavailable, Share::Fixed(0));
        assert_eq!(regional.max_surge, Share::Fixed(3));
        let tiny = effective(policy(Share::Percent(10), Share::Percent(0)), 2, None);
        assert_eq!(tiny.max_surge, Share::Fixed(1));
    }
}
