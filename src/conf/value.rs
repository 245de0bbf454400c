//! Value syntax shared by all directives, written to accept exactly what nginx's own slot
//! parsers accept (`ngx_parse_time`, `ngx_parse_size`, `ngx_atoi`, flag and enum slots), so a
//! value that loads in the C module loads here and one that nginx rejects is rejected.

/// Largest value nginx's parsers produce (`NGX_MAX_INT_T_VALUE` / `NGX_MAX_SIZE_T_VALUE` on
/// 64-bit platforms); anything larger is an overflow and rejected.
pub const MAX_PARSED_VALUE: u64 = i64::MAX as u64;

/// Parses a time like `ngx_parse_time`: numbers followed by units in decreasing order, each at
/// most once (`1h30m`, `1m 30s`, `500ms`). `is_sec` selects the unit of the result:
///
/// - `true` (nginx "sec" slots): units `y M w d h m s`, a bare number is seconds, `ms` is refused;
/// - `false` (nginx "msec" slots): units `w d h m s ms` (no `y`, no `M`), a bare number is
///   **seconds** too (nginx multiplies it by 1000: `ping 30;` is 30 s, write `30ms` for ms).
///
/// Returns `None` on an empty string, a sign, an unknown or repeated unit, or overflow.
pub fn parse_time(s: &str, is_sec: bool) -> Option<u64> {
    // Steps in nginx's order; a unit may only follow units of a strictly larger step.
    const START: u8 = 0;
    const YEAR: u8 = 1;
    const MONTH: u8 = 2;
    const WEEK: u8 = 3;
    const DAY: u8 = 4;
    const HOUR: u8 = 5;
    const MIN: u8 = 6;
    const SEC: u8 = 7;
    const MSEC: u8 = 8;
    const LAST: u8 = 9;

    let max = MAX_PARSED_VALUE;
    let bytes = s.as_bytes();
    let mut step = if is_sec { START } else { MONTH };
    let mut valid = false;
    let mut value: u64 = 0;
    let mut total: u64 = 0;
    let mut i = 0;

    while let Some(&c) = bytes.get(i) {
        i += 1;
        if c.is_ascii_digit() {
            value = value.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            if value > max {
                return None;
            }
            valid = true;
            continue;
        }

        let (new_step, mut scale): (u8, u64) = match c {
            b'y' if step == START => (YEAR, 60 * 60 * 24 * 365),
            b'M' if step < MONTH => (MONTH, 60 * 60 * 24 * 30),
            b'w' if step < WEEK => (WEEK, 60 * 60 * 24 * 7),
            b'd' if step < DAY => (DAY, 60 * 60 * 24),
            b'h' if step < HOUR => (HOUR, 60 * 60),
            b'm' if bytes.get(i) == Some(&b's') => {
                if is_sec || step >= MSEC {
                    return None;
                }
                i += 1;
                (MSEC, 1)
            }
            b'm' if step < MIN => (MIN, 60),
            b's' if step < SEC => (SEC, 1),
            b' ' if step < SEC => (LAST, 1),
            _ => return None,
        };
        step = new_step;
        if step != MSEC && !is_sec {
            scale *= 1000;
        }
        let part = value.checked_mul(scale)?;
        total = total.checked_add(part)?;
        if total > max {
            return None;
        }
        value = 0;
        while bytes.get(i) == Some(&b' ') {
            i += 1;
        }
    }

    if !valid {
        return None;
    }
    if !is_sec {
        value = value.checked_mul(1000)?;
    }
    let total = total.checked_add(value)?;
    (total <= max).then_some(total)
}

/// `ngx_conf_set_msec_slot`: a time in milliseconds (bare number = seconds, see [`parse_time`]).
pub fn parse_msec(s: &str) -> Option<u64> {
    parse_time(s, false)
}

/// `ngx_conf_set_sec_slot`: a time in seconds.
pub fn parse_sec(s: &str) -> Option<u64> {
    parse_time(s, true)
}

/// Parses a size like `ngx_parse_size` (`ngx_conf_set_size_slot`): digits with an optional
/// `k`/`K` (×1024) or `m`/`M` (×1024²) suffix. nginx's size slots know no `g` (only its offset
/// slots do), so neither does this.
pub fn parse_size(s: &str) -> Option<u64> {
    let (digits, scale) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1024u64),
        b'm' | b'M' => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    let n = parse_uint(digits)?;
    let size = n.checked_mul(scale)?;
    (size <= MAX_PARSED_VALUE).then_some(size)
}

/// `ngx_atoi` (`ngx_conf_set_num_slot`): one or more ASCII digits, no sign, no spaces.
pub fn parse_uint(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for c in s.bytes() {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        if n > MAX_PARSED_VALUE {
            return None;
        }
    }
    Some(n)
}

