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

/// Last '/'-separated component.
pub fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

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
