//! Small value types of the spec with a text form: durations, CIDR ranges,
//! fixed-or-percent counts. Each parses with a message that says how to fix it.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Serialize, Serializer};

/// A duration written as `500ms`, `2s`, `10m`, `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(std::time::Duration);

const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";

impl Duration {
    pub const fn from_secs(secs: u64) -> Self {
        Duration(std::time::Duration::from_secs(secs))
    }

    pub const fn from_millis(ms: u64) -> Self {
        Duration(std::time::Duration::from_millis(ms))
    }

    pub fn as_std(&self) -> std::time::Duration {
        self.0
    }

    /// Parses `1h30m`, `2s`, `250ms`. Caps at ten years to keep arithmetic safe.
    pub fn parse(text: &str) -> Result<Self, String> {
        let hint = "write a number with a unit: ms, s, m or h (e.g. 500ms, 2s, 10m, 1h30m)";
        if text.is_empty() {
            return Err(format!("empty duration; {hint}"));
        }
        let mut total_ms: u64 = 0;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(format!("{text:?} is not a duration; {hint}"));
            }
            let number: u64 = rest[..digits]
                .parse()
                .map_err(|_| format!("{text:?} is too large; {hint}"))?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let factor = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "" if rest.is_empty() => return Err(format!("{text:?} has no unit; {hint}")),
                "" => return Err(format!("{text:?} is not a duration; {hint}")),
                unit => return Err(format!("unknown unit {unit:?} in {text:?}; {hint}")),
            };
            rest = &rest[unit_len..];
            total_ms = number
                .checked_mul(factor)
                .and_then(|ms| total_ms.checked_add(ms))
                .filter(|ms| *ms <= 10 * 365 * 24 * 3_600_000)
                .ok_or_else(|| format!("{text:?} is longer than ten years; {hint}"))?;
        }
        Ok(Duration::from_millis(total_ms))
    }
}

impl fmt::Display for Duration {
    /// The shortest canonical form: `90s` prints as `1m30s`, `1500ms` as `1s500ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Duration::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration: a number with a unit ms, s, m or h, e.g. 500ms, 2s, 10m, 1h30m."
        })
    }
}

/// An IPv4 or IPv6 range in CIDR notation, e.g. `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Self, String> {
        let hint = "write an address range like 10.0.0.0/8, 203.0.113.7/32 or 0.0.0.0/0";
        let (addr, prefix) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} has no prefix length; {hint}"))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IP address; {hint}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("prefix length {prefix:?} must be 0 to {max}; {hint}"))?;
        let cidr = Cidr { addr, prefix };
        if cidr.network() != addr {
            return Err(format!(
                "{text:?} has host bits set; did you mean {}/{prefix}?",
                cidr.network()
            ));
        }
        Ok(cidr)
    }

    /// The address with every bit past the prefix cleared.
    pub fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let probe = Cidr {
            addr: ip,
            prefix: self.prefix,
        };
        ip.is_ipv4() == self.addr.is_ipv4() && probe.network() == self.addr
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for Cidr {
    fn schema_name() -> Cow<'static, str> {
        "Cidr".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": r"^[0-9a-fA-F.:]+/[0-9]{1,3}$",
            "description": "An IPv4 or IPv6 range in CIDR notation, e.g. 10.0.0.0/8."
        })
    }
}

/// A count of instances: a number, or a percentage of the group (`25%`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixedOrPercent {
    Fixed(u32),
    Percent(u8),
}

impl FixedOrPercent {
    pub fn parse_percent(text: &str) -> Result<Self, String> {
        text.strip_suffix('%')
            .and_then(|n| n.parse::<u8>().ok())
            .filter(|n| *n <= 100)
            .map(FixedOrPercent::Percent)
            .ok_or_else(|| {
                format!("{text:?} is neither a number nor a percentage; write e.g. 1 or \"25%\"")
            })
    }

    /// The number of instances this stands for in a group of `size`, rounding up
    /// as Compute Engine does for surge.
    pub fn resolve(&self, size: u32) -> u32 {
        match *self {
            FixedOrPercent::Fixed(n) => n,
            FixedOrPercent::Percent(p) => (size * u32::from(p)).div_ceil(100),
        }
    }
}

impl Serialize for FixedOrPercent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FixedOrPercent::Fixed(n) => s.serialize_u32(*n),
            FixedOrPercent::Percent(p) => s.collect_str(&format_args!("{p}%")),
        }
    }
}

impl JsonSchema for FixedOrPercent {
    fn schema_name() -> Cow<'static, str> {
        "FixedOrPercent".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A number of instances, or a percentage of the group such as \"25%\".",
            "oneOf": [
                {"type": "integer", "minimum": 0, "maximum": 1000},
                {"type": "string", "pattern": "^(100|[1-9]?[0-9])%$"}
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_canonically() {
        assert_eq!(Duration::parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            Duration::parse("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(Duration::parse("90s").unwrap().to_string(), "1m30s");
        assert_eq!(Duration::from_millis(1500).to_string(), "1s500ms");
        assert!(Duration::parse("2").unwrap_err().contains("no unit"));
        assert!(Duration::parse("2 s").is_err());
        assert!(
            Duration::parse("5d")
                .unwrap_err()
                .contains("unknown unit \"d\"")
        );
        assert!(Duration::parse("99999999999999999999s").is_err());
        assert!(Duration::parse("").is_err());
    }

    #[test]
    fn cidrs_reject_host_bits_and_bad_prefixes() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            Cidr::parse("10.1.2.3/8")
                .unwrap_err()
                .contains("did you mean 10.0.0.0/8")
        );
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("10.0.0.0").unwrap_err().contains("no prefix"));
        assert!(Cidr::parse("2001:db8::/32").is_ok());
        assert!(Cidr::parse("300.0.0.0/8").is_err());
    }

    #[test]
    fn percentages_resolve_rounding_up() {
        assert_eq!(
            FixedOrPercent::parse_percent("25%").unwrap(),
            FixedOrPercent::Percent(25)
        );
        assert!(FixedOrPercent::parse_percent("125%").is_err());
        assert_eq!(FixedOrPercent::Percent(25).resolve(6), 2);
        assert_eq!(FixedOrPercent::Fixed(3).resolve(6), 3);
    }
}