/// `ngx_conf_set_flag_slot`: `on` or `off`, any case.
pub fn parse_flag(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("on") {
        Some(true)
    } else if s.eq_ignore_ascii_case("off") {
        Some(false)
    } else {
        None
    }
}

/// `ngx_conf_set_enum_slot`: one of `names`, any case; returns the matching entry's value.
pub fn parse_enum<T: Copy>(s: &str, names: &[(&str, T)]) -> Option<T> {
    names
        .iter()
        .find(|(name, _)| s.eq_ignore_ascii_case(name))
        .map(|&(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msec_bare_number_means_seconds_like_nginx() {
        assert_eq!(parse_msec("30"), Some(30_000));
        assert_eq!(parse_msec("0"), Some(0));
    }

    #[test]
    fn msec_units_and_combinations() {
        assert_eq!(parse_msec("300ms"), Some(300));
        assert_eq!(parse_msec("5s"), Some(5_000));
        assert_eq!(parse_msec("1m30s"), Some(90_000));
        assert_eq!(parse_msec("1m 30s"), Some(90_000));
        assert_eq!(parse_msec("1h"), Some(3_600_000));
        assert_eq!(parse_msec("1d"), Some(86_400_000));
        assert_eq!(parse_msec("1w"), Some(604_800_000));
        assert_eq!(parse_msec("1s500ms"), Some(1_500));
        assert_eq!(parse_msec("2m5"), Some(125_000));
        // nginx skips spaces after a unit, trailing ones included.
        assert_eq!(parse_msec("1s "), Some(1_000));
    }

    #[test]
    fn msec_refuses_years_and_months_like_nginx() {
        assert_eq!(parse_msec("1y"), None);
        assert_eq!(parse_msec("1M"), None);
    }

    #[test]
    fn sec_accepts_years_months_and_refuses_ms() {
        assert_eq!(parse_sec("1y"), Some(31_536_000));
        assert_eq!(parse_sec("1M"), Some(2_592_000));
        assert_eq!(parse_sec("90"), Some(90));
        assert_eq!(parse_sec("1m30s"), Some(90));
        assert_eq!(parse_sec("10ms"), None);
    }

    #[test]
    fn time_rejects_malformed_values() {
        for bad in [
            "", "-1", "+1", "s", "ms", "1x", "5sec", "1s1m", "1s1s", "1m1m", "1.5s", "1 s",
            "1ms1s", "1 2 3",
        ] {
            assert_eq!(parse_msec(bad), None, "{bad:?}");
        }
        assert_eq!(parse_sec(""), None);
    }

    #[test]
    fn time_rejects_overflow() {
        assert_eq!(parse_msec("9223372036854775807"), None);
        assert_eq!(parse_msec("99999999999999999999999"), None);
        assert_eq!(parse_msec("999999999999999w"), None);
        assert_eq!(
            parse_sec("9223372036854775807"),
            Some(9_223_372_036_854_775_807)
        );
        assert_eq!(parse_sec("9223372036854775808"), None);
        assert_eq!(
            parse_msec("9223372036854775ms"),
            Some(9_223_372_036_854_775)
        );
    }

    #[test]
    fn size_units_like_ngx_parse_size() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("1K"), Some(1024));
        assert_eq!(parse_size("1m"), Some(1024 * 1024));
        assert_eq!(parse_size("2M"), Some(2 * 1024 * 1024));
    }

    #[test]
    fn size_rejects_malformed_and_overflow() {
        for bad in ["", "k", "M", "-1", "1g", "1G", "1.5m", "1 k", "1kb", "0x10"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
        assert_eq!(parse_size("9223372036854775807"), Some(i64::MAX as u64));
        assert_eq!(parse_size("9223372036854775808"), None);
        assert_eq!(parse_size("9007199254740992k"), None);
        assert_eq!(parse_size("18446744073709551616"), None);
    }

    #[test]
    fn uint_is_digits_only() {
        assert_eq!(parse_uint("0"), Some(0));
        assert_eq!(parse_uint("007"), Some(7));
        for bad in ["", "-1", "+1", " 1", "1 ", "1e3", "5x"] {
            assert_eq!(parse_uint(bad), None, "{bad:?}");
        }
        assert_eq!(parse_uint("99999999999999999999"), None);
    }

    #[test]
    fn flag_is_case_insensitive_on_off() {
        assert_eq!(parse_flag("on"), Some(true));
        assert_eq!(parse_flag("ON"), Some(true));
        assert_eq!(parse_flag("Off"), Some(false));
        assert_eq!(parse_flag("yes"), None);
        assert_eq!(parse_flag("1"), None);
        assert_eq!(parse_flag(""), None);
    }

    #[test]
    fn enum_matches_any_case() {
        let names = [("on", 1), ("copy", 2)];
        assert_eq!(parse_enum("COPY", &names), Some(2));
        assert_eq!(parse_enum("cop", &names), None);
    }
}
