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

/// `strftime` of Unix seconds shifted by `tz_offset_min` (local time as nginx sees it), for
/// `record_suffix`. The C library's conversions a file name can use: `%Y %y %C %m %d %e %j
/// %H %I %M %S %p %a %A %b %h %B %F %T %D %R %s %u %w %z %n %t %%`; any other is kept as
/// written.
pub fn strftime(fmt: &str, unix_secs: i64, tz_offset_min: i32) -> String {
    const DAYS: [&str; 7] = [
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let local = unix_secs + i64::from(tz_offset_min) * 60;
    let days = local.div_euclid(86_400);
    let rem = local.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, rem / 60 % 60, rem % 60);
    // 1970-01-01 was a Thursday.
    let weekday = (days + 4).rem_euclid(7) as usize;
    let yday = days - days_from_civil(y, 1, 1) + 1;
    let day_name = DAYS.get(weekday).copied().unwrap_or("");
    let month_name = MONTHS.get(m as usize - 1).copied().unwrap_or("");
    let mut out = String::with_capacity(fmt.len() + 16);
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else {
            out.push('%');
            break;
        };
        let _ = match spec {
            'Y' => write!(out, "{y}"),
            'y' => write!(out, "{:02}", y.rem_euclid(100)),
            'C' => write!(out, "{:02}", y.div_euclid(100)),
            'm' => write!(out, "{m:02}"),
            'd' => write!(out, "{d:02}"),
            'e' => write!(out, "{d:2}"),
            'j' => write!(out, "{yday:03}"),
            'H' => write!(out, "{hh:02}"),
            'I' => write!(out, "{:02}", (hh + 11) % 12 + 1),
            'M' => write!(out, "{mm:02}"),
            'S' => write!(out, "{ss:02}"),
            'p' => write!(out, "{}", if hh < 12 { "AM" } else { "PM" }),
            'a' => write!(out, "{}", day_name.get(..3).unwrap_or("")),
            'A' => write!(out, "{day_name}"),
            'b' | 'h' => write!(out, "{}", month_name.get(..3).unwrap_or("")),
            'B' => write!(out, "{month_name}"),
            'F' => write!(out, "{y}-{m:02}-{d:02}"),
            'T' => write!(out, "{hh:02}:{mm:02}:{ss:02}"),
            'D' => write!(out, "{m:02}/{d:02}/{:02}", y.rem_euclid(100)),
            'R' => write!(out, "{hh:02}:{mm:02}"),
            's' => write!(out, "{unix_secs}"),
            'u' => write!(out, "{}", if weekday == 0 { 7 } else { weekday }),
            'w' => write!(out, "{weekday}"),
            'z' => {
                let sign = if tz_offset_min < 0 { '-' } else { '+' };
                let off = tz_offset_min.unsigned_abs();
                write!(out, "{sign}{:02}{:02}", off / 60, off % 60)
            }
            'n' => {
                out.push('\n');
                Ok(())
            }
            't' => {
                out.push('\t');
                Ok(())
            }
            '%' => {
                out.push('%');
                Ok(())
            }
            other => write!(out, "%{other}"),
        };
    }
    out
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
    fn strftime_formats_like_the_c_library() {
        // 2026-12-06 16:05:48 UTC, a Sunday, day 340.
        let t = 1_796_573_148;
        assert_eq!(
            strftime("-%d-%b-%y-%T.flv", t, 0),
            "-06-Dec-26-16:05:48.flv"
        );
        assert_eq!(
            strftime("%F_%H%M%S_%j_%a_%A_%u_%w", t, 0),
            "2026-12-06_160548_340_Sun_Sunday_7_0"
        );
        assert_eq!(
            strftime("%Y%m%d-%I%p %z %s %%", t, 60),
            "20261206-05PM +0100 1796573148 %"
        );
        assert_eq!(strftime("%H:%M %z", t, -330), "10:35 -0530");
        assert_eq!(strftime("%q %", t, 0), "%q %");
        assert_eq!(strftime("%e %B %C", 0, 0), " 1 January 19");
    }

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
