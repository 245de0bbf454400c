//! `ssl_certificate` and `ssl_certificate_key` file names with variables, as nginx's `stream`
//! module has them: `ssl_certificate certs/$ssl_server_name.crt;` loads, at each TLS
//! handshake, the certificate named after the SNI name the client sent. The only variable is
//! `$ssl_server_name` (`${ssl_server_name}`): the others nginx's stream module offers there
//! (addresses, ports) pick a certificate by listener, which plain `ssl_certificate` in each
//! `server{}` already does.
//!
//! The SNI name comes from the client, so it names a file only once it is a plain host name
//! ([`server_name_for_path`]): lowercase letters, digits, `-`, `_` and dots between labels, so
//! no `/`, no `..` and no hidden file can ever be reached through it.

/// The longest host name DNS allows.
pub const MAX_SERVER_NAME: usize = 253;

const VARIABLE: &str = "ssl_server_name";

/// One piece of a file name template.
#[derive(Clone, PartialEq, Eq, Debug)]
enum Piece {
    Text(String),
    ServerName,
}

/// A certificate or key file name, with `$ssl_server_name` where the SNI name goes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CertPath {
    pieces: Vec<Piece>,
}

impl CertPath {
    /// Reads a file name; `Err` names a variable other than `$ssl_server_name` (or a `$`
    /// without a name, or an unclosed `${`).
    pub fn parse(path: &str) -> Result<CertPath, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = path;
        while let Some(at) = rest.find('$') {
            text.push_str(rest.get(..at).unwrap_or_default());
            let after = rest.get(at + 1..).unwrap_or_default();
            let (name, used) = if let Some(braced) = after.strip_prefix('{') {
                let end = braced.find('}').ok_or_else(|| {
                    format!("the variable name in \"{path}\" has no closing \"}}\"")
                })?;
                (braced.get(..end).unwrap_or_default(), end + 2)
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (after.get(..end).unwrap_or_default(), end)
            };
            if name != VARIABLE {
                return Err(if name.is_empty() {
                    format!("a \"$\" without a variable name in \"{path}\"")
                } else {
                    format!(
                        "unknown variable \"${name}\" in \"{path}\": only \"${VARIABLE}\" can \
                         name a certificate file"
                    )
                });
            }
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(Piece::ServerName);
            rest = after.get(used..).unwrap_or_default();
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(CertPath { pieces })
    }

    /// Whether the name depends on the handshake (then the file is read at each handshake).
    pub fn has_variables(&self) -> bool {
        self.pieces.contains(&Piece::ServerName)
    }

    /// The file name for a client that sent `server_name` (already checked with
    /// [`server_name_for_path`]; empty when it sent none, as nginx expands it).
    pub fn expand(&self, server_name: &str) -> String {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.as_str(),
                Piece::ServerName => server_name,
            })
            .collect()
    }
}

/// The SNI name `raw` as it may appear in a file name: lowercased, or `None` when it is not a
/// plain host name (empty labels, `..`, a leading dot, `/`, `\`, control or non-ASCII bytes,
/// longer than [`MAX_SERVER_NAME`]).
pub fn server_name_for_path(raw: &[u8]) -> Option<String> {
    if raw.is_empty() || raw.len() > MAX_SERVER_NAME {
        return None;
    }
    let name = std::str::from_utf8(raw).ok()?.to_ascii_lowercase();
    let plain = name.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    plain.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_without_variables_is_itself() {
        let p = CertPath::parse("/etc/ssl/rtmp.pem").unwrap();
        assert!(!p.has_variables());
        assert_eq!(p.expand("ignored.example"), "/etc/ssl/rtmp.pem");
    }

    #[test]
    fn the_server_name_goes_where_the_variable_is_in_both_spellings() {
        for text in ["certs/$ssl_server_name.crt", "certs/${ssl_server_name}.crt"] {
            let p = CertPath::parse(text).unwrap();
            assert!(p.has_variables());
            assert_eq!(p.expand("a.example"), "certs/a.example.crt");
            assert_eq!(p.expand(""), "certs/.crt");
        }
        let p = CertPath::parse("${ssl_server_name}/${ssl_server_name}-key.pem").unwrap();
        assert_eq!(p.expand("b.example"), "b.example/b.example-key.pem");
    }

    #[test]
    fn other_variables_are_refused_with_their_name() {
        let e = CertPath::parse("certs/$server_addr.crt").unwrap_err();
        assert!(e.contains("unknown variable \"$server_addr\""), "{e}");
        assert!(CertPath::parse("certs/$.crt")
            .unwrap_err()
            .contains("without a variable"));
        assert!(CertPath::parse("certs/${ssl_server_name.crt")
            .unwrap_err()
            .contains("closing"));
        // A longer name is another variable, not $ssl_server_name followed by text.
        assert!(CertPath::parse("certs/$ssl_server_name_x.crt").is_err());
    }

    #[test]
    fn only_plain_host_names_can_name_a_file() {
        assert_eq!(
            server_name_for_path(b"Live.Example.COM").as_deref(),
            Some("live.example.com")
        );
        assert_eq!(
            server_name_for_path(b"a-b_c.example").as_deref(),
            Some("a-b_c.example")
        );
        for hostile in [
            &b""[..],
            b"..",
            b"../../etc/passwd",
            b"a/b",
            b"a\\b",
            b".hidden",
            b"a..b",
            b"trailing.",
            b"tab\there",
            b"nul\0x",
            "é.example".as_bytes(),
        ] {
            assert_eq!(server_name_for_path(hostile), None, "{hostile:?}");
        }
        assert!(server_name_for_path(&[b'a'; MAX_SERVER_NAME]).is_some());
        assert!(server_name_for_path(&[b'a'; MAX_SERVER_NAME + 1]).is_none());
    }
}
