//! Time without a system clock: UTC timestamps, ISO 8601 durations and the injected [`Clock`].
//!
//! The engine never reads the system time. Every command takes its time from a [`Clock`]
//! that the caller provides, and `tick(now)` takes `now` explicitly, so a run is
//! reproducible from its inputs.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant with one-second resolution, as seconds since 1970-01-01T00:00:00Z.
///
/// It is written and read as RFC 3339 with a `Z` suffix: `2026-01-05T09:00:00Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

/// An ISO 8601 duration such as `P14D`, `PT4H`, `P1Y` or `P1M2DT3H`.
///
/// Years and months are calendar units (adding `P1M` to January 31 gives the last day of
/// February); weeks, days, hours, minutes and seconds are fixed lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IsoDuration {
    pub months: u32,
    pub seconds: u64,
}

/// Where the engine gets "now" for a command.
pub trait Clock {
    fn now(&self) -> Timestamp;
}

/// A clock that always says the same instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub Timestamp);

/// A clock that a test moves by hand. It is `Sync`, so it can be shared.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

/// Why a timestamp or a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("{0:?} is not a UTC time like 2026-01-05T09:00:00Z")]
    Timestamp(String),
    #[error("{0:?} is not an ISO 8601 duration like P14D, PT4H or P1Y")]
    Duration(String),
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock(AtomicI64::new(start.0))
    }

    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

impl Timestamp {
    /// The instant `d` after this one, with calendar arithmetic for years and months.
    pub fn plus(self, d: IsoDuration) -> Timestamp {
        let mut t = self;
        if d.months > 0 {
            let days = self.0.div_euclid(86_400);
            let secs = self.0.rem_euclid(86_400);
            let (y, m, day) = civil_from_days(days);
            let total = y * 12 + i64::from(m) - 1 + i64::from(d.months);
            let (ny, nm) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u32);
            let nd = day.min(days_in_month(ny, nm));
            t = Timestamp(days_from_civil(ny, nm, nd) * 86_400 + secs);
        }
        Timestamp(t.0.saturating_add(i64::try_from(d.seconds).unwrap_or(i64::MAX)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

impl FromStr for Timestamp {
    type Err = TimeError;

    /// Reads `YYYY-MM-DDTHH:MM:SSZ` (or a bare date `YYYY-MM-DD`, meaning midnight UTC).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || TimeError::Timestamp(s.to_owned());
        let num = |t: &str| -> Result<i64, TimeError> {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            t.parse().map_err(|_| bad())
        };
        let (date, time) = match s.split_once('T') {
            Some((d, t)) => (d, Some(t.strip_suffix('Z').ok_or_else(bad)?)),
            None => (s, None),
        };
        let parts: Vec<&str> = date.split('-').collect();
        let [y, m, d] = parts.as_slice() else {
            return Err(bad());
        };
        // Four-digit years only, which also keeps the arithmetic below far from overflow.
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return Err(bad());
        }
        let (y, m, d) = (num(y)?, num(m)?, num(d)?);
        if !(1..=12).contains(&m) || d < 1 || d > i64::from(days_in_month(y, m as u32)) {
            return Err(bad());
        }
        let mut secs = 0;
        if let Some(time) = time {
            let parts: Vec<&str> = time.split(':').collect();
            let [hh, mm, ss] = parts.as_slice() else {
                return Err(bad());
            };
            let (hh, mm, ss) = (num(hh)?, num(mm)?, num(ss)?);
            if hh > 23 || mm > 59 || ss > 59 {
                return Err(bad());
            }
            secs = hh * 3600 + mm * 60 + ss;
        }
        Ok(Timestamp(
            days_from_civil(y, m as u32, d as u32) * 86_400 + secs,
        ))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for IsoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("P")?;
        let (y, m) = (self.months / 12, self.months % 12);
        let (d, rest) = (self.seconds / 86_400, self.seconds % 86_400);
        let (h, mi, s) = (rest / 3600, rest / 60 % 60, rest % 60);
        if y > 0 {
            write!(f, "{y}Y")?;
        }
        if m > 0 {
            write!(f, "{m}M")?;
        }
        if d > 0 || self.months == 0 && rest == 0 {
            write!(f, "{d}D")?;
        }
        if rest > 0 {
            f.write_str("T")?;
            for (v, u) in [(h, 'H'), (mi, 'M'), (s, 'S')] {
                if v > 0 {
                    write!(f, "{v}{u}")?;
                }
            }
        }
        Ok(())
    }
}

impl FromStr for IsoDuration {
    type Err = TimeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || TimeError::Duration(s.to_owned());
        let body = s.strip_prefix('P').ok_or_else(bad)?;
        let (date, time) = match body.split_once('T') {
            Some((d, t)) if !t.is_empty() => (d, t),
            Some(_) => return Err(bad()),
            None => (body, ""),
        };
        let mut out = IsoDuration::default();
        let mut any = false;
        for (part, units) in [(date, "YMWD"), (time, "HMS")] {
            let mut digits = String::new();
            let mut last_unit = 0;
            for c in part.chars() {
                if c.is_ascii_digit() {
                    digits.push(c);
                    continue;
                }
                let at = units.find(c).ok_or_else(bad)?;
                // Units must appear in order and each at most once.
                if at < last_unit || digits.is_empty() {
                    return Err(bad());
                }
                last_unit = at + 1;
                let n: u64 = digits.parse().map_err(|_| bad())?;
                digits.clear();
                any = true;
                let (months, secs) = match (units, c) {
                    ("YMWD", 'Y') => (12, 0),
                    ("YMWD", 'M') => (1, 0),
                    ("YMWD", 'W') => (0, 7 * 86_400),
                    ("YMWD", _) => (0, 86_400),
                    (_, 'H') => (0, 3600),
                    (_, 'M') => (0, 60),
                    _ => (0, 1),
                };
                // Checked arithmetic: a hostile file must not overflow (or panic).
                let add_months =
                    u32::try_from(n.checked_mul(months).ok_or_else(bad)?).map_err(|_| bad())?;
                out.months = out.months.checked_add(add_months).ok_or_else(bad)?;
                let add_secs = n.checked_mul(secs).ok_or_else(bad)?;
                out.seconds = out.seconds.checked_add(add_secs).ok_or_else(bad)?;
            }
            if !digits.is_empty() {
                return Err(bad());
            }
        }
        if !any {
            return Err(bad());
        }
        Ok(out)
    }
}

