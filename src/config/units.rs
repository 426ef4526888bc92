//! The value types of the configuration file that take units: durations ([`Seconds`]) and sizes.
//!
//! One duration type for every key that configures a time (issue 11: the file used to have two
//! dialects, `connect_timeout_secs = 10` next to `header_read_timeout = "10s"`). Each accepts a
//! plain number of seconds or a number with a unit, so `10`, `"10"`, `"10s"`, `"5m"`, `"2h"`
//! and `"7d"` all work everywhere.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A configured duration, in whole seconds: `10` or `"10s"`, `"5m"`, `"2h"`, `"7d"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seconds(u64);

impl Seconds {
    pub const ZERO: Seconds = Seconds(0);

    pub const fn from_secs(secs: u64) -> Self {
        Seconds(secs)
    }

    pub const fn as_duration(self) -> Duration {
        Duration::from_secs(self.0)
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl From<Seconds> for Duration {
    fn from(s: Seconds) -> Duration {
        s.as_duration()
    }
}

/// As the file would spell it: `90s`.
impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0)
    }
}

/// `"30s"`, `"15m"`, `"12h"`, `"7d"` or a plain number of seconds (surrounding spaces, and a
/// space between number and unit, are allowed).
impl FromStr for Seconds {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| {
            format!("{text:?} is not a duration such as \"7d\", \"12h\", \"5m\", \"90s\" or 90")
        })?;
        let mult = match unit.trim() {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            other => {
                return Err(format!(
                    "unknown duration unit {other:?} in {text:?} (use s, m, h or d)"
                ))
            }
        };
        n.checked_mul(mult)
            .map(Seconds)
            .ok_or_else(|| format!("{text:?} is too large"))
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Seconds;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a number of seconds or a duration such as \"10s\", \"5m\", \"2h\" or \"7d\"",
                )
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                Ok(Seconds(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
                u64::try_from(v)
                    .map(Seconds)
                    .map_err(|_| E::custom(format!("{v} is negative; a duration is 0 or more")))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Seconds, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// `"20GiB"`, `"500 MB"`, `"1024"`: binary (KiB, MiB, GiB, TiB) and decimal (KB, MB, GB, TB) units.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as \"20GiB\" or \"500MB\""))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        other => {
            return Err(format!(
            "unknown size unit {other:?} in {text:?} (use KiB, MiB, GiB, TiB, KB, MB, GB or TB)"
        ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// `storage.min_free`: the free space the store leaves on its filesystem, as a size (`"2GiB"`)
/// or a share of the filesystem (`"5%"`); `0` turns the floor off.
///
/// The default is the larger of [`MinFree::DEFAULT_BYTES`] (512 MiB) and
/// [`MinFree::DEFAULT_PERCENT`] (5 %) of the filesystem: 5 % is what ext4 keeps back for root by
/// default, so on a large volume the floor scales with it; on a small volume (under 10 GiB) the
/// fixed 512 MiB binds, enough for a few large layers of unknown length to land, for the log
/// and the trust state to keep being written, and for the system around trustgate to go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MinFree {
    /// The larger of 512 MiB and 5 % of the filesystem.
    #[default]
    Default,
    Bytes(u64),
    /// Whole percent of the filesystem's size, 1 to [`MinFree::MAX_PERCENT`].
    Percent(u8),
}

impl MinFree {
    pub const DEFAULT_BYTES: u64 = 512 << 20;
    pub const DEFAULT_PERCENT: u8 = 5;
    /// More than this leaves the store next to nothing: surely a typo.
    pub const MAX_PERCENT: u8 = 90;

    /// The floor in bytes on a filesystem of `fs_size` bytes.
    pub fn bytes(self, fs_size: u64) -> u64 {
        let share = |p: u8| (fs_size as u128 * u128::from(p) / 100) as u64;
        match self {
            Self::Default => Self::DEFAULT_BYTES.max(share(Self::DEFAULT_PERCENT)),
            Self::Bytes(b) => b,
            Self::Percent(p) => share(p),
        }
    }
}

/// As the file would spell it (`"5%"`, `"1073741824"`), or `default`.
impl fmt::Display for MinFree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => write!(f, "the larger of 512MiB and {}%", Self::DEFAULT_PERCENT),
            Self::Bytes(b) => write!(f, "{b} bytes"),
            Self::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl FromStr for MinFree {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        match t.strip_suffix('%') {
            Some(num) => {
                let p: u8 = num.trim().parse().map_err(|_| {
                    format!("{text:?} is not a share such as \"5%\" (whole percent)")
                })?;
                if p > Self::MAX_PERCENT {
                    return Err(format!(
                        "{text:?} would leave the store at most {}% of its filesystem (at most {}% is allowed)",
                        100 - u16::from(p.min(100)),
                        Self::MAX_PERCENT
                    ));
                }
                Ok(if p == 0 {
                    Self::Bytes(0)
                } else {
                    Self::Percent(p)
                })
            }
            None => parse_size(t)
                .map(Self::Bytes)
                .map_err(|e| format!("{e}, or a share of the filesystem such as \"5%\"")),
        }
    }
}

impl<'de> Deserialize<'de> for MinFree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match SizeOrText::deserialize(d)? {
            SizeOrText::Number(n) => Ok(Self::Bytes(n)),
            SizeOrText::Text(t) => t.parse().map_err(de::Error::custom),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeOrText {
    Number(u64),
    Text(String),
}

pub(crate) fn de_opt_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    de_size(d).map(Some)
}

pub(crate) fn de_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match SizeOrText::deserialize(d)? {
        SizeOrText::Number(n) => Ok(n),
        SizeOrText::Text(t) => parse_size(&t).map_err(de::Error::custom),
    }
}

/// A rate in bytes per second: a number, or a size with an optional `/s` (`"1KiB/s"`, `"1KiB"`).
pub(crate) fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let size = t.strip_suffix("/s").unwrap_or(t);
    parse_size(size).map_err(|_| {
        format!("{text:?} is not a rate such as \"1KiB/s\" or \"100KB/s\" (0 turns it off)")
    })
}

