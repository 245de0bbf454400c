//! The little AMF0 a player needs: encoding `connect`/`createStream`/`play`, and decoding the
//! server's answers (`_result`, `_error`, `onStatus`) far enough to read names, numbers and
//! the `code` of a status object. Unknown types end decoding (the rest is not needed).

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Bool(bool),
    Str(String),
    Object(Vec<(String, Value)>),
    Null,
}

impl Value {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(props) => props.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

pub fn put_number(out: &mut Vec<u8>, n: f64) {
    out.push(0x00);
    out.extend_from_slice(&n.to_be_bytes());
}

pub fn put_bool(out: &mut Vec<u8>, b: bool) {
    out.push(0x01);
    out.push(b as u8);
}

pub fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.push(0x02);
    out.extend_from_slice(&(b.len().min(0xFFFF) as u16).to_be_bytes());
    out.extend_from_slice(&b[..b.len().min(0xFFFF)]);
}

pub fn put_null(out: &mut Vec<u8>) {
    out.push(0x05);
}

/// An object of the given properties (only the value kinds `connect` uses).
pub fn put_object(out: &mut Vec<u8>, props: &[(&str, Value)]) {
    out.push(0x03);
    for (k, v) in props {
        put_key(out, k);
        put_value(out, v);
    }
    out.extend_from_slice(&[0, 0, 0x09]);
}

fn put_key(out: &mut Vec<u8>, k: &str) {
    out.extend_from_slice(&(k.len() as u16).to_be_bytes());
    out.extend_from_slice(k.as_bytes());
}

pub fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Number(n) => put_number(out, *n),
        Value::Bool(b) => put_bool(out, *b),
        Value::Str(s) => put_str(out, s),
        Value::Null => put_null(out),
        Value::Object(props) => {
            out.push(0x03);
            for (k, v) in props {
                put_key(out, k);
                put_value(out, v);
            }
            out.extend_from_slice(&[0, 0, 0x09]);
        }
    }
}

/// Decodes values until the end of `buf` or the first value it does not understand.
pub fn decode_all(buf: &[u8]) -> Vec<Value> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        match decode(buf, &mut pos, 0) {
            Some(v) => out.push(v),
            None => break,
        }
    }
    out
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> Option<&'a [u8]> {
    let s = buf.get(*pos..pos.checked_add(n)?)?;
    *pos += n;
    Some(s)
}

fn u16_at(buf: &[u8], pos: &mut usize) -> Option<usize> {
    let b = take(buf, pos, 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]) as usize)
}

fn u32_at(buf: &[u8], pos: &mut usize) -> Option<usize> {
    let b = take(buf, pos, 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

fn props(buf: &[u8], pos: &mut usize, depth: usize) -> Option<Vec<(String, Value)>> {
    let mut props = Vec::new();
    loop {
        let klen = u16_at(buf, pos)?;
        let key = String::from_utf8_lossy(take(buf, pos, klen)?).into_owned();
        if klen == 0 && buf.get(*pos) == Some(&0x09) {
            *pos += 1;
            return Some(props);
        }
        let v = decode(buf, pos, depth + 1)?;
        props.push((key, v));
    }
}

fn decode(buf: &[u8], pos: &mut usize, depth: usize) -> Option<Value> {
    if depth > 16 {
        return None;
    }
    let marker = *buf.get(*pos)?;
    *pos += 1;
    Some(match marker {
        0x00 => {
            let b = take(buf, pos, 8)?;
            Value::Number(f64::from_be_bytes(b.try_into().ok()?))
        }
        0x01 => Value::Bool(*take(buf, pos, 1)?.first()? != 0),
        0x02 => {
            let n = u16_at(buf, pos)?;
            Value::Str(String::from_utf8_lossy(take(buf, pos, n)?).into_owned())
        }
        0x0C => {
            let n = u32_at(buf, pos)?;
            Value::Str(String::from_utf8_lossy(take(buf, pos, n)?).into_owned())
        }
        0x03 => Value::Object(props(buf, pos, depth)?),
        0x08 => {
            take(buf, pos, 4)?; // ECMA array: count hint, then properties like an object
            Value::Object(props(buf, pos, depth)?)
        }
        0x05 | 0x06 => Value::Null,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut b = Vec::new();
        put_str(&mut b, "_result");
        put_number(&mut b, 2.0);
        put_null(&mut b);
        put_object(
            &mut b,
            &[
                ("code", Value::Str("NetStream.Play.Start".into())),
                ("n", Value::Number(1.5)),
                ("ok", Value::Bool(true)),
            ],
        );
        let v = decode_all(&b);
        assert_eq!(v.len(), 4);
        assert_eq!(v[0].as_str(), Some("_result"));
        assert_eq!(v[1].as_f64(), Some(2.0));
        assert_eq!(v[2], Value::Null);
        assert_eq!(
            v[3].get("code").and_then(Value::as_str),
            Some("NetStream.Play.Start")
        );
    }
}