impl Serialize for IsoDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IsoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's algorithms for the proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        for s in [
            "1970-01-01T00:00:00Z",
            "2026-01-05T09:00:00Z",
            "2024-02-29T23:59:59Z",
        ] {
            let t: Timestamp = s.parse().unwrap();
            assert_eq!(t.to_string(), s);
        }
        assert_eq!(
            "2026-01-05".parse::<Timestamp>().unwrap().to_string(),
            "2026-01-05T00:00:00Z"
        );
        for bad in [
            "2026-02-30T00:00:00Z",
            "2026-01-05T09:00:00",
            "x",
            "2026-1",
            "99999999999999-01-01",
            "2026-1-05",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_parse_and_add() {
        let t: Timestamp = "2026-01-31T10:00:00Z".parse().unwrap();
        let add = |d: &str| t.plus(d.parse().unwrap()).to_string();
        assert_eq!(add("P14D"), "2026-02-14T10:00:00Z");
        assert_eq!(add("P1M"), "2026-02-28T10:00:00Z");
        assert_eq!(add("P1Y"), "2027-01-31T10:00:00Z");
        assert_eq!(add("PT4H30M"), "2026-01-31T14:30:00Z");
        assert_eq!(add("P1W"), "2026-02-07T10:00:00Z");
        for bad in [
            "14D",
            "P",
            "PT",
            "P1H",
            "PD",
            "P1D1M",
            "P-1D",
            "P18446744073709551615D",
            "P999999999999Y",
            "P18446744073709551615S",
        ] {
            assert!(bad.parse::<IsoDuration>().is_err(), "{bad}");
        }
        for s in ["P14D", "P1Y2M", "PT4H30M", "P1DT1S"] {
            assert_eq!(s.parse::<IsoDuration>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn clocks_say_what_they_are_told() {
        let t0: Timestamp = "2026-01-05T09:00:00Z".parse().unwrap();
        assert_eq!(FixedClock(t0).now(), t0);
        let clock = ManualClock::new(t0);
        assert_eq!(clock.now(), t0);
        let t1 = t0.plus("PT1H".parse().unwrap());
        clock.set(t1);
        assert_eq!(clock.now(), t1);
    }
}