pub(crate) fn de_rate<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match SizeOrText::deserialize(d)? {
        SizeOrText::Number(n) => Ok(n),
        SizeOrText::Text(t) => parse_rate(&t).map_err(de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rates_take_a_size_per_second() {
        assert_eq!(parse_rate("1KiB/s"), Ok(1024));
        assert_eq!(parse_rate(" 100KB/s "), Ok(100_000));
        assert_eq!(parse_rate("2MiB"), Ok(2 << 20));
        assert_eq!(parse_rate("0"), Ok(0));
        let e = parse_rate("fast").unwrap_err();
        assert!(e.contains("not a rate such as \"1KiB/s\""), "{e}");
        assert!(parse_rate("1KiB/min").is_err());
    }

    #[derive(Debug, Deserialize)]
    struct T {
        d: Seconds,
    }

    fn de(value: &str) -> Result<Seconds, String> {
        toml::from_str::<T>(&format!("d = {value}"))
            .map(|t| t.d)
            .map_err(|e| e.message().to_string())
    }

    #[test]
    fn numbers_and_units_give_the_same_durations() {
        assert_eq!(de("10"), Ok(Seconds(10)));
        assert_eq!(de("\"10\""), Ok(Seconds(10)));
        assert_eq!(de("\"10s\""), Ok(Seconds(10)));
        assert_eq!(de("\"5m\""), Ok(Seconds(300)));
        assert_eq!(de("\"2h\""), Ok(Seconds(7200)));
        assert_eq!(de("\"7d\""), Ok(Seconds(7 * 86_400)));
        assert_eq!(de("\" 3 m \""), Ok(Seconds(180)));
        assert_eq!(de("0"), Ok(Seconds::ZERO));
        assert_eq!(Seconds(90).as_duration(), Duration::from_secs(90));
        assert_eq!(Seconds(90).to_string(), "90s");
    }

    #[test]
    fn bad_durations_say_what_is_expected() {
        assert!(de("-1").unwrap_err().contains("negative"));
        assert!(de("\"soon\"").unwrap_err().contains("not a duration"));
        assert!(de("\"5 fortnights\"")
            .unwrap_err()
            .contains("unknown duration unit \"fortnights\""));
        assert!(de("1.5").unwrap_err().contains("a number of seconds"));
        assert!(de("\"99999999999999999d\"")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn min_free_takes_a_size_or_a_share() {
        assert_eq!("2GiB".parse::<MinFree>().unwrap(), MinFree::Bytes(2 << 30));
        assert_eq!("5%".parse::<MinFree>().unwrap(), MinFree::Percent(5));
        assert_eq!(" 0 ".parse::<MinFree>().unwrap(), MinFree::Bytes(0));
        assert_eq!("0%".parse::<MinFree>().unwrap(), MinFree::Bytes(0));
        assert!("95%"
            .parse::<MinFree>()
            .unwrap_err()
            .contains("at most 90%"));
        assert!("x%"
            .parse::<MinFree>()
            .unwrap_err()
            .contains("whole percent"));
        assert!("lots".parse::<MinFree>().unwrap_err().contains("\"5%\""));
        // The default: 512 MiB on a small filesystem, 5 % on a large one.
        assert_eq!(MinFree::Default.bytes(4 << 30), 512 << 20);
        assert_eq!(MinFree::Default.bytes(1 << 40), (1u64 << 40) / 20);
        assert_eq!(MinFree::Percent(10).bytes(1000), 100);
        assert_eq!(MinFree::Bytes(7).bytes(1000), 7);
    }

    #[test]
    fn sizes_take_units() {
        assert_eq!(parse_size("20GiB").unwrap(), 20 << 30);
        assert_eq!(parse_size("500 MB").unwrap(), 500_000_000);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert!(parse_size("5 parsecs")
            .unwrap_err()
            .contains("unknown size unit"));
    }

    proptest! {
        #[test]
        fn every_unit_is_its_number_of_seconds(n in 0u64..1_000_000) {
            prop_assert_eq!(format!("{n}").parse::<Seconds>(), Ok(Seconds(n)));
            prop_assert_eq!(format!("{n}s").parse::<Seconds>(), Ok(Seconds(n)));
            prop_assert_eq!(format!("{n}m").parse::<Seconds>(), Ok(Seconds(n * 60)));
            prop_assert_eq!(format!("{n}h").parse::<Seconds>(), Ok(Seconds(n * 3600)));
            prop_assert_eq!(format!("{n}d").parse::<Seconds>(), Ok(Seconds(n * 86_400)));
            // Display gives back what parses to the same value.
            prop_assert_eq!(Seconds(n).to_string().parse::<Seconds>(), Ok(Seconds(n)));
        }
    }
}
