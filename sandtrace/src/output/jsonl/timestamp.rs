//! RFC 3339 UTC timestamps with microseconds (`2026-11-27T09:34:19.123456Z`), as
//! `humantime::format_rfc3339_micros` writes them. Events come in bursts within one second,
//! so the calendar part is computed once per second and reused.

use std::{
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Result, anyhow};

/// `YYYY-MM-DDTHH:MM:SS.`
const PREFIX_LEN: usize = 20;

pub struct Timestamps {
    /// Seconds since the epoch that `prefix` spells, if any yet.
    second: Option<u64>,
    prefix: [u8; PREFIX_LEN],
}

impl Timestamps {
    pub fn new() -> Self {
        Self {
            second: None,
            prefix: [0; PREFIX_LEN],
        }
    }

    /// Appends `time`, unquoted. Fails for times humantime cannot format (before 1970,
    /// after 9999).
    pub fn write(&mut self, out: &mut Vec<u8>, time: SystemTime) -> Result<()> {
        let since_epoch = time
            .duration_since(UNIX_EPOCH)
            .map_err(|_| anyhow!("event time {time:?} is before 1970"))?;
        let second = since_epoch.as_secs();
        if self.second != Some(second) {
            self.prefix = prefix(second)?;
            self.second = Some(second);
        }
        out.extend_from_slice(&self.prefix);
        let mut micros = since_epoch.subsec_micros();
        let mut digits = [b'0'; 6];
        for digit in digits.iter_mut().rev() {
            *digit = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        out.extend_from_slice(&digits);
        out.push(b'Z');
        Ok(())
    }
}

/// The date and time of `second` up to the fraction's dot (computed once a second).
fn prefix(second: u64) -> Result<[u8; PREFIX_LEN]> {
    let time = UNIX_EPOCH + Duration::from_secs(second);
    let mut text = String::with_capacity(PREFIX_LEN);
    // `2026-11-27T09:34:19Z`: the prefix's length, with `Z` where the dot goes.
    fmt::write(
        &mut text,
        format_args!("{}", humantime::format_rfc3339_seconds(time)),
    )
    .ok()
    .and_then(|()| text.into_bytes().try_into().ok())
    .map(|mut prefix: [u8; PREFIX_LEN]| {
        prefix[PREFIX_LEN - 1] = b'.';
        prefix
    })
    .ok_or_else(|| anyhow!("event time {second} s after 1970 is past the year 9999"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_humantime_across_seconds_and_days() {
        let mut timestamps = Timestamps::new();
        let base = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        for offset_ns in [
            0,
            1_000,
            999_999_999,
            1_000_000_000,
            1_000_000_999,
            86_400_000_000_000 - 1,
            86_400_000_000_000,
            40 * 365 * 86_400_000_000_000,
        ] {
            let time = base + Duration::from_nanos(offset_ns);
            let mut out = Vec::new();
            timestamps.write(&mut out, time).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                humantime::format_rfc3339_micros(time).to_string(),
                "{offset_ns} ns after the base time"
            );
        }
    }

    #[test]
    fn refuses_times_humantime_cannot_format() {
        let mut out = Vec::new();
        let before_1970 = UNIX_EPOCH - Duration::from_secs(1);
        assert!(Timestamps::new().write(&mut out, before_1970).is_err());
        let year_10000 = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
        assert!(Timestamps::new().write(&mut out, year_10000).is_err());
    }
}
