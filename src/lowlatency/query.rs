//! The `_HLS_` query arguments of a playlist request (RFC 8216bis 6.2.5): `_HLS_msn=<M>`,
//! `_HLS_part=<N>` (only with `_HLS_msn`) and `_HLS_skip=YES|v2`.

/// What the client asks of a delta update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// `_HLS_skip=YES`: skip old media segments.
    Segments,
    /// `_HLS_skip=v2`: also skip old `EXT-X-DATERANGE` tags (if the server allows it).
    SegmentsAndDateRanges,
}

/// The `_HLS_` arguments of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LlQuery {
    pub msn: Option<u64>,
    pub part: Option<u64>,
    pub skip: Option<Skip>,
}

impl LlQuery {
    /// Whether the request has any `_HLS_` argument this handler acts on.
    pub fn is_empty(&self) -> bool {
        self.msn.is_none() && self.part.is_none() && self.skip.is_none()
    }
}

/// Why a query is refused (400).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("_HLS_part without _HLS_msn")]
    PartWithoutMsn,
    #[error("invalid value {1:?} of {0}")]
    Invalid(&'static str, String),
}

fn number(key: &'static str, v: &str) -> Result<u64, QueryError> {
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QueryError::Invalid(key, v.to_owned()));
    }
    v.parse()
        .map_err(|_| QueryError::Invalid(key, v.to_owned()))
}

/// Parses the query string (without `?`). Other arguments are ignored; a repeated `_HLS_`
/// argument takes its last value.
pub fn parse_query(args: &str) -> Result<LlQuery, QueryError> {
    let mut q = LlQuery::default();
    if !args.contains("_HLS_") {
        return Ok(q);
    }
    for pair in args.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "_HLS_msn" => q.msn = Some(number("_HLS_msn", v)?),
            "_HLS_part" => q.part = Some(number("_HLS_part", v)?),
            "_HLS_skip" => {
                q.skip = Some(match v {
                    "YES" => Skip::Segments,
                    "v2" => Skip::SegmentsAndDateRanges,
                    _ => return Err(QueryError::Invalid("_HLS_skip", v.to_owned())),
                })
            }
            _ => {}
        }
    }
    if q.part.is_some() && q.msn.is_none() {
        return Err(QueryError::PartWithoutMsn);
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_msn_part_and_skip() {
        assert_eq!(parse_query("").unwrap(), LlQuery::default());
        assert!(parse_query("v=1&x=_HLS").unwrap().is_empty());
        assert_eq!(
            parse_query("_HLS_msn=12&_HLS_part=3&_HLS_skip=YES&cb=1").unwrap(),
            LlQuery {
                msn: Some(12),
                part: Some(3),
                skip: Some(Skip::Segments)
            }
        );
        assert_eq!(
            parse_query("_HLS_skip=v2").unwrap(),
            LlQuery {
                skip: Some(Skip::SegmentsAndDateRanges),
                ..LlQuery::default()
            }
        );
        assert_eq!(parse_query("_HLS_msn=1&_HLS_msn=2").unwrap().msn, Some(2));
    }

    #[test]
    fn refuses_bad_values_and_part_without_msn() {
        assert_eq!(
            parse_query("_HLS_part=1").unwrap_err(),
            QueryError::PartWithoutMsn
        );
        for bad in [
            "_HLS_msn=",
            "_HLS_msn=-1",
            "_HLS_msn=1x",
            "_HLS_msn",
            "_HLS_msn=99999999999999999999",
            "_HLS_msn=1&_HLS_part=+2",
            "_HLS_skip=yes",
            "_HLS_skip=NO",
        ] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
    }
}
