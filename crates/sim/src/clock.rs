//! Virtual time and seeded randomness: everything the simulator does that depends on time or
//! chance goes through these, so a run with the same seed replays exactly.

use std::fmt;

/// Milliseconds since the Unix epoch, on the simulation's clock.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Millis(pub u64);

impl Millis {
    pub const SECOND: u64 = 1_000;
    pub const MINUTE: u64 = 60 * Millis::SECOND;
    pub const HOUR: u64 = 60 * Millis::MINUTE;
    pub const DAY: u64 = 24 * Millis::HOUR;

    pub fn plus(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }
}

impl fmt::Display for Millis {
    /// RFC 3339 in UTC with milliseconds, computed without a time library.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0 % 1000;
        let secs = self.0 / 1000;
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
        let (y, mo, d) = civil_from_days(days as i64);
        write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
    }
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The simulation's clock. It only moves when the simulation moves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualClock {
    now: Millis,
}

impl VirtualClock {
    pub fn starting_at(now: Millis) -> VirtualClock {
        VirtualClock { now }
    }

    pub fn now(&self) -> Millis {
        self.now
    }

    /// Moves the clock to `to`; time never goes backwards, so an earlier `to` is ignored.
    pub fn advance_to(&mut self, to: Millis) {
        self.now = self.now.max(to);
    }

    pub fn advance_by(&mut self, ms: u64) {
        self.now = self.now.plus(ms);
    }
}

/// A small, fast, seeded generator (xoshiro256**, seeded through SplitMix64). Not for
/// cryptography: for delays, reorderings and fault injection that must replay exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn seeded(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A number in `0..n` (`n` > 0), without modulo bias worth caring about here.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// True with probability `p` (0.0 to 1.0).
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_dates() {
        assert_eq!(Millis(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Millis(1_767_225_600_123).to_string(),
            "2026-01-01T00:00:00.123Z"
        );
        assert_eq!(
            Millis(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn same_seed_same_numbers() {
        let (mut a, mut b) = (Rng::seeded(7), Rng::seeded(7));
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(Rng::seeded(8).next_u64(), xs[0]);
        assert!((0..1000).all(|_| a.below(10) < 10));
    }

    #[test]
    fn the_clock_never_goes_back() {
        let mut c = VirtualClock::starting_at(Millis(100));
        c.advance_to(Millis(50));
        assert_eq!(c.now(), Millis(100));
        c.advance_by(5);
        assert_eq!(c.now(), Millis(105));
    }
}
