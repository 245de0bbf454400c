//! HTTP-FLV (`flv_live on;`, nginx-http-flv-module's URL form): which stream a request asks
//! for, and the bytes around the tags. The tags themselves are the live fan-out's frames
//! framed for FLV ([`super::frame::Frame::to_flv`]), sharing every payload with the RTMP
//! players.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use crate::control::{percent_decode, query_arg};

/// Longest `app` or `stream` value taken (decoded), as the C modules' name buffers.
pub const MAX_NAME_LEN: usize = 1024;

/// The end of a chunked response.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// What `GET /live?app=<app>&stream=<name>[&port=<rtmp port>]` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvRequest {
    pub app: String,
    pub stream: String,
    /// The RTMP port whose `server{}` serves the application; None: the first server.
    pub port: Option<u16>,
}

/// Why a request's arguments were refused (400).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FlvArgError {
    #[error("the \"{0}\" argument is missing")]
    Missing(&'static str),
    #[error("the \"{0}\" argument is empty")]
    Empty(&'static str),
    #[error("the \"{0}\" argument has bad %-encoding")]
    Encoding(&'static str),
    #[error("the \"{0}\" argument is longer than {MAX_NAME_LEN} bytes")]
    TooLong(&'static str),
    #[error("\"port\" is not a port number: {0:?}")]
    Port(String),
}

/// Reads `app`, `stream` and `port` from a query string (keys as nginx's `ngx_http_arg`
/// matches them, values %-decoded); every other argument is left for callbacks (stream keys).
pub fn parse_request(args: &str) -> Result<FlvRequest, FlvArgError> {
    let app = required(args, "app")?;
    let stream = required(args, "stream")?;
    let port = match query_arg(args, "port") {
        None => None,
        Some(raw) => Some(
            raw.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| FlvArgError::Port(raw.chars().take(16).collect()))?,
        ),
    };
    Ok(FlvRequest { app, stream, port })
}

fn required(args: &str, key: &'static str) -> Result<String, FlvArgError> {
    let raw = query_arg(args, key).ok_or(FlvArgError::Missing(key))?;
    if raw.len() > MAX_NAME_LEN.saturating_mul(3) {
        return Err(FlvArgError::TooLong(key));
    }
    let v = percent_decode(raw).ok_or(FlvArgError::Encoding(key))?;
    if v.is_empty() {
        return Err(FlvArgError::Empty(key));
    }
    if v.len() > MAX_NAME_LEN {
        return Err(FlvArgError::TooLong(key));
    }
    Ok(v)
}

/// The FLV file header and PreviousTagSize0 (13 bytes) saying which kinds of tags follow,
/// as one HTTP chunk when `chunked`.
pub fn file_header(audio: bool, video: bool, chunked: bool) -> Bytes {
    let flags = u8::from(audio) << 2 | u8::from(video);
    let header: [u8; 13] = [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0];
    let mut out = BytesMut::with_capacity(20);
    if chunked {
        out.put_slice(b"d\r\n");
    }
    out.put_slice(&header);
    if chunked {
        out.put_slice(b"\r\n");
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::frame::{Frame, FrameKind};
    use std::io::IoSlice;

    #[test]
    fn the_url_form_of_nginx_http_flv_module_is_read() {
        let r = parse_request("app=live&stream=cam1").unwrap();
        assert_eq!(
            r,
            FlvRequest {
                app: "live".into(),
                stream: "cam1".into(),
                port: None
            }
        );
        let r = parse_request("port=1936&APP=live&stream=a%20b&key=secret&srv=0").unwrap();
        assert_eq!(r.port, Some(1936));
        assert_eq!(r.app, "live");
        assert_eq!(r.stream, "a b");
    }

    #[test]
    fn missing_empty_or_malformed_arguments_are_refused() {
        assert_eq!(parse_request("stream=x"), Err(FlvArgError::Missing("app")));
        assert_eq!(
            parse_request("app=live"),
            Err(FlvArgError::Missing("stream"))
        );
        assert_eq!(
            parse_request("app=live&stream="),
            Err(FlvArgError::Empty("stream"))
        );
        assert_eq!(
            parse_request("app=live&stream=%zz"),
            Err(FlvArgError::Encoding("stream"))
        );
        assert!(matches!(
            parse_request("app=live&stream=x&port=99999"),
            Err(FlvArgError::Port(_))
        ));
        assert!(matches!(
            parse_request("app=live&stream=x&port=0"),
            Err(FlvArgError::Port(_))
        ));
        let long = "a".repeat(MAX_NAME_LEN + 1);
        assert_eq!(
            parse_request(&format!("app=live&stream={long}")),
            Err(FlvArgError::TooLong("stream"))
        );
        assert_eq!(parse_request(""), Err(FlvArgError::Missing("app")));
    }

    #[test]
    fn file_header_flags_and_chunk_framing() {
        let h = file_header(true, true, false);
        assert_eq!(&h[..], b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
        assert_eq!(file_header(false, true, false)[4], 1);
        assert_eq!(file_header(true, false, false)[4], 4);
        let c = file_header(true, true, true);
        assert_eq!(&c[..3], b"d\r\n");
        assert_eq!(&c[3..16], &h[..]);
        assert_eq!(&c[16..], b"\r\n");
    }

    fn bytes(f: &Frame) -> Vec<u8> {
        let mut slices = [IoSlice::new(&[]); 8];
        let n = f.io_slices_from(0, &mut slices);
        slices[..n].iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn an_flv_tag_shares_the_payload_and_frames_it() {
        let mut scratch = BytesMut::new();
        let payload = Bytes::from(vec![0x17u8; 300]);
        let rtmp = Frame::encode(FrameKind::Video, 0x0123_4567, &payload, 128, &mut scratch);
        let flv = rtmp.to_flv(false, &mut scratch);
        let wire = bytes(&flv);
        assert_eq!(flv.len(), 11 + 300 + 4);
        assert_eq!(wire.len(), flv.len());
        // Type 9, size 300, timestamp low 24 bits then the high byte, stream id 0.
        assert_eq!(
            &wire[..11],
            &[9, 0, 0x01, 0x2c, 0x23, 0x45, 0x67, 0x01, 0, 0, 0]
        );
        assert_eq!(&wire[11..311], &payload[..]);
        assert_eq!(&wire[311..], &311u32.to_be_bytes());
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(flv.io_slices_from(0, &mut slices), 3);
        assert_eq!(
            slices[1].as_ptr(),
            payload.as_ptr(),
            "the payload is not copied"
        );
        // From any offset, the rest (partial writes).
        for off in [0, 1, 11, 12, 310, 311, 314] {
            let n = flv.io_slices_from(off, &mut slices);
            let got: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
            assert_eq!(got, &wire[off..], "@{off}");
            assert_eq!(&flv.bytes_from(off)[..], &wire[off..]);
        }
        assert_eq!(flv.keyframe, rtmp.keyframe);
        assert_eq!(flv.kind, FrameKind::Video);
    }

    #[test]
    fn a_chunked_flv_tag_is_one_http_chunk() {
        let mut scratch = BytesMut::new();
        let payload = Bytes::from_static(&[0xaf, 1, 2, 3]);
        let rtmp = Frame::encode(FrameKind::Audio, 40, &payload, 4096, &mut scratch);
        let flv = rtmp.to_flv(true, &mut scratch);
        let wire = bytes(&flv);
        // 11 + 4 + 4 = 19 = 0x13 bytes of chunk data.
        assert!(wire.starts_with(b"13\r\n\x08\x00\x00\x04\x00\x00\x28\x00"));
        assert!(wire.ends_with(b"\x00\x00\x00\x0f\r\n"));
        assert_eq!(wire.len(), 4 + 19 + 2);
        assert_eq!(flv.len(), wire.len());
        let meta = Frame::encode(FrameKind::Data, 0, &payload, 4096, &mut scratch);
        assert_eq!(bytes(&meta.to_flv(false, &mut scratch))[0], 18);
        // Control frames (already framed for this player) pass unchanged.
        let c = Frame::control(Bytes::from_static(b"xyz"));
        assert_eq!(bytes(&c.to_flv(true, &mut scratch)), b"xyz");
        // RTMP framing is unchanged by the trailer support.
        assert_eq!(rtmp.len(), 12 + 4);
    }
}
