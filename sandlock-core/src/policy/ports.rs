//! Port lists: `443`, `80,443`, `9000-9005`, `*`.

use std::fmt;
use std::ops::RangeInclusive;

use crate::{Error, Result};

/// A set of TCP/UDP ports. An empty set matches nothing; [`PortSet::any`]
/// matches every port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortSet {
    any: bool,
    ranges: Vec<RangeInclusive<u16>>,
}

impl PortSet {
    /// The set of every port.
    pub fn any() -> Self {
        PortSet {
            any: true,
            ranges: Vec::new(),
        }
    }

    /// True when the set matches no port.
    pub fn is_empty(&self) -> bool {
        !self.any && self.ranges.is_empty()
    }

    /// True when `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        self.any || self.ranges.iter().any(|r| r.contains(&port))
    }

    /// Adds every port of `other` to this set.
    pub fn extend(&mut self, other: &PortSet) {
        self.any |= other.any;
        self.ranges.extend(other.ranges.iter().cloned());
    }

    /// Parses `N`, `N-M`, comma-separated lists of those, or `*`.
    /// `flag` and `whole` name the flag and full value in errors.
    pub fn parse(text: &str, flag: &'static str, whole: &str) -> Result<Self> {
        if text == "*" {
            return Ok(PortSet::any());
        }
        let mut ranges = Vec::new();
        for item in text.split(',') {
            let (lo, hi) = match item.split_once('-') {
                Some((a, b)) => (parse_port(a, flag, whole)?, parse_port(b, flag, whole)?),
                None => {
                    let p = parse_port(item, flag, whole)?;
                    (p, p)
                }
            };
            if lo > hi {
                return Err(Error::invalid(
                    flag,
                    whole,
                    format!("port range {item} is backwards"),
                ));
            }
            ranges.push(lo..=hi);
        }
        Ok(PortSet { any: false, ranges })
    }
}

fn parse_port(text: &str, flag: &'static str, whole: &str) -> Result<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid(
            flag,
            whole,
            format!("'{text}' is not a port number"),
        ));
    }
    match text.parse::<u32>() {
        Ok(0) => Err(Error::invalid(flag, whole, "port 0 is not a valid port")),
        Ok(p) if p <= 65535 => Ok(p as u16),
        _ => Err(Error::invalid(
            flag,
            whole,
            format!("port {text} is out of range (1-65535)"),
        )),
    }
}

impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.any {
            return f.write_str("*");
        }
        let parts: Vec<String> = self
            .ranges
            .iter()
            .map(|r| {
                if r.start() == r.end() {
                    r.start().to_string()
                } else {
                    format!("{}-{}", r.start(), r.end())
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<PortSet> {
        PortSet::parse(s, "--net-allow-bind", s)
    }

    #[test]
    fn lists_and_ranges() {
        let s = p("8080,9000-9005").unwrap();
        assert!(s.contains(8080) && s.contains(9000) && s.contains(9005));
        assert!(!s.contains(9006) && !s.contains(8081));
        assert_eq!(s.to_string(), "8080,9000-9005");
        assert!(p("*").unwrap().contains(1));
    }

    #[test]
    fn rejects_bad_ports() {
        for bad in ["0", "70000", "65536", "", "a", "10-5", "1,,2", "-3"] {
            let e = p(bad).unwrap_err().to_string();
            assert!(e.contains("--net-allow-bind"), "{bad}: {e}");
        }
        assert!(p("0").unwrap_err().to_string().contains("port 0"));
        assert!(p("70000").unwrap_err().to_string().contains("out of range"));
    }
}
