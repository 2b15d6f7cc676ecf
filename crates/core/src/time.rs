//! Time without a system clock: UTC timestamps, ISO 8601 durations and the injected [`Clock`].
//!
//! The engine never reads the system time. Every command takes its time from a [`Clock`]
//! that the caller provides, and `tick(now)` takes `now` explicitly, so a run is
//! reproducible from its inputs.
//!
//! Time has a range: from [`Timestamp::MIN`] (`0001-01-01T00:00:00Z`) to
//! [`Timestamp::MAX`] (`9999-12-31T23:59:59Z`), the years that the stored form
//! `YYYY-MM-DDTHH:MM:SSZ` can write with four digits. Text outside it is refused where it
//! enters (`FromStr`: the command line, scenario files), deadlines computed by
//! [`Timestamp::plus`] stop at `MAX`, and workflow validation refuses a duration that
//! cannot fit in the range from any start. Calendar work (leap years, days in a month, month
//! arithmetic) is done by `jiff`; this module only reads and writes the fixed text form.
//!
//! An earlier version wrote deadlines past the range with five-digit years
//! (`10026-01-01T00:00:00Z`) into records and stored states. Deserializing still reads that
//! text, to the exact instant it named, and `Display` writes it back byte for byte, so that
//! a hash chain written then still verifies (see [`Timestamp`]'s `Deserialize`).

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};

use jiff::civil::Date;
use jiff::{SignedDuration, Span};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant with one-second resolution, as seconds since 1970-01-01T00:00:00Z.
///
/// It is written and read as RFC 3339 with a `Z` suffix: `2026-01-05T09:00:00Z`. Valid
/// instants lie between [`Timestamp::MIN`] and [`Timestamp::MAX`]; the field is public, so
/// a value outside can be built by hand or read from a store an earlier version wrote, and
/// [`Timestamp::in_range`] tells.
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
    #[error(
        "{0:?} is outside the range of time signoff keeps (0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z)"
    )]
    OutOfRange(String),
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
    /// The earliest instant signoff keeps: `0001-01-01T00:00:00Z`.
    pub const MIN: Timestamp = Timestamp(-62_135_596_800);
    /// The latest instant signoff keeps: `9999-12-31T23:59:59Z`. Deadlines that would fall
    /// later are set to it (see [`Timestamp::plus`]).
    pub const MAX: Timestamp = Timestamp(253_402_300_799);

    /// Whether this instant lies between [`Timestamp::MIN`] and [`Timestamp::MAX`].
    pub const fn in_range(self) -> bool {
        Timestamp::MIN.0 <= self.0 && self.0 <= Timestamp::MAX.0
    }

    /// The instant `d` after this one, with calendar arithmetic for years and months (the
    /// day is kept within the month: January 31 plus `P1M` is the last day of February),
    /// or `None` when this instant or the result is outside the range.
    pub fn checked_plus(self, d: IsoDuration) -> Option<Timestamp> {
        if !self.in_range() {
            return None;
        }
        let mut t = self.0;
        if d.months > 0 {
            let (days, second) = (t.div_euclid(DAY), t.rem_euclid(DAY));
            let date = date_from_days(days)?;
            // jiff refuses a month count or a result outside its own range (years -9999 to
            // 9999); ours is narrower and is checked below.
            let date = date
                .checked_add(Span::new().try_months(d.months).ok()?)
                .ok()?;
            t = days_from_date(date) * DAY + second;
        }
        let t = Timestamp(t.checked_add(i64::try_from(d.seconds).ok()?)?);
        t.in_range().then_some(t)
    }

    /// The instant `d` after this one, as [`Timestamp::checked_plus`], but never outside the
    /// range: a result past [`Timestamp::MAX`] is `MAX` (an instant outside the range is
    /// first brought to the nearer end).
    ///
    /// This is where deadlines are computed (due dates, escalation, reminders, periodic
    /// review), so it is the one place where clamping happens. Workflow validation refuses
    /// durations that do not fit the range from any start, so a deadline is clamped only
    /// when it is counted from a late start, such as `P14D` from 9999-12-20: it is then
    /// 9999-12-31T23:59:59Z, and fires only for a tick at that very second.
    pub fn plus(self, d: IsoDuration) -> Timestamp {
        let start = Timestamp(self.0.clamp(Timestamp::MIN.0, Timestamp::MAX.0));
        start.checked_plus(d).unwrap_or(Timestamp::MAX)
    }
}

