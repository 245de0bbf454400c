//! The RTMP handshake (C0 C1 C2 / S0 S1 S2), server and client side, pure and incremental.
//!
//! Two flavours exist on the wire:
//! - the *plain* handshake of the Adobe RTMP 1.0 specification (section 5.2): S1 is our time,
//!   four zero bytes and random data, S2 echoes C1;
//! - the *digest* ("complex", Flash Player 9+) handshake that ffmpeg, OBS (librtmp) and Flash
//!   clients send: C1 carries an HMAC-SHA256 digest at an offset derived from its own bytes, and a
//!   client such as ffmpeg refuses a server whose S1/S2 do not carry the matching digests.
//!
//! The server answers a digest C1 with a digest S1/S2 and anything else with the plain handshake
//! (never failing merely because there is no digest). C2 is read but not verified: Flash players
//! are known to send C2s that fail verification, and neither the C module nor ffmpeg's server
//! checks it.
//!
//! The key constants are public protocol constants. They appear byte for byte in ffmpeg
//! (`libavformat/rtmpproto.c`: `rtmp_player_key`, `rtmp_server_key`), librtmp
//! (`librtmp/handshake.h`: `GenuineFPKey`, `GenuineFMSKey`), the C nginx-rtmp-module
//! (`ngx_rtmp_handshake.c`: `ngx_rtmp_client_key`, `ngx_rtmp_server_key`) and the clean-room
//! description at <https://www.cs.cmu.edu/~dst/Adobe/Gallery/RTMPE.txt>.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Size of C1, C2, S1 and S2.
pub const HANDSHAKE_SIZE: usize = 1536;
/// The only C0/S0 version we speak: plain RTMP (6 would be RTMPE, which is not supported).
pub const RTMP_VERSION: u8 = 3;

const DIGEST_LEN: usize = 32;
/// Where the HMAC of C2/S2 sits: the last 32 bytes.
const SIGNATURE_START: usize = HANDSHAKE_SIZE - DIGEST_LEN;

/// The 32 bytes appended to both key prefixes to form the full keys.
const KEY_SUFFIX: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];
const FP_KEY_PREFIX: &[u8; 30] = b"Genuine Adobe Flash Player 001";
const FMS_KEY_PREFIX: &[u8; 36] = b"Genuine Adobe Flash Media Server 001";
const FP_KEY_LEN: usize = FP_KEY_PREFIX.len() + KEY_SUFFIX.len();
const FMS_KEY_LEN: usize = FMS_KEY_PREFIX.len() + KEY_SUFFIX.len();

/// "Genuine Adobe Flash Player 001" + suffix (62 bytes): the first 30 bytes key the client's C1
/// digest, all 62 key the C2 signature.
const GENUINE_FP_KEY: [u8; FP_KEY_LEN] = concat_key(FP_KEY_PREFIX);
/// "Genuine Adobe Flash Media Server 001" + suffix (68 bytes): the first 36 bytes key the
/// server's S1 digest, all 68 key the S2 signature.
const GENUINE_FMS_KEY: [u8; FMS_KEY_LEN] = concat_key(FMS_KEY_PREFIX);

/// Version field of a digest S1 (the C module sends 13.14.10.13, as FMS does).
const SERVER_VERSION: [u8; 4] = [0x0D, 0x0E, 0x0A, 0x0D];
/// Version field of a digest C1 (Flash Player 9.0.124.2, as ffmpeg sends). A zero version would
/// tell many servers to skip the digest.
const CLIENT_VERSION: [u8; 4] = [0x09, 0x00, 0x7C, 0x02];

/// `prefix` followed by [`KEY_SUFFIX`]. Only evaluated in constants, so a length mismatch
/// (`N != P + 32`) is a compile error, never a runtime panic.
const fn concat_key<const P: usize, const N: usize>(prefix: &[u8; P]) -> [u8; N] {
    let mut key = [0u8; N];
    let (head, tail) = key.split_at_mut(P);
    head.copy_from_slice(prefix);
    tail.copy_from_slice(&KEY_SUFFIX);
    key
}

/// The first 8 bytes of a C1/S1: a big-endian time, then a version.
fn packet_header(time: u32, version: [u8; 4]) -> [u8; 8] {
    let [t0, t1, t2, t3] = time.to_be_bytes();
    let [v0, v1, v2, v3] = version;
    [t0, t1, t2, t3, v0, v1, v2, v3]
}

