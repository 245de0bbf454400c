//! Which stream names can name files, and the name part of a path.

/// Longest stream name accepted for file names.
pub const MAX_NAME_LEN: usize = 512;

/// Whether `name` can be used for file names under `hls_path` or `dash_path`: not empty, no
/// `..`, no absolute path or empty component, no control characters or backslashes.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.contains("..")
        && !name.starts_with('/')
        && !name.split('/').any(|c| c.is_empty() || c == ".")
        && !name.chars().any(|c| c.is_control() || c == '\\')
}

/// Percent-encodes a file name (or '/'-separated path) for a playlist or manifest URI: RFC
/// 3986 unreserved characters, sub-delims but `$` (it opens a `SegmentTemplate` identifier in
/// an MPD), `@` and `/` stay; so does nothing else. `:` is encoded too: a relative URI whose
/// first segment holds one reads as a scheme (`cam:1-0.ts` would be scheme `cam`).
pub fn uri_escape(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!&'()*+,;=@".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Last '/'-separated component.
pub fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_escape_keeps_names_one_relative_uri() {
        assert_eq!(uri_escape("cam:1-0.ts"), "cam%3A1-0.ts");
        assert_eq!(uri_escape("a b$c#?/d"), "a%20b%24c%23%3F/d");
        assert_eq!(uri_escape("é"), "%C3%A9");
        assert_eq!(uri_escape("a-b_c.d~e!f+g=h,i@j"), "a-b_c.d~e!f+g=h,i@j");
    }

    #[test]
    fn names_that_could_leave_the_output_directory_are_refused() {
        for ok in ["cam", "a/b", "a.b-c_d", "x".repeat(MAX_NAME_LEN).as_str()] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "..",
            "a/../b",
            "/abs",
            "a//b",
            "a/",
            "./a",
            "a/./b",
            "a\\b",
            "a\nb",
            "x".repeat(MAX_NAME_LEN + 1).as_str(),
        ] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn basename_is_the_last_component() {
        assert_eq!(basename("a/b/c"), "c");
        assert_eq!(basename("c"), "c");
        assert_eq!(basename("a/"), "");
    }
}