impl IsoDuration {
    /// Whether some deadline counted with this duration can be in range: counted from
    /// [`Timestamp::MIN`], the earliest start, it ends at or before [`Timestamp::MAX`]. That
    /// allows durations up to a little under 9,999 years (`P9998Y11M30D` fits, `P9999Y` does
    /// not). Workflow validation refuses the others (`duration_too_long`).
    pub fn fits_in_range(self) -> bool {
        Timestamp::MIN.checked_plus(self).is_some()
    }
}

impl fmt::Display for Timestamp {
    /// Writes `YYYY-MM-DDTHH:MM:SSZ`. An instant outside the range (from an earlier
    /// version's store) is written as that version wrote it: the year with as many digits
    /// as it needs, such as `10026-01-01T00:00:00Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (days, second) = (self.0.div_euclid(DAY), self.0.rem_euclid(DAY));
        let (y, m, d) = civil_from_days(days);
        let (hh, mm, ss) = (second / 3600, second / 60 % 60, second % 60);
        if !(0..=9999).contains(&y) {
            return write!(f, "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z");
        }
        // Every record's hash covers its times, so this is on the hot path: the fixed
        // 20 bytes are written directly rather than through the formatting machinery.
        let mut out = *b"0000-00-00T00:00:00Z";
        let digits = |out: &mut [u8], mut n: i64| {
            for b in out.iter_mut().rev() {
                *b = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        digits(&mut out[0..4], y);
        digits(&mut out[5..7], i64::from(m));
        digits(&mut out[8..10], i64::from(d));
        digits(&mut out[11..13], hh);
        digits(&mut out[14..16], mm);
        digits(&mut out[17..19], ss);
        // The buffer holds only ASCII digits and separators.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for Timestamp {
    type Err = TimeError;

    /// Reads `YYYY-MM-DDTHH:MM:SSZ` (or a bare date `YYYY-MM-DD`, meaning midnight UTC)
    /// within the range; a year outside 0001..=9999 is refused as out of range.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || TimeError::Timestamp(s.to_owned());
        let fields = Fields::read(s).ok_or_else(bad)?;
        if !(1..=9999).contains(&fields.year) {
            return Err(TimeError::OutOfRange(s.to_owned()));
        }
        if !fields.four_digit_year {
            return Err(bad());
        }
        fields.seconds().map(Timestamp).ok_or_else(bad)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    /// Reads what `FromStr` reads and, in addition, an out-of-range instant exactly as an
    /// earlier version's `Display` wrote it (`10026-01-01T00:00:00Z`). Stores hold such
    /// text in records, whose hashes cover it; refusing it made a whole store unreadable,
    /// and rounding it to [`Timestamp::MAX`] would break the document's hash chain. The
    /// value is kept exactly and written back identically; as a deadline it is past
    /// anything a tick can reach, so it never fires.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.parse() {
            Err(e @ TimeError::OutOfRange(_)) => legacy(&s).ok_or(e),
            other => other,
        }
        .map_err(serde::de::Error::custom)
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

/// Seconds in a day.
const DAY: i64 = 86_400;
/// Days in 400 Gregorian years: the calendar repeats with exactly this period, which lets
/// instants outside jiff's range (years -9999 to 9999) be shifted into it and back.
const CYCLE_DAYS: i64 = 146_097;
const EPOCH: Date = Date::constant(1970, 1, 1);

/// The fields of `YYYY-MM-DDTHH:MM:SSZ` or `YYYY-MM-DD`, before the range is checked.
struct Fields {
    year: i64,
    /// The year was written as four digits, without a sign.
    four_digit_year: bool,
    month: i8,
    day: i8,
    second_of_day: i64,
}

impl Fields {
    /// Reads the text form. The year may have any number of digits and a sign (so that an
    /// out-of-range year can be named as such); month and day have two digits; hours,
    /// minutes and seconds are read as earlier versions read them (one or more digits).
    fn read(s: &str) -> Option<Fields> {
        let (date, time) = match s.split_once('T') {
            Some((d, t)) => (d, Some(t.strip_suffix('Z')?)),
            None => (s, None),
        };
        let mut parts = date.rsplitn(3, '-');
        let (day, month, year) = (parts.next()?, parts.next()?, parts.next()?);
        if month.len() != 2 || day.len() != 2 {
            return None;
        }
        let digits = year.strip_prefix(['-', '+']).unwrap_or(year);
        let four_digit_year = digits.len() == 4 && digits.len() == year.len();
        let mut year_value: i64 = 0;
        for b in digits.bytes() {
            // A year too long for an i64 saturates: it is out of range either way.
            year_value = year_value
                .saturating_mul(10)
                .saturating_add(i64::from(digit(b)?));
        }
        if digits.is_empty() {
            return None;
        }
        if year.starts_with('-') {
            year_value = -year_value;
        }
        let (month, day) = (two_digits(month)?, two_digits(day)?);
        let mut second_of_day = 0;
        if let Some(time) = time {
            let mut parts = time.split(':');
            let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() {
                return None;
            }
            let (h, m, s) = (number(h)?, number(m)?, number(s)?);
            if h > 23 || m > 59 || s > 59 {
                return None;
            }
            second_of_day = h * 3600 + m * 60 + s;
        }
        Some(Fields {
            year: year_value,
            four_digit_year,
            month,
            day,
            second_of_day,
        })
    }

    /// Seconds since the epoch, or `None` for a day that does not exist (February 30) or an
    /// instant beyond an i64.
    fn seconds(&self) -> Option<i64> {
        // Shift the year by whole 400-year cycles to near 1970, where jiff checks the date.
        let cycles = self.year.checked_sub(1970)?.div_euclid(400);
        let near = i16::try_from(self.year - cycles * 400).ok()?;
        let date = Date::new(near, self.month, self.day).ok()?;
        let days = days_from_date(date).checked_add(cycles.checked_mul(CYCLE_DAYS)?)?;
        i64::try_from(i128::from(days) * i128::from(DAY) + i128::from(self.second_of_day)).ok()
    }
}

/// An out-of-range instant in the text an earlier version wrote for it, or `None`.
fn legacy(s: &str) -> Option<Timestamp> {
    let t = Timestamp(Fields::read(s)?.seconds()?);
    // Only the exact text `Display` writes, so that the value writes back byte for byte.
    (t.to_string() == s).then_some(t)
}

/// The date `days` after 1970-01-01, when within jiff's range.
fn date_from_days(days: i64) -> Option<Date> {
    EPOCH
        .checked_add(SignedDuration::from_hours(days.checked_mul(24)?))
        .ok()
}

fn days_from_date(date: Date) -> i64 {
    date.duration_since(EPOCH).as_secs() / DAY
}

/// Year, month and day of the day `days` after 1970-01-01, for any `days`: whole 400-year
/// cycles are taken off, jiff names the date, and the cycles are added back to the year.
fn civil_from_days(days: i64) -> (i64, i8, i8) {
    let (cycles, rest) = (days.div_euclid(CYCLE_DAYS), days.rem_euclid(CYCLE_DAYS));
    // `rest` is less than 400 years after 1970, well within jiff's range.
    let date = date_from_days(rest).unwrap_or(EPOCH);
    (
        i64::from(date.year()) + cycles * 400,
        date.month(),
        date.day(),
    )
}

fn digit(b: u8) -> Option<u8> {
    b.is_ascii_digit().then(|| b - b'0')
}

fn two_digits(s: &str) -> Option<i8> {
    let [a, b] = s.as_bytes() else { return None };
    Some((digit(*a)? * 10 + digit(*b)?) as i8)
}

fn number(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn d(s: &str) -> IsoDuration {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn timestamps_round_trip() {
        for s in [
            "1970-01-01T00:00:00Z",
            "2026-01-05T09:00:00Z",
            "2024-02-29T23:59:59Z",
            "1969-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ] {
            assert_eq!(t(s).to_string(), s);
            assert_eq!(serde_json::to_string(&t(s)).unwrap(), format!("\"{s}\""));
            assert_eq!(
                serde_json::from_str::<Timestamp>(&format!("\"{s}\"")).unwrap(),
                t(s)
            );
        }
        assert_eq!(t("2026-01-05").to_string(), "2026-01-05T00:00:00Z");
        assert_eq!(t("2026-01-05T09:00:00Z"), Timestamp(1_767_603_600));
        for bad in [
            "2026-02-30T00:00:00Z",
            "2026-01-05T09:00:00",
            "x",
            "2026-1",
            "2026-1-05",
            "+2026-01-05",
            "02026-01-05",
            "2026-01-05T24:00:00Z",
            "2026-01-05T09:00Z",
            "2026-01-05T09:00:00:00Z",
            "",
        ] {
            assert_eq!(
                bad.parse::<Timestamp>(),
                Err(TimeError::Timestamp(bad.to_owned()))
            );
        }
    }

    #[test]
    fn the_range_has_two_ends() {
        assert_eq!(t("0001-01-01T00:00:00Z"), Timestamp::MIN);
        assert_eq!(t("9999-12-31T23:59:59Z"), Timestamp::MAX);
        assert!(Timestamp::MIN.in_range() && Timestamp::MAX.in_range());
        assert!(!Timestamp(Timestamp::MIN.0 - 1).in_range());
        assert!(!Timestamp(Timestamp::MAX.0 + 1).in_range());
        assert_eq!(
            Timestamp(Timestamp::MAX.0 + 1).to_string(),
            "10000-01-01T00:00:00Z"
        );
        assert_eq!(
            Timestamp(Timestamp::MIN.0 - 1).to_string(),
            "0000-12-31T23:59:59Z"
        );
    }

    #[test]
    fn years_outside_the_range_are_refused_by_name() {
        for s in [
            "10026-01-01T00:00:00Z",
            "+10026-01-01T00:00:00Z",
            "10000-01-01",
            "0000-12-31T23:59:59Z",
            "-0001-01-01T00:00:00Z",
            "99999999999999-01-01",
            "999999999999999999999999-01-01",
        ] {
            assert_eq!(
                s.parse::<Timestamp>(),
                Err(TimeError::OutOfRange(s.to_owned()))
            );
        }
        assert_eq!(
            "10026-01-01T00:00:00Z"
                .parse::<Timestamp>()
                .unwrap_err()
                .to_string(),
            "\"10026-01-01T00:00:00Z\" is outside the range of time signoff keeps \
             (0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z)"
        );
    }

    #[test]
    fn leap_years() {
        for ok in [
            "2000-02-29",
            "2024-02-29",
            "0004-02-29",
            "9996-02-29",
            "1600-02-29",
        ] {
            assert_eq!(t(ok).to_string(), format!("{ok}T00:00:00Z"));
        }
        for bad in [
            "1900-02-29",
            "2100-02-29",
            "2026-02-29",
            "0001-02-29",
            "9999-02-29",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
        assert_eq!(
            t("2024-02-28T12:00:00Z").plus(d("P1D")).to_string(),
            "2024-02-29T12:00:00Z"
        );
        assert_eq!(
            t("2024-02-29T12:00:00Z").plus(d("P1Y")).to_string(),
            "2025-02-28T12:00:00Z"
        );
        assert_eq!(
            t("2024-02-29T12:00:00Z").plus(d("P4Y")).to_string(),
            "2028-02-29T12:00:00Z"
        );
    }

    #[test]
    fn durations_parse_and_add() {
        let start = t("2026-01-31T10:00:00Z");
        let add = |s: &str| start.plus(d(s)).to_string();
        assert_eq!(add("P14D"), "2026-02-14T10:00:00Z");
        assert_eq!(add("P1M"), "2026-02-28T10:00:00Z");
        assert_eq!(add("P1Y"), "2027-01-31T10:00:00Z");
        assert_eq!(add("PT4H30M"), "2026-01-31T14:30:00Z");
        assert_eq!(add("P1W"), "2026-02-07T10:00:00Z");
        assert_eq!(add("P1M1D"), "2026-03-01T10:00:00Z");
        assert_eq!(add("P3M"), "2026-04-30T10:00:00Z");
        assert_eq!(add("P13M"), "2027-02-28T10:00:00Z");
        assert_eq!(
            t("2024-01-31T00:00:00Z").plus(d("P1M")).to_string(),
            "2024-02-29T00:00:00Z"
        );
        assert_eq!(
            t("1969-12-31T23:00:00Z").plus(d("P2M")).to_string(),
            "1970-02-28T23:00:00Z"
        );
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
        for s in ["P14D", "P1Y2M", "PT4H30M", "P1DT1S", "P1Y2M3DT4H"] {
            assert_eq!(d(s).to_string(), s);
        }
    }

    #[test]
    fn checked_plus_stays_in_the_range() {
        assert_eq!(Timestamp::MAX.checked_plus(d("PT1S")), None);
        assert_eq!(
            t("9999-12-31T23:59:58Z").checked_plus(d("PT1S")),
            Some(Timestamp::MAX)
        );
        assert_eq!(t("9999-12-20T00:00:00Z").checked_plus(d("P14D")), None);
        assert_eq!(t("9999-12-20T00:00:00Z").checked_plus(d("P1M")), None);
        assert_eq!(
            t("9999-11-30T00:00:00Z").checked_plus(d("P1M")),
            Some(t("9999-12-30T00:00:00Z"))
        );
        assert_eq!(t("2026-01-01").checked_plus(d("P9000Y")), None);
        assert_eq!(
            t("0999-01-01").checked_plus(d("P9000Y")),
            Some(t("9999-01-01"))
        );
        // Durations at the limits of their own types do not overflow.
        let huge = IsoDuration {
            months: u32::MAX,
            seconds: u64::MAX,
        };
        assert_eq!(Timestamp::MIN.checked_plus(huge), None);
        assert_eq!(t("2026-01-01").plus(huge), Timestamp::MAX);
        // An instant outside the range has no checked sum; `plus` starts from the nearer end.
        assert_eq!(Timestamp(i64::MAX).checked_plus(d("PT1S")), None);
        assert_eq!(Timestamp(i64::MAX).plus(d("PT1S")), Timestamp::MAX);
        assert_eq!(
            Timestamp(i64::MIN).plus(d("P1D")),
            t("0001-01-02T00:00:00Z")
        );
    }

    #[test]
    fn plus_clamps_at_the_end_of_time() {
        assert_eq!(t("9999-12-20T00:00:00Z").plus(d("P14D")), Timestamp::MAX);
        assert_eq!(t("2026-01-05T09:00:00Z").plus(d("P9000Y")), Timestamp::MAX);
        assert_eq!(Timestamp::MAX.plus(d("PT1S")), Timestamp::MAX);
        assert_eq!(Timestamp::MAX.plus(IsoDuration::default()), Timestamp::MAX);
    }

    #[test]
    fn a_duration_fits_when_it_fits_from_the_first_day() {
        for ok in ["P9000Y", "P9998Y", "P9998Y11M30DT23H59M59S", "P3652058D"] {
            assert!(d(ok).fits_in_range(), "{ok}");
        }
        for bad in ["P9999Y", "P9998Y11M30DT23H59M60S", "P3652059D", "P119988M"] {
            assert!(!d(bad).fits_in_range(), "{bad}");
        }
    }

    #[test]
    fn old_out_of_range_text_still_deserializes_exactly() {
        for s in [
            "10026-01-01T00:00:00Z",
            "10000-01-03T00:00:00Z",
            "11026-06-30T12:34:56Z",
            "0000-06-01T00:00:00Z",
        ] {
            let got: Timestamp = serde_json::from_str(&format!("\"{s}\"")).unwrap();
            assert!(!got.in_range());
            assert_eq!(got.to_string(), s);
            assert_eq!(serde_json::to_string(&got).unwrap(), format!("\"{s}\""));
        }
        assert_eq!(
            serde_json::from_str::<Timestamp>("\"10026-01-01T00:00:00Z\"").unwrap(),
            Timestamp(t("2026-01-01").0 + 20 * CYCLE_DAYS * DAY)
        );
        // Only what the old `Display` wrote: it never wrote a sign or a leading zero.
        for bad in [
            "\"+10026-01-01T00:00:00Z\"",
            "\"010026-01-01T00:00:00Z\"",
            "\"10026-02-30T00:00:00Z\"",
        ] {
            assert!(serde_json::from_str::<Timestamp>(bad).is_err(), "{bad}");
        }
    }

    /// The `Display` of the version before jiff (Howard Hinnant's `civil_from_days`): the
    /// text form must not change by a byte.
    fn old_display(t: i64) -> String {
        let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }

    /// The `plus` of the version before jiff, for durations that stay far from the ends.
    fn old_plus(t: i64, months: u32, seconds: u64) -> i64 {
        fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
            let y = if m <= 2 { y - 1 } else { y };
            let era = y.div_euclid(400);
            let yoe = y - era * 400;
            let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
            era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
        }
        let mut out = t;
        if months > 0 {
            let text = old_display(t);
            let y: i64 = text[..4].parse().unwrap();
            let m: i64 = text[5..7].parse().unwrap();
            let d: i64 = text[8..10].parse().unwrap();
            let total = y * 12 + m - 1 + i64::from(months);
            let (ny, nm) = (total.div_euclid(12), total.rem_euclid(12) + 1);
            let leap = ny % 4 == 0 && (ny % 100 != 0 || ny % 400 == 0);
            let last = match nm {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            out = days_from_civil(ny, nm, d.min(last)) * 86_400 + t.rem_euclid(86_400);
        }
        out + seconds as i64
    }

    #[test]
    fn the_text_form_is_the_old_one_for_every_instant() {
        for x in [
            i64::MIN,
            i64::MAX,
            0,
            -1,
            Timestamp::MIN.0,
            Timestamp::MAX.0,
            Timestamp::MAX.0 + 1,
        ] {
            let text = Timestamp(x).to_string();
            assert_eq!(text, old_display(x));
            let back: Timestamp = serde_json::from_str(&format!("\"{text}\"")).unwrap();
            assert_eq!(back, Timestamp(x), "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn display_matches_the_old_code_and_reads_back(x in proptest::num::i64::ANY) {
            let text = Timestamp(x).to_string();
            proptest::prop_assert_eq!(&text, &old_display(x));
            let back: Timestamp = serde_json::from_str(&format!("\"{text}\"")).unwrap();
            proptest::prop_assert_eq!(back, Timestamp(x));
            proptest::prop_assert_eq!(text.parse::<Timestamp>().is_ok(), Timestamp(x).in_range());
        }

        #[test]
        fn plus_adds_as_the_old_code_did(
            x in t("1000-01-01").0..t("3000-01-01").0,
            months in 0u32..12_000,
            seconds in 0u64..100_000_000_000,
        ) {
            let d = IsoDuration { months, seconds };
            proptest::prop_assert_eq!(Timestamp(x).plus(d), Timestamp(old_plus(x, months, seconds)));
        }

        #[test]
        fn in_range_instants_round_trip(x in Timestamp::MIN.0..=Timestamp::MAX.0) {
            let text = Timestamp(x).to_string();
            proptest::prop_assert_eq!(text.parse::<Timestamp>(), Ok(Timestamp(x)));
        }
    }

    #[test]
    fn clocks_say_what_they_are_told() {
        let t0 = t("2026-01-05T09:00:00Z");
        assert_eq!(FixedClock(t0).now(), t0);
        let clock = ManualClock::new(t0);
        assert_eq!(clock.now(), t0);
        let t1 = t0.plus(d("PT1H"));
        clock.set(t1);
        assert_eq!(clock.now(), t1);
    }
}