/// Errors of the handshake layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("unsupported RTMP version byte {0} in C0/S0 (only 3 is supported){hint}", hint = version_hint(*.0))]
    UnsupportedVersion(u8),
}

fn version_hint(v: u8) -> &'static str {
    match v {
        6 | 8 | 9 => ": RTMPE (encrypted RTMP) is not supported",
        0x16 => ": this looks like a TLS handshake (rtmps is not served on this port)",
        b'G' | b'P' | b'H' | b'O' | b'D' => ": this looks like an HTTP request",
        _ => "",
    }
}

/// Progress of a handshake after a [`ServerHandshake::feed`] or [`ClientHandshake::feed`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeStatus {
    /// More bytes are needed; `consumed` bytes of the input were used (always all of them).
    InProgress { consumed: usize },
    /// The handshake is complete. Only `consumed` bytes of the input belonged to it: the rest
    /// is the start of the chunk stream.
    Done { consumed: usize },
}

/// Which of the two digest layouts a packet uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestScheme {
    /// Offset bytes at 8..12, digest in 12..772 (ffmpeg's and librtmp's clients use this).
    Scheme0,
    /// Offset bytes at 772..776, digest in 776..1536.
    Scheme1,
}

impl DigestScheme {
    /// Offset of the 32-byte digest: (sum of the four offset bytes) % 728 + base + 4.
    /// At most 727 + 776 = 1503, so the digest always ends within the packet.
    fn digest_offset(self, packet: &[u8; HANDSHAKE_SIZE]) -> usize {
        let base = match self {
            DigestScheme::Scheme0 => 8,
            DigestScheme::Scheme1 => 772,
        };
        let sum: usize = packet
            .iter()
            .skip(base)
            .take(4)
            .map(|&b| usize::from(b))
            .sum();
        sum % 728 + base + 4
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail; the fallback (an
    // all-zero digest that never validates) only keeps this panic-free.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; DIGEST_LEN];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The digest of `packet` for the digest at `offset`: HMAC over every byte except the digest.
/// `None` if the digest would not fit, which [`DigestScheme::digest_offset`] rules out.
fn packet_digest(
    packet: &[u8; HANDSHAKE_SIZE],
    offset: usize,
    key: &[u8],
) -> Option<[u8; DIGEST_LEN]> {
    let (before, rest) = packet.split_at_checked(offset)?;
    let after = rest.get(DIGEST_LEN..)?;
    Some(hmac_sha256(key, &[before, after]))
}

/// Finds a valid digest in `packet` (scheme 0 first, then 1), returning it and its scheme.
fn find_digest(
    packet: &[u8; HANDSHAKE_SIZE],
    key: &[u8],
) -> Option<(DigestScheme, [u8; DIGEST_LEN])> {
    [DigestScheme::Scheme0, DigestScheme::Scheme1]
        .into_iter()
        .find_map(|scheme| {
            let offset = scheme.digest_offset(packet);
            let digest = packet_digest(packet, offset, key)?;
            let stored = packet.get(offset..offset + DIGEST_LEN)?;
            (*stored == digest).then_some((scheme, digest))
        })
}

/// Writes a digest into `packet` (whose other bytes are final) and returns it.
fn write_digest(
    packet: &mut [u8; HANDSHAKE_SIZE],
    scheme: DigestScheme,
    key: &[u8],
) -> [u8; DIGEST_LEN] {
    let offset = scheme.digest_offset(packet);
    // The digest always fits (see `digest_offset`); the fallback, an unwritten packet and an
    // all-zero digest that never validates, only keeps this panic-free.
    let Some(digest) = packet_digest(packet, offset, key) else {
        return [0; DIGEST_LEN];
    };
    if let Some(slot) = packet.get_mut(offset..offset + DIGEST_LEN) {
        slot.copy_from_slice(&digest);
    }
    digest
}

/// Signs a C2/S2 whose first 1504 bytes are random: the last 32 bytes become
/// HMAC(key = HMAC(full_key, peer_digest), data = packet[..1504]).
fn sign_response(packet: &mut [u8; HANDSHAKE_SIZE], full_key: &[u8], peer_digest: &[u8]) {
    let signature = response_signature(packet, full_key, peer_digest);
    if let Some((_, slot)) = packet.split_last_chunk_mut::<DIGEST_LEN>() {
        *slot = signature;
    }
}

fn response_signature(
    packet: &[u8; HANDSHAKE_SIZE],
    full_key: &[u8],
    peer_digest: &[u8],
) -> [u8; DIGEST_LEN] {
    let key = hmac_sha256(full_key, &[peer_digest]);
    hmac_sha256(&key, &[unsigned_part(packet)])
}

/// The bytes of a C2/S2 before its signature (`SIGNATURE_START` < `HANDSHAKE_SIZE`, so the
/// empty fallback is never taken).
fn unsigned_part(packet: &[u8; HANDSHAKE_SIZE]) -> &[u8] {
    packet
        .split_at_checked(SIGNATURE_START)
        .map_or(&[], |(head, _)| head)
}

/// Mutable [`unsigned_part`].
fn unsigned_part_mut(packet: &mut [u8; HANDSHAKE_SIZE]) -> &mut [u8] {
    match packet.split_at_mut_checked(SIGNATURE_START) {
        Some((head, _)) => head,
        None => &mut [],
    }
}

/// Copies up to `HANDSHAKE_SIZE - *have` bytes of `input` into `packet`; returns bytes used.
fn fill(packet: &mut [u8; HANDSHAKE_SIZE], have: &mut usize, input: &[u8]) -> usize {
    let want = HANDSHAKE_SIZE.saturating_sub(*have).min(input.len());
    if let (Some(dst), Some(src)) = (packet.get_mut(*have..*have + want), input.get(..want)) {
        dst.copy_from_slice(src);
    }
    *have += want;
    want
}

fn check_version(byte: u8) -> Result<(), HandshakeError> {
    if byte == RTMP_VERSION {
        Ok(())
    } else {
        Err(HandshakeError::UnsupportedVersion(byte))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    C0,
    C1,
    C2,
    Done,
}

/// Server side: reads C0 C1, answers S0 S1 S2 at once, then reads (and discards) C2.
pub struct ServerHandshake {
    state: ServerState,
    /// C1 while it arrives; S1 and S2 are built in place once it is complete.
    c1: Box<[u8; HANDSHAKE_SIZE]>,
    have: usize,
    /// S1 prepared at construction: time, zero version, random.
    s1: Box<[u8; HANDSHAKE_SIZE]>,
    /// Random bytes for a digest S2.
    s2: Box<[u8; HANDSHAKE_SIZE]>,
    scheme: Option<DigestScheme>,
}

impl ServerHandshake {
    /// `epoch_ms`: our uptime for S1's time field. `random`: fills bytes (the glue passes a real
    /// RNG; tests a deterministic one). Pure: no OS randomness here.
    pub fn new(epoch_ms: u32, random: &mut dyn FnMut(&mut [u8])) -> Self {
        let mut s1 = Box::new([0u8; HANDSHAKE_SIZE]);
        if let Some((header, rest)) = s1.split_first_chunk_mut::<8>() {
            *header = packet_header(epoch_ms, [0; 4]);
            random(rest);
        }
        let mut s2 = Box::new([0u8; HANDSHAKE_SIZE]);
        random(unsigned_part_mut(&mut s2));
        ServerHandshake {
            state: ServerState::C0,
            c1: Box::new([0u8; HANDSHAKE_SIZE]),
            have: 0,
            s1,
            s2,
            scheme: None,
        }
    }

    /// Consumes bytes from `input`, appends bytes to send to `out`. S0 S1 S2 are appended as
    /// soon as C1 is complete; `Done.consumed` never includes bytes after C2.
    pub fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<HandshakeStatus, HandshakeError> {
        let mut pos = 0;
        loop {
            let rest = input.get(pos..).unwrap_or_default();
            match self.state {
                ServerState::C0 => {
                    let Some(&version) = rest.first() else {
                        return Ok(HandshakeStatus::InProgress { consumed: pos });
                    };
                    check_version(version)?;
                    pos += 1;
                    self.state = ServerState::C1;
                }
                ServerState::C1 => {
                    pos += fill(&mut self.c1, &mut self.have, rest);
                    if self.have < HANDSHAKE_SIZE {
                        return Ok(HandshakeStatus::InProgress { consumed: pos });
                    }
                    self.respond(out);
                    self.have = 0;
                    self.state = ServerState::C2;
                }
                ServerState::C2 => {
                    let want = (HANDSHAKE_SIZE - self.have).min(rest.len());
                    pos += want;
                    self.have += want;
                    if self.have < HANDSHAKE_SIZE {
                        return Ok(HandshakeStatus::InProgress { consumed: pos });
                    }
                    self.state = ServerState::Done;
                    return Ok(HandshakeStatus::Done { consumed: pos });
                }
                ServerState::Done => return Ok(HandshakeStatus::Done { consumed: 0 }),
            }
        }
    }

    /// The digest scheme the client used, or `None` for a plain handshake (known after C1).
    pub fn digest_scheme(&self) -> Option<DigestScheme> {
        self.scheme
    }

    fn respond(&mut self, out: &mut Vec<u8>) {
        out.reserve(1 + 2 * HANDSHAKE_SIZE);
        out.push(RTMP_VERSION);
        // The digest keys are the key prefixes (the first bytes of the full keys).
        match find_digest(&self.c1, FP_KEY_PREFIX) {
            Some((scheme, client_digest)) => {
                self.scheme = Some(scheme);
                if let Some([_, _, _, _, version @ ..]) = self.s1.first_chunk_mut::<8>() {
                    *version = SERVER_VERSION;
                }
                write_digest(&mut self.s1, scheme, FMS_KEY_PREFIX);
                sign_response(&mut self.s2, &GENUINE_FMS_KEY, &client_digest);
                out.extend_from_slice(&self.s1[..]);
                out.extend_from_slice(&self.s2[..]);
            }
            None => {
                out.extend_from_slice(&self.s1[..]);
                out.extend_from_slice(&self.c1[..]);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    S0,
    S1,
    S2,
    Done,
}

/// Client side: sends C0 C1 with a scheme-0 digest, reads S0 S1, sends C2 (signed when S1 has
/// a valid server digest, an echo of S1 otherwise), then reads S2.
pub struct ClientHandshake {
    state: ClientState,
    started: bool,
    c1: Box<[u8; HANDSHAKE_SIZE]>,
    c1_digest: [u8; DIGEST_LEN],
    /// S1 while it arrives, then S2 (S1 is no longer needed once C2 is built).
    incoming: Box<[u8; HANDSHAKE_SIZE]>,
    have: usize,
    /// Random bytes for a digest C2.
    c2: Box<[u8; HANDSHAKE_SIZE]>,
    server_digest: bool,
    s2_verified: bool,
}

impl ClientHandshake {
    /// `epoch_ms`: our uptime for C1's time field. `random`: fills bytes.
    pub fn new(epoch_ms: u32, random: &mut dyn FnMut(&mut [u8])) -> Self {
        let mut c1 = Box::new([0u8; HANDSHAKE_SIZE]);
        if let Some((header, rest)) = c1.split_first_chunk_mut::<8>() {
            *header = packet_header(epoch_ms, CLIENT_VERSION);
            random(rest);
        }
        let c1_digest = write_digest(&mut c1, DigestScheme::Scheme0, FP_KEY_PREFIX);
        let mut c2 = Box::new([0u8; HANDSHAKE_SIZE]);
        random(unsigned_part_mut(&mut c2));
        ClientHandshake {
            state: ClientState::S0,
            started: false,
            c1,
            c1_digest,
            incoming: Box::new([0u8; HANDSHAKE_SIZE]),
            have: 0,
            c2,
            server_digest: false,
            s2_verified: false,
        }
    }

    /// Appends C0 C1 to `out` (once; `feed` does it too if this was not called).
    pub fn start(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            out.reserve(1 + HANDSHAKE_SIZE);
            out.push(RTMP_VERSION);
            out.extend_from_slice(&self.c1[..]);
        }
    }

    /// Consumes server bytes from `input`, appends bytes to send to `out` (C0 C1 on the first
    /// call if [`start`](Self::start) was not called; C2 as soon as S1 is complete).
    pub fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<HandshakeStatus, HandshakeError> {
        self.start(out);
        let mut pos = 0;
        loop {
            let rest = input.get(pos..).unwrap_or_default();
            match self.state {
                ClientState::S0 => {
                    let Some(&version) = rest.first() else {
                        return Ok(HandshakeStatus::InProgress { consumed: pos });
                    };
                    check_version(version)?;
                    pos += 1;
                    self.state = ClientState::S1;
                }
                ClientState::S1 => {
                    pos += fill(&mut self.incoming, &mut self.have, rest);
                    if self.have < HANDSHAKE_SIZE {
                        return Ok(HandshakeStatus::InProgress { consumed: pos });
                    }
                    self.send_c2(out);
                    self.have = 0;
                    self.state = ClientState::S2;
                }
                ClientState::S2 => {
                    pos += fill(&mut self.incoming, &mut self.have, rest);
                    if self.have < HANDSHAKE_SIZE {
                        return Ok(HandshakeStatus::InProgress { consumed: pos });
                    }
                    self.s2_verified = self.check_s2();
                    self.state = ClientState::Done;
                    return Ok(HandshakeStatus::Done { consumed: pos });
                }
                ClientState::Done => return Ok(HandshakeStatus::Done { consumed: 0 }),
            }
        }
    }

    /// Whether S1 carried a valid server digest (known once S1 is read).
    pub fn server_used_digest(&self) -> bool {
        self.server_digest
    }

    /// Whether S2 proved the server read our C1: a valid digest signature, or an exact echo of
    /// C1 from a plain server. Not enforced (servers in the wild vary); useful for logs and tests.
    pub fn s2_verified(&self) -> bool {
        self.s2_verified
    }

    fn send_c2(&mut self, out: &mut Vec<u8>) {
        match find_digest(&self.incoming, FMS_KEY_PREFIX) {
            Some((_, server_digest)) => {
                self.server_digest = true;
                sign_response(&mut self.c2, &GENUINE_FP_KEY, &server_digest);
                out.extend_from_slice(&self.c2[..]);
            }
            None => out.extend_from_slice(&self.incoming[..]),
        }
    }

    fn check_s2(&self) -> bool {
        let s2 = &self.incoming;
        s2[..] == self.c1[..]
            || s2.last_chunk::<DIGEST_LEN>()
                == Some(&response_signature(s2, &GENUINE_FMS_KEY, &self.c1_digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};

    /// A deterministic byte source (xorshift), so failures reproduce.
    fn rng(seed: u64) -> impl FnMut(&mut [u8]) {
        let mut state = seed | 1;
        move |buf: &mut [u8]| {
            for b in buf {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = state as u8;
            }
        }
    }

    fn server(seed: u64) -> ServerHandshake {
        ServerHandshake::new(1234, &mut rng(seed))
    }

    fn client(seed: u64) -> ClientHandshake {
        ClientHandshake::new(99, &mut rng(seed))
    }

    fn packet(bytes: &[u8]) -> [u8; HANDSHAKE_SIZE] {
        bytes.try_into().unwrap()
    }

    /// An independent statement of the checks ffmpeg's client applies to S1 and S2
    /// (rtmpproto.c, rtmp_handshake), written from the spec text rather than our helpers.
    fn ffmpeg_accepts(c1: &[u8], s1: &[u8], s2: &[u8]) -> bool {
        let fms: Vec<u8> = [&b"Genuine Adobe Flash Media Server 001"[..], &KEY_SUFFIX].concat();
        let mac = |key: &[u8], data: &[&[u8]]| {
            let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
            data.iter().for_each(|d| m.update(d));
            m.finalize().into_bytes().to_vec()
        };
        let valid_at = |p: &[u8], base: usize, key: &[u8]| {
            let off = p[base..base + 4].iter().map(|&b| b as usize).sum::<usize>() % 728 + base + 4;
            (mac(key, &[&p[..off], &p[off + 32..]]) == p[off..off + 32]).then_some(off)
        };
        let s1_ok = valid_at(s1, 772, &fms[..36]).or(valid_at(s1, 8, &fms[..36]));
        let fp: Vec<u8> = [&b"Genuine Adobe Flash Player 001"[..], &KEY_SUFFIX].concat();
        let Some(c_off) = valid_at(c1, 8, &fp[..30]) else {
            return false;
        };
        let key = mac(&fms, &[&c1[c_off..c_off + 32]]);
        s1_ok.is_some() && mac(&key, &[&s2[..1504]]) == s2[1504..]
    }

    fn run_server(hs: &mut ServerHandshake, input: &[u8]) -> (Vec<u8>, HandshakeStatus) {
        let mut out = Vec::new();
        let status = hs.feed(input, &mut out).unwrap();
        (out, status)
    }

    #[test]
    fn key_constants_match_the_published_strings() {
        assert_eq!(&GENUINE_FP_KEY[..30], b"Genuine Adobe Flash Player 001");
        assert_eq!(
            &GENUINE_FMS_KEY[..36],
            b"Genuine Adobe Flash Media Server 001"
        );
        assert_eq!(GENUINE_FP_KEY[30..], KEY_SUFFIX);
        assert_eq!(GENUINE_FMS_KEY[36..], KEY_SUFFIX);
        assert_eq!(GENUINE_FMS_KEY.len(), 68);
        assert_eq!(GENUINE_FP_KEY.len(), 62);
    }

    #[test]
    fn plain_c1_gets_plain_s1_and_echoed_s2() {
        let mut hs = server(1);
        let mut c1 = [0u8; HANDSHAKE_SIZE];
        rng(7)(&mut c1[8..]);
        let mut input = vec![3];
        input.extend_from_slice(&c1);
        let (out, status) = run_server(&mut hs, &input);
        assert_eq!(status, HandshakeStatus::InProgress { consumed: 1537 });
        assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(out[0], 3);
        assert_eq!(&out[1..5], &1234u32.to_be_bytes());
        assert_eq!(&out[5..9], &[0, 0, 0, 0]);
        assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c1[..]);
        assert_eq!(hs.digest_scheme(), None);
    }

    #[test]
    fn nonzero_version_without_valid_digest_falls_back_to_plain() {
        let mut hs = server(1);
        let mut c1 = [0x55u8; HANDSHAKE_SIZE];
        c1[4..8].copy_from_slice(&[9, 0, 124, 2]);
        let mut input = vec![3];
        input.extend_from_slice(&c1);
        let (out, _) = run_server(&mut hs, &input);
        assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c1[..]);
        assert_eq!(hs.digest_scheme(), None);
    }

    #[test]
    fn digest_c1_scheme0_gets_s1_and_s2_that_ffmpeg_accepts() {
        let mut cl = client(3);
        let mut c0c1 = Vec::new();
        cl.start(&mut c0c1);
        let mut hs = server(4);
        let (out, _) = run_server(&mut hs, &c0c1);
        assert_eq!(hs.digest_scheme(), Some(DigestScheme::Scheme0));
        let (s1, s2) = out[1..].split_at(HANDSHAKE_SIZE);
        assert!(ffmpeg_accepts(&c0c1[1..], s1, s2));
        assert_eq!(&s1[4..8], &SERVER_VERSION);
        // The server digest is in the client's scheme.
        assert!(find_digest(&packet(s1), &GENUINE_FMS_KEY[..36])
            .is_some_and(|(s, _)| s == DigestScheme::Scheme0));
    }

    #[test]
    fn digest_c1_scheme1_is_detected_and_answered_in_scheme1() {
        let mut c1 = [0u8; HANDSHAKE_SIZE];
        c1[4..8].copy_from_slice(&CLIENT_VERSION);
        rng(11)(&mut c1[8..]);
        write_digest(&mut c1, DigestScheme::Scheme1, &GENUINE_FP_KEY[..30]);
        let mut hs = server(5);
        let mut input = vec![3];
        input.extend_from_slice(&c1);
        let (out, _) = run_server(&mut hs, &input);
        assert_eq!(hs.digest_scheme(), Some(DigestScheme::Scheme1));
        let s1 = packet(&out[1..1 + HANDSHAKE_SIZE]);
        assert_eq!(
            find_digest(&s1, &GENUINE_FMS_KEY[..36]).map(|(s, _)| s),
            Some(DigestScheme::Scheme1)
        );
        // S2 is signed over the client's scheme-1 digest.
        let off = DigestScheme::Scheme1.digest_offset(&c1);
        let s2 = packet(&out[1 + HANDSHAKE_SIZE..]);
        assert_eq!(
            s2[SIGNATURE_START..],
            response_signature(&s2, &GENUINE_FMS_KEY, &c1[off..off + 32])
        );
    }

    #[test]
    fn s0s1s2_are_sent_before_c2_arrives() {
        let mut hs = server(1);
        let mut cl = client(2);
        let mut c0c1 = Vec::new();
        cl.start(&mut c0c1);
        let (out, status) = run_server(&mut hs, &c0c1);
        assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(status, HandshakeStatus::InProgress { consumed: 1537 });
    }

    #[test]
    fn bytes_after_c2_are_not_consumed() {
        let mut hs = server(1);
        let mut input = vec![3];
        input.extend_from_slice(&[0u8; HANDSHAKE_SIZE]);
        input.extend_from_slice(&[0u8; HANDSHAKE_SIZE]);
        input.extend_from_slice(b"chunk");
        let (_, status) = run_server(&mut hs, &input);
        assert_eq!(
            status,
            HandshakeStatus::Done {
                consumed: 1 + 2 * HANDSHAKE_SIZE
            }
        );
        // Feeding after completion consumes nothing.
        assert_eq!(
            run_server(&mut hs, b"more").1,
            HandshakeStatus::Done { consumed: 0 }
        );
    }

    #[test]
    fn one_byte_at_a_time_gives_the_same_bytes_as_one_read() {
        let mut cl = client(9);
        let mut c0c1 = Vec::new();
        cl.start(&mut c0c1);
        let mut whole = server(10);
        let (expected, _) = run_server(&mut whole, &c0c1);

        let mut hs = server(10);
        let mut out = Vec::new();
        for (i, b) in c0c1.iter().enumerate() {
            let status = hs.feed(std::slice::from_ref(b), &mut out).unwrap();
            assert_eq!(status, HandshakeStatus::InProgress { consumed: 1 });
            if i + 1 < c0c1.len() {
                assert!(out.is_empty(), "S0S1S2 sent before C1 was complete");
            }
        }
        assert_eq!(out, expected);
        let mut c2 = Vec::new();
        let mut done_at = None;
        let mut server_bytes = Vec::new();
        // The client, also fed one byte at a time, completes with C2.
        for (i, b) in out.iter().enumerate() {
            let status = cl.feed(std::slice::from_ref(b), &mut server_bytes).unwrap();
            if let HandshakeStatus::Done { consumed } = status {
                assert_eq!(consumed, 1);
                done_at = Some(i);
            }
        }
        assert_eq!(done_at, Some(out.len() - 1));
        c2.extend_from_slice(&server_bytes);
        assert_eq!(c2.len(), HANDSHAKE_SIZE);
        for (i, b) in c2.iter().enumerate() {
            let status = hs.feed(std::slice::from_ref(b), &mut out).unwrap();
            let done = matches!(status, HandshakeStatus::Done { consumed: 1 });
            assert_eq!(done, i == HANDSHAKE_SIZE - 1);
        }
        assert!(cl.server_used_digest());
        assert!(cl.s2_verified());
    }

    #[test]
    fn wrong_c0_version_is_rejected_with_a_clear_error() {
        let mut out = Vec::new();
        let err = server(1).feed(&[6], &mut out).unwrap_err();
        assert_eq!(err, HandshakeError::UnsupportedVersion(6));
        assert!(err.to_string().contains("RTMPE"), "{err}");
        let err = server(1).feed(&[0x16, 3, 1], &mut out).unwrap_err();
        assert!(err.to_string().contains("TLS"), "{err}");
        let err = server(1).feed(b"GET / HTTP/1.1", &mut out).unwrap_err();
        assert!(err.to_string().contains("HTTP"), "{err}");
        assert!(out.is_empty());
    }

    #[test]
    fn client_rejects_wrong_s0_version() {
        let mut out = Vec::new();
        let err = client(1).feed(&[5], &mut out).unwrap_err();
        assert_eq!(err, HandshakeError::UnsupportedVersion(5));
    }

    #[test]
    fn client_answers_plain_server_with_echo_of_s1() {
        let mut cl = client(1);
        let mut out = Vec::new();
        cl.start(&mut out);
        let c1 = out[1..].to_vec();
        let mut s1 = [0u8; HANDSHAKE_SIZE];
        rng(5)(&mut s1[8..]);
        let mut input = vec![3];
        input.extend_from_slice(&s1);
        input.extend_from_slice(&c1);
        input.extend_from_slice(&[1, 2, 3]);
        let mut c2 = Vec::new();
        let status = cl.feed(&input, &mut c2).unwrap();
        assert_eq!(
            status,
            HandshakeStatus::Done {
                consumed: 1 + 2 * HANDSHAKE_SIZE
            }
        );
        assert_eq!(&c2[..], &s1[..]);
        assert!(!cl.server_used_digest());
        assert!(cl.s2_verified());
    }

    #[test]
    fn client_flags_an_s2_that_does_not_match() {
        let mut cl = client(1);
        let mut hs = server(2);
        let mut c0c1 = Vec::new();
        cl.start(&mut c0c1);
        let (mut s, _) = run_server(&mut hs, &c0c1);
        let last = s.len() - 1;
        s[last] ^= 1;
        let mut c2 = Vec::new();
        cl.feed(&s, &mut c2).unwrap();
        assert!(cl.server_used_digest());
        assert!(!cl.s2_verified());
    }

    #[test]
    fn rml_rtmp_client_completes_against_our_server_with_digest() {
        let mut theirs = Handshake::new(PeerType::Client);
        let c0c1 = theirs.generate_outbound_p0_and_p1().unwrap();
        let mut hs = server(21);
        let (s012, _) = run_server(&mut hs, &c0c1);
        assert!(
            hs.digest_scheme().is_some(),
            "rml_rtmp's C1 digest not found"
        );
        assert!(ffmpeg_accepts(
            &c0c1[1..],
            &s012[1..1 + HANDSHAKE_SIZE],
            &s012[1 + HANDSHAKE_SIZE..]
        ));
        let mut tail = s012.clone();
        tail.extend_from_slice(b"xyz");
        let c2 = match theirs.process_bytes(&tail).unwrap() {
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                assert_eq!(remaining_bytes, b"xyz");
                response_bytes
            }
            other => panic!("unexpected {other:?}"),
        };
        // rml_rtmp only signs C2 when it validated our S1 digest; otherwise it echoes S1.
        let s1 = packet(&s012[1..1 + HANDSHAKE_SIZE]);
        assert_ne!(&c2[..], &s1[..], "rml_rtmp did not accept our S1 digest");
        let (_, s1_digest) = find_digest(&s1, &GENUINE_FMS_KEY[..36]).unwrap();
        let c2p = packet(&c2);
        assert_eq!(
            c2p[SIGNATURE_START..],
            response_signature(&c2p, &GENUINE_FP_KEY, &s1_digest)
        );
        let (_, status) = run_server(&mut hs, &c2);
        assert_eq!(
            status,
            HandshakeStatus::Done {
                consumed: HANDSHAKE_SIZE
            }
        );
    }

    #[test]
    fn our_client_completes_against_rml_rtmp_server_and_verifies_its_s2() {
        let mut theirs = Handshake::new(PeerType::Server);
        let mut cl = client(31);
        let mut c0c1 = Vec::new();
        cl.start(&mut c0c1);
        let s012 = match theirs.process_bytes(&c0c1).unwrap() {
            HandshakeProcessResult::InProgress { response_bytes } => response_bytes,
            other => panic!("unexpected {other:?}"),
        };
        // rml_rtmp answers a C1 whose digest it cannot find with an echo.
        assert_ne!(&s012[1 + HANDSHAKE_SIZE..], &c0c1[1..]);
        let mut c2 = Vec::new();
        let status = cl.feed(&s012, &mut c2).unwrap();
        assert!(matches!(status, HandshakeStatus::Done { .. }));
        assert!(cl.server_used_digest());
        assert!(cl.s2_verified(), "S2 signature of rml_rtmp did not verify");
        match theirs.process_bytes(&c2).unwrap() {
            HandshakeProcessResult::Completed { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn our_client_and_server_complete_in_one_pass() {
        let mut cl = client(41);
        let mut hs = server(42);
        let mut to_server = Vec::new();
        cl.start(&mut to_server);
        let (to_client, _) = run_server(&mut hs, &to_server);
        let mut c2 = Vec::new();
        assert!(matches!(
            cl.feed(&to_client, &mut c2).unwrap(),
            HandshakeStatus::Done { .. }
        ));
        assert!(matches!(
            run_server(&mut hs, &c2).1,
            HandshakeStatus::Done { .. }
        ));
        assert!(cl.s2_verified());
    }

    #[test]
    fn garbage_c1_never_panics() {
        for seed in 0..64u64 {
            let mut input = vec![3];
            let mut c1 = vec![0u8; 2 * HANDSHAKE_SIZE + 10];
            rng(seed + 100)(&mut c1);
            if seed % 2 == 0 {
                c1[8..12].copy_from_slice(&[0xFF; 4]);
                c1[772..776].copy_from_slice(&[0xFF; 4]);
            }
            input.extend_from_slice(&c1);
            let (_, status) = run_server(&mut server(seed), &input);
            assert_eq!(
                status,
                HandshakeStatus::Done {
                    consumed: 1 + 2 * HANDSHAKE_SIZE
                }
            );
        }
    }
}
