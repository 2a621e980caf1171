//! A rate limit written as a setting: `COUNT/UNIT[,BURST]` (`50/s,500`, `30/m`), or `off`.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use governor::Quota;

/// How many requests per period, with a burst allowance; `None` = unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSpec(Option<Spec>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spec {
    count: NonZeroU32,
    period: Duration,
    burst: NonZeroU32,
}

impl RateSpec {
    pub const OFF: RateSpec = RateSpec(None);

    /// `count` per second with room for `burst` at once.
    pub fn per_second(count: u32, burst: u32) -> Self {
        RateSpec(Some(Spec {
            count: NonZeroU32::new(count.max(1)).expect("non-zero"),
            period: Duration::from_secs(1),
            burst: NonZeroU32::new(burst.max(1)).expect("non-zero"),
        }))
    }

    /// The governor quota, or `None` when unlimited.
    pub fn quota(&self) -> Option<Quota> {
        let spec = self.0?;
        let interval = spec.period / spec.count.get();
        Some(
            Quota::with_period(interval.max(Duration::from_nanos(1)))
                .expect("non-zero period")
                .allow_burst(spec.burst),
        )
    }
}

impl FromStr for RateSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(RateSpec::OFF);
        }
        let bad =
            || format!("invalid rate `{s}`: expected COUNT/UNIT[,BURST] (e.g. 50/s,500) or off");
        let (rate, burst) = match s.split_once(',') {
            Some((rate, burst)) => (rate, Some(burst.trim())),
            None => (s, None),
        };
        let (count, unit) = rate.split_once('/').ok_or_else(bad)?;
        let count: NonZeroU32 = count.trim().parse().map_err(|_| bad())?;
        let period = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        let burst = match burst {
            Some(b) => b.parse().map_err(|_| bad())?,
            None => count,
        };
        Ok(RateSpec(Some(Spec {
            count,
            period,
            burst,
        })))
    }
}

impl fmt::Display for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(spec) = self.0 else {
            return f.write_str("off");
        };
        let unit = match spec.period.as_secs() {
            60 => "m",
            3600 => "h",
            _ => "s",
        };
        write!(f, "{}/{unit},{}", spec.count, spec.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(
            "50/s,500".parse::<RateSpec>().unwrap(),
            RateSpec::per_second(50, 500)
        );
        assert_eq!(
            "10/s".parse::<RateSpec>().unwrap(),
            RateSpec::per_second(10, 10)
        );
        assert_eq!("off".parse::<RateSpec>().unwrap(), RateSpec::OFF);
        assert_eq!("30/m,5".parse::<RateSpec>().unwrap().to_string(), "30/m,5");
        for bad in ["", "5", "0/s", "5/d", "5/s,x", "-1/s"] {
            assert!(bad.parse::<RateSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn quotas_follow_the_spec() {
        assert!(RateSpec::OFF.quota().is_none());
        let quota = "30/m,5".parse::<RateSpec>().unwrap().quota().unwrap();
        assert_eq!(quota.replenish_interval(), Duration::from_secs(2));
        assert_eq!(quota.burst_size().get(), 5);
    }
}
