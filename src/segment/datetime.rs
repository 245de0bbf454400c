//! Wall-clock dates in manifests: `EXT-X-PROGRAM-DATE-TIME` in HLS, `availabilityStartTime`,
//! `publishTime` and `UTCTiming` in DASH. Written as UTC with milliseconds, read back as any
//! RFC 3339 date-time.

use std::fmt::Write as _;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day count since 1970-01-01.
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

/// Appends `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, milliseconds) for Unix milliseconds: what
/// `EXT-X-PROGRAM-DATE-TIME` and the MPD's `xs:dateTime` attributes carry.
pub fn format_utc(unix_ms: u64, out: &mut String) {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        unix_ms % 1000
    );
}

/// Parses an RFC 3339 date-time (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM|±HHMM)`) to Unix ms.
/// `None` for anything else, or a date before 1970.
pub fn parse(s: &str) -> Option<u64> {
    let b = s.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        part.iter().try_fold(0u32, |a, c| {
            a.checked_mul(10)?.checked_add(u32::from(c - b'0'))
        })
    };
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || b.get(13) != Some(&b':') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(16) != Some(&b':') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut pos = 19;
    let mut ms = 0u64;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while b.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
        if pos == start || pos - start > 9 {
            return None;
        }
        // Milliseconds: the first three fraction digits, the rest are dropped.
        for (c, scale) in b.get(start..pos)?.iter().zip([100, 10, 1]) {
            ms += u64::from(c - b'0') * scale;
        }
    }
    let offset_min: i64 = match b.get(pos) {
        Some(b'Z' | b'z') if pos + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let oh = num(pos + 1..pos + 3)?;
            let om = match b.len() - pos {
                6 if b.get(pos + 3) == Some(&b':') => num(pos + 4..pos + 6)?,
                5 => num(pos + 3..pos + 5)?,
                _ => return None,
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let v = i64::from(oh * 60 + om);
            if sign == b'-' {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(y), mo, d);
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + sec) - offset_min * 60;
    let total = secs.checked_mul(1000)?.checked_add(ms as i64)?;
    u64::try_from(total).ok()
}

/// [`format_utc`] as a new string.
pub fn utc(unix_ms: u64) -> String {
    let mut s = String::new();
    format_utc(unix_ms, &mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format_and_parse_back() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        // 2024-02-29T23:59:59.999Z (leap day).
        assert_eq!(utc(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        for ms in [0, 1, 951_782_400_000, 1_700_000_000_123, 4_102_444_799_999] {
            assert_eq!(parse(&utc(ms)), Some(ms));
        }
        assert_eq!(parse("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(parse(" 2023-11-14T22:13:20Z\n"), Some(1_700_000_000_000));
        assert_eq!(
            parse("2024-03-01T01:00:00.5+01:00"),
            Some(1_709_251_200_500)
        );
        assert_eq!(parse("2024-03-01T00:00:00-0000"), Some(1_709_251_200_000));
        for bad in [
            "",
            "Z",
            "2024-13-01T00:00:00Z",
            "2024-03-01T00:00:00",
            "2024-03-01T00:00:00.Z",
            "2024-03-01T00:00:00Zjunk",
            "1969-12-31T23:59:59Z",
            "2024-03-01T00:00:00+1",
            "x024-03-01T00:00:00Z",
            "x-1-1T0:0:0Z",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
