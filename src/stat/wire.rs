//! A compact binary form of [`StatSnapshot`], so a worker can leave its part of `/stat` in
//! shared memory and whichever worker answers the request can read every part back.
//!
//! The reader treats the bytes as hostile (another process wrote them, possibly half-way
//! through a crash): every length and count is checked against what is left and against a
//! named limit, strings must be UTF-8, and anything wrong is a [`StatError::Corrupt`], never a
//! panic or an allocation larger than the input.
//!
//! Layout (version 4): the magic `RSS4`, then the fields in declaration order. Integers are
//! LEB128 varints (signed ones zigzag-encoded), `f64` is 8 bytes little-endian, `bool` and
//! `Option` tags are one byte (0/1), strings and lists are a varint count followed by their
//! bytes or elements. Version 2 adds one field at the end of each client, `tls` (an `Option`
//! tag, then `version` and `sni`); version 3 one more, `relay` (an `Option` tag, then
//! `reconnects`); version 4 one more at the end of each stream, `recorders` (a list of `name`,
//! `path`, `bytes`, `time_ms`); version 5 one more at the end of each worker, `execs` (a list of
//! `pid`, `directive`, `app`, `name`, `command`, `restarts`); version 6 three more at the end of
//! each stream's video, `bit_depth` (optional), `hdr` (optional string) and `tracks` (a list of
//! `id`, `codec`, `width`, `height`, `profile`, `level`; at most [`MAX_STAT_TRACKS`]). Parts of
//! versions 1 (`RSS1`) to 5 (`RSS5`), written by an older build that still runs during a
//! reload, are read, with those fields empty.

use super::{
    AppStat, AudioMeta, ClientStat, ClientTls, ExecStat, RecorderStat, RelayStat, ServerStat,
    StatError, StatSnapshot, StreamStat, TrackMeta, VideoMeta, WorkerInfo,
};

/// First bytes of an encoded snapshot (format version 6, what [`StatSnapshot::encode`] writes).
pub const STAT_MAGIC: [u8; 4] = *b"RSS6";
/// First bytes of a version 5 snapshot (no video `bit_depth`, `hdr`, `tracks`), still accepted.
pub const STAT_MAGIC_V5: [u8; 4] = *b"RSS5";
/// First bytes of a version 4 snapshot (no worker `execs`), still accepted by the decoder.
pub const STAT_MAGIC_V4: [u8; 4] = *b"RSS4";
/// First bytes of a version 3 snapshot (no stream `recorders`), still accepted by the decoder.
pub const STAT_MAGIC_V3: [u8; 4] = *b"RSS3";
/// First bytes of a version 2 snapshot (no client `relay`), still accepted by the decoder.
pub const STAT_MAGIC_V2: [u8; 4] = *b"RSS2";
/// First bytes of a version 1 snapshot (no client `tls`), still accepted by the decoder.
pub const STAT_MAGIC_V1: [u8; 4] = *b"RSS1";
/// Longest encoded snapshot [`StatSnapshot::decode`] accepts.
pub const MAX_ENCODED_STAT_LEN: usize = 64 * 1024 * 1024;
/// Longest string kept; [`StatSnapshot::encode`] cuts longer ones (at a character boundary)
/// so its output always decodes.
pub const MAX_STAT_STRING_LEN: usize = 4096;
/// Most elements of one list (servers, applications, streams, clients, workers).
pub const MAX_STAT_LIST_LEN: usize = 1 << 20;
/// Most extra video tracks of one stream (a publisher sends a handful at most).
pub const MAX_STAT_TRACKS: usize = 16;

impl StatSnapshot {
    /// The binary form described in the module docs.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_version(6)
    }

    /// Version 1 leaves the client `tls` out, version 2 the client `relay`, version 3 the
    /// stream `recorders` (tests check that
    /// the decoder still reads them).
    fn encode_version(&self, version: u8) -> Vec<u8> {
        let mut w = Writer {
            out: Vec::with_capacity(super::estimated_len(self) / 2),
            version,
        };
        w.out.extend_from_slice(match version {
            1 => &STAT_MAGIC_V1,
            2 => &STAT_MAGIC_V2,
            3 => &STAT_MAGIC_V3,
            4 => &STAT_MAGIC_V4,
            5 => &STAT_MAGIC_V5,
            _ => &STAT_MAGIC,
        });
        w.str(&self.nginx_version);
        w.str(&self.module_version);
        w.str(&self.compiler);
        w.str(&self.built);
        w.uint(u64::from(self.pid));
        w.uint(self.uptime_s);
        w.uint(self.naccepted);
        w.uint(self.bytes_in);
        w.uint(self.bytes_out);
        w.uint(self.bw_in);
        w.uint(self.bw_out);
        w.list(&self.workers, |w, x| {
            w.uint(u64::from(x.pid));
            w.uint(x.connections);
            if w.version >= 5 {
                w.list(&x.execs, |w, e| {
                    w.uint(u64::from(e.pid));
                    w.str(&e.directive);
                    w.str(&e.app);
                    w.str(&e.name);
                    w.str(&e.command);
                    w.uint(e.restarts);
                });
            }
        });
        w.list(&self.servers, |w, srv| {
            w.uint(srv.index as u64);
            w.list(&srv.applications, |w, app| {
                w.str(&app.name);
                w.bool(app.live);
                w.list(&app.streams, encode_stream);
            });
        });
        w.out
    }

    /// Reads what [`StatSnapshot::encode`] wrote; refuses anything else without panicking.
    pub fn decode(bytes: &[u8]) -> Result<StatSnapshot, StatError> {
        if bytes.len() > MAX_ENCODED_STAT_LEN {
            return Err(StatError::Corrupt("snapshot too large"));
        }
        let mut r = Reader {
            buf: bytes,
            pos: 0,
            version: 6,
        };
        let magic = r.take(STAT_MAGIC.len())?;
        if magic == STAT_MAGIC_V1 {
            r.version = 1;
        } else if magic == STAT_MAGIC_V2 {
            r.version = 2;
        } else if magic == STAT_MAGIC_V3 {
            r.version = 3;
        } else if magic == STAT_MAGIC_V4 {
            r.version = 4;
        } else if magic == STAT_MAGIC_V5 {
            r.version = 5;
        } else if magic != STAT_MAGIC {
            return Err(StatError::Corrupt("bad magic or version"));
        }
        let s = StatSnapshot {
            nginx_version: r.str()?,
            module_version: r.str()?,
            compiler: r.str()?,
            built: r.str()?,
            pid: r.u32()?,
            uptime_s: r.uint()?,
            naccepted: r.uint()?,
            bytes_in: r.uint()?,
            bytes_out: r.uint()?,
            bw_in: r.uint()?,
            bw_out: r.uint()?,
            workers: r.list(|r| {
                Ok(WorkerInfo {
                    pid: r.u32()?,
                    connections: r.uint()?,
                    execs: if r.version >= 5 {
                        r.list(|r| {
                            Ok(ExecStat {
                                pid: r.u32()?,
                                directive: r.str()?,
                                app: r.str()?,
                                name: r.str()?,
                                command: r.str()?,
                                restarts: r.uint()?,
                            })
                        })?
                    } else {
                        Vec::new()
                    },
                })
            })?,
            servers: r.list(|r| {
                Ok(ServerStat {
                    index: r.usize()?,
                    applications: r.list(|r| {
                        Ok(AppStat {
                            name: r.str()?,
                            live: r.bool()?,
                            streams: r.list(decode_stream)?,
                        })
                    })?,
                })
            })?,
        };
        if r.pos != bytes.len() {
            return Err(StatError::Corrupt("trailing bytes"));
        }
        Ok(s)
    }
}

fn encode_stream(w: &mut Writer, st: &StreamStat) {
    w.str(&st.name);
    w.uint(st.time_ms);
    w.uint(st.bw_in);
    w.uint(st.bytes_in);
    w.uint(st.bw_out);
    w.uint(st.bytes_out);
    w.uint(st.bw_audio);
    w.uint(st.bw_video);
    w.bool(st.publishing);
    w.bool(st.active);
    w.list(&st.clients, |w, c| {
        w.uint(c.id);
        w.str(&c.address);
        w.uint(c.time_ms);
        w.opt_str(&c.flashver);
        w.opt_str(&c.pageurl);
        w.opt_str(&c.swfurl);
        w.uint(c.dropped);
        w.int(c.avsync);
        w.uint(c.timestamp);
        w.bool(c.publishing);
        w.bool(c.active);
        w.uint(u64::from(c.worker_pid));
        w.uint(c.bytes_in);
        w.uint(c.bytes_out);
        if w.version >= 2 {
            w.bool(c.tls.is_some());
            if let Some(t) = &c.tls {
                w.str(&t.version);
                w.opt_str(&t.sni);
            }
        }
        if w.version >= 3 {
            w.bool(c.relay.is_some());
            if let Some(r) = &c.relay {
                w.uint(r.reconnects);
            }
        }
    });
    w.bool(st.video.is_some());
    if let Some(v) = &st.video {
        w.uint(u64::from(v.width));
        w.uint(u64::from(v.height));
        w.out.extend_from_slice(&v.frame_rate.to_le_bytes());
        w.str(&v.codec);
        w.opt_str(&v.profile);
        w.opt_u32(v.compat);
        w.opt_str(&v.level);
        if w.version >= 6 {
            w.opt_u32(v.bit_depth);
            w.opt_str(&v.hdr);
            let tracks = v.tracks.get(..MAX_STAT_TRACKS).unwrap_or(&v.tracks);
            w.list(tracks, |w, t| {
                w.uint(u64::from(t.id));
                w.str(&t.codec);
                w.uint(u64::from(t.width));
                w.uint(u64::from(t.height));
                w.opt_str(&t.profile);
                w.opt_str(&t.level);
            });
        }
    }
    w.bool(st.audio.is_some());
    if let Some(a) = &st.audio {
        w.str(&a.codec);
        w.opt_str(&a.profile);
        w.opt_u32(a.channels);
        w.opt_u32(a.sample_rate);
    }
    if w.version >= 4 {
        w.list(&st.recorders, |w, r| {
            w.str(&r.name);
            w.str(&r.path);
            w.uint(r.bytes);
            w.uint(r.time_ms);
        });
    }
}

fn decode_stream(r: &mut Reader<'_>) -> Result<StreamStat, StatError> {
    Ok(StreamStat {
        name: r.str()?,
        time_ms: r.uint()?,
        bw_in: r.uint()?,
        bytes_in: r.uint()?,
        bw_out: r.uint()?,
        bytes_out: r.uint()?,
        bw_audio: r.uint()?,
        bw_video: r.uint()?,
        publishing: r.bool()?,
        active: r.bool()?,
        clients: r.list(|r| {
            Ok(ClientStat {
                id: r.uint()?,
                address: r.str()?,
                time_ms: r.uint()?,
                flashver: r.opt_str()?,
                pageurl: r.opt_str()?,
                swfurl: r.opt_str()?,
                dropped: r.uint()?,
                avsync: r.int()?,
                timestamp: r.uint()?,
                publishing: r.bool()?,
                active: r.bool()?,
                worker_pid: r.u32()?,
                bytes_in: r.uint()?,
                bytes_out: r.uint()?,
                tls: if r.version >= 2 && r.bool()? {
                    Some(ClientTls {
                        version: r.str()?,
                        sni: r.opt_str()?,
                    })
                } else {
                    None
                },
                relay: if r.version >= 3 && r.bool()? {
                    Some(RelayStat {
                        reconnects: r.uint()?,
                    })
                } else {
                    None
                },
            })
        })?,
        video: if r.bool()? {
            Some(decode_video(r)?)
        } else {
            None
        },
        audio: if r.bool()? {
            Some(AudioMeta {
                codec: r.str()?,
                profile: r.opt_str()?,
                channels: r.opt_u32()?,
                sample_rate: r.opt_u32()?,
            })
        } else {
            None
        },
        recorders: if r.version >= 4 {
            r.list(|r| {
                Ok(RecorderStat {
                    name: r.str()?,
                    path: r.str()?,
                    bytes: r.uint()?,
                    time_ms: r.uint()?,
                })
            })?
        } else {
            Vec::new()
        },
    })
}

fn decode_video(r: &mut Reader<'_>) -> Result<VideoMeta, StatError> {
    let mut v = VideoMeta {
        width: r.u32()?,
        height: r.u32()?,
        frame_rate: r.f64()?,
        codec: r.str()?,
        profile: r.opt_str()?,
        compat: r.opt_u32()?,
        level: r.opt_str()?,
        ..VideoMeta::default()
    };
    if r.version >= 6 {
        v.bit_depth = r.opt_u32()?;
        v.hdr = r.opt_str()?;
        v.tracks = r.list(|r| {
            Ok(TrackMeta {
                id: r.u32()?,
                codec: r.str()?,
                width: r.u32()?,
                height: r.u32()?,
                profile: r.opt_str()?,
                level: r.opt_str()?,
            })
        })?;
        if v.tracks.len() > MAX_STAT_TRACKS {
            return Err(StatError::Corrupt("too many video tracks"));
        }
    }
    Ok(v)
}

struct Writer {
    out: Vec<u8>,
    /// Format version being written (1 to 6).
    version: u8,
}

impl Writer {
    fn uint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    fn int(&mut self, v: i64) {
        self.uint(((v << 1) ^ (v >> 63)) as u64);
    }

    fn bool(&mut self, b: bool) {
        self.out.push(u8::from(b));
    }

    fn str(&mut self, s: &str) {
        let mut end = s.len().min(MAX_STAT_STRING_LEN);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let s = &s[..end];
        self.uint(s.len() as u64);
        self.out.extend_from_slice(s.as_bytes());
    }

    fn opt_str(&mut self, s: &Option<String>) {
        self.bool(s.is_some());
        if let Some(s) = s {
            self.str(s);
        }
    }

    fn opt_u32(&mut self, v: Option<u32>) {
        self.bool(v.is_some());
        if let Some(v) = v {
            self.uint(u64::from(v));
        }
    }

    /// A count and the elements; lists past [`MAX_STAT_LIST_LEN`] are cut so the output
    /// always decodes.
    fn list<T>(&mut self, items: &[T], mut each: impl FnMut(&mut Writer, &T)) {
        let items = items.get(..MAX_STAT_LIST_LEN).unwrap_or(items);
        self.uint(items.len() as u64);
        for x in items {
            each(self, x);
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Format version of the input (from its magic).
    version: u8,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StatError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(StatError::Corrupt("truncated"))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(StatError::Corrupt("truncated"))?;
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, StatError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(StatError::Corrupt("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    fn uint(&mut self) -> Result<u64, StatError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let part = u64::from(b & 0x7f);
            // The 10th byte may only carry the top bit of a u64.
            if shift == 63 && part > 1 {
                return Err(StatError::Corrupt("integer overflow"));
            }
            v |= part << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(StatError::Corrupt("integer overflow"))
    }

    fn int(&mut self) -> Result<i64, StatError> {
        let z = self.uint()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    fn u32(&mut self) -> Result<u32, StatError> {
        u32::try_from(self.uint()?).map_err(|_| StatError::Corrupt("value out of range"))
    }

    fn usize(&mut self) -> Result<usize, StatError> {
        usize::try_from(self.uint()?).map_err(|_| StatError::Corrupt("value out of range"))
    }

    fn bool(&mut self) -> Result<bool, StatError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(StatError::Corrupt("invalid flag")),
        }
    }

    fn f64(&mut self) -> Result<f64, StatError> {
        let b: [u8; 8] = self
            .take(8)?
            .try_into()
            .map_err(|_| StatError::Corrupt("truncated"))?;
        Ok(f64::from_le_bytes(b))
    }

    fn str(&mut self) -> Result<String, StatError> {
        let len = self.usize()?;
        if len > MAX_STAT_STRING_LEN {
            return Err(StatError::Corrupt("string too long"));
        }
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| StatError::Corrupt("string is not UTF-8"))
    }

    fn opt_str(&mut self) -> Result<Option<String>, StatError> {
        if self.bool()? {
            self.str().map(Some)
        } else {
            Ok(None)
        }
    }

    fn opt_u32(&mut self) -> Result<Option<u32>, StatError> {
        if self.bool()? {
            self.u32().map(Some)
        } else {
            Ok(None)
        }
    }

    /// A counted list; the count is checked before anything is allocated (every element
    /// takes at least one byte, so a count above what is left is a lie).
    fn list<T>(
        &mut self,
        mut each: impl FnMut(&mut Reader<'a>) -> Result<T, StatError>,
    ) -> Result<Vec<T>, StatError> {
        let n = self.usize()?;
        if n > MAX_STAT_LIST_LEN || n > self.remaining() {
            return Err(StatError::Corrupt("list too long"));
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(each(self)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stat::tests::sample;

    #[test]
    fn encoded_snapshot_decodes_to_the_same_value() {
        let s = sample();
        let bytes = s.encode();
        assert!(bytes.starts_with(&STAT_MAGIC));
        assert_eq!(StatSnapshot::decode(&bytes), Ok(s));
        let empty = StatSnapshot::default();
        assert_eq!(StatSnapshot::decode(&empty.encode()), Ok(empty));
    }

    #[test]
    fn extreme_values_roundtrip() {
        let mut s = sample();
        s.bytes_in = u64::MAX;
        s.pid = u32::MAX;
        s.servers[0].index = usize::MAX;
        let st = &mut s.servers[0].applications[0].streams[0];
        st.clients[0].avsync = i64::MIN;
        st.clients[1].avsync = i64::MAX;
        st.video.as_mut().unwrap().frame_rate = f64::INFINITY;
        let back = StatSnapshot::decode(&s.encode()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn client_tls_round_trips_with_and_without_sni() {
        let mut s = sample();
        let clients = &mut s.servers[0].applications[0].streams[0].clients;
        assert_eq!(
            clients[0].tls.as_ref().map(|t| t.version.as_str()),
            Some("TLSv1.3")
        );
        clients[1].tls = Some(ClientTls {
            version: "TLSv1.2".into(),
            sni: None,
        });
        let bytes = s.encode();
        assert!(bytes.starts_with(&STAT_MAGIC));
        let back = StatSnapshot::decode(&bytes).unwrap();
        assert_eq!(back, s);
        let c = &back.servers[0].applications[0].streams[0].clients;
        assert_eq!(
            c[0].tls.as_ref().unwrap().sni.as_deref(),
            Some("cam.example.com")
        );
        assert_eq!(c[1].tls.as_ref().unwrap().sni, None);
        // A value past the string limit is cut, never refused.
        s.servers[0].applications[0].streams[0].clients[0].tls = Some(ClientTls {
            version: "v".repeat(MAX_STAT_STRING_LEN + 1),
            sni: Some("s".repeat(MAX_STAT_STRING_LEN * 2)),
        });
        let back = StatSnapshot::decode(&s.encode()).unwrap();
        let t = back.servers[0].applications[0].streams[0].clients[0]
            .tls
            .clone()
            .unwrap();
        assert_eq!(t.version.len(), MAX_STAT_STRING_LEN);
        assert_eq!(t.sni.map(|n| n.len()), Some(MAX_STAT_STRING_LEN));
    }

    #[test]
    fn execs_round_trip_render_escaped_and_version_4_parts_decode_without_them() {
        let mut s = sample();
        s.workers[1].execs = vec![ExecStat {
            pid: 5150,
            directive: "exec_pull".into(),
            app: "live".into(),
            name: "cam".into(),
            command: "ffmpeg -i \"rtmp://x/<a>&b\"".into(),
            restarts: 2,
        }];
        assert_eq!(StatSnapshot::decode(&s.encode()).unwrap(), s);
        let old = StatSnapshot::decode(&s.encode_version(4)).unwrap();
        assert!(old.workers.iter().all(|w| w.execs.is_empty()));
        let xml = super::super::render_xml(&s, super::super::StatMask::ALL, None);
        assert!(
            xml.contains(
                "<execs>\r\n<exec><pid>5150</pid><directive>exec_pull</directive><app>live</app>\
             <name>cam</name><command>ffmpeg -i &quot;rtmp://x/&lt;a&gt;&amp;b&quot;</command>\
             <restarts>2</restarts></exec>\r\n</execs>\r\n</rtmp>"
            ),
            "{xml}"
        );
        let json = super::super::render_json(&s);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            v["workers"][1]["execs"][0]["command"],
            "ffmpeg -i \"rtmp://x/<a>&b\""
        );
        assert_eq!(v["workers"][1]["execs"][0]["restarts"], 2);
        let prom = super::super::render_prometheus(&s);
        assert!(prom.contains(
            "nginx_rtmp_exec_restarts_total{directive=\"exec_pull\",app=\"live\",name=\"cam\",pid=\"5150\"} 2"
        ), "{prom}");
    }

    #[test]
    fn video_depth_hdr_and_tracks_round_trip_and_version_5_parts_decode_without_them() {
        let s = crate::stat::tests::hdr_sample();
        assert_eq!(StatSnapshot::decode(&s.encode()).unwrap(), s);
        let old = StatSnapshot::decode(&s.encode_version(5)).unwrap();
        let v = old.servers[0].applications[0].streams[0]
            .video
            .clone()
            .unwrap();
        assert_eq!((v.bit_depth, v.hdr, v.tracks.len()), (None, None, 0));
        assert_eq!(v.profile.as_deref(), Some("Main 10"));
        // Too many tracks are cut when written and refused when read.
        let mut many = s.clone();
        let video = many.servers[0].applications[0].streams[0]
            .video
            .as_mut()
            .unwrap();
        video.tracks = vec![video.tracks[0].clone(); MAX_STAT_TRACKS + 3];
        let back = StatSnapshot::decode(&many.encode()).unwrap();
        let tracks = &back.servers[0].applications[0].streams[0]
            .video
            .as_ref()
            .unwrap()
            .tracks;
        assert_eq!(tracks.len(), MAX_STAT_TRACKS);
        // A list longer than that, written by hand, is refused.
        let mut w = Writer {
            out: Vec::new(),
            version: 6,
        };
        w.uint(320);
        w.uint(240);
        w.out.extend_from_slice(&25.0f64.to_le_bytes());
        w.str("HEVC");
        w.opt_str(&None);
        w.opt_u32(None);
        w.opt_str(&None);
        w.opt_u32(Some(10));
        w.opt_str(&None);
        w.list(&[0u8; MAX_STAT_TRACKS + 1], |w, _| {
            w.uint(1);
            w.str("AV1");
            w.uint(1);
            w.uint(1);
            w.opt_str(&None);
            w.opt_str(&None);
        });
        let mut r = Reader {
            buf: &w.out,
            pos: 0,
            version: 6,
        };
        assert_eq!(
            decode_video(&mut r),
            Err(StatError::Corrupt("too many video tracks"))
        );
        for n in 0..s.encode().len() {
            assert!(
                StatSnapshot::decode(&s.encode()[..n]).is_err(),
                "prefix {n}"
            );
        }
    }

    #[test]
    fn recorders_round_trip_and_version_3_parts_decode_without_them() {
        let mut s = sample();
        s.servers[0].applications[0].streams[0].recorders = vec![RecorderStat {
            name: "rec1".into(),
            path: "/var/rec/cam-1.flv".into(),
            bytes: 123_456,
            time_ms: 61_000,
        }];
        assert_eq!(StatSnapshot::decode(&s.encode()).unwrap(), s);
        let old = StatSnapshot::decode(&s.encode_version(3)).unwrap();
        assert!(old.servers[0].applications[0].streams[0]
            .recorders
            .is_empty());
        s.servers[0].applications[0].streams[0].recorders.clear();
        assert_eq!(old, s);
    }

    #[test]
    fn relays_round_trip_and_version_2_parts_decode_without_them() {
        let mut s = sample();
        s.servers[0].applications[0].streams[0].clients[1].relay =
            Some(RelayStat { reconnects: 300 });
        assert_eq!(StatSnapshot::decode(&s.encode()), Ok(s.clone()));
        let v2 = s.encode_version(2);
        assert!(v2.starts_with(&STAT_MAGIC_V2));
        let mut expected = s.clone();
        expected.servers[0].applications[0].streams[0].clients[1].relay = None;
        assert_eq!(StatSnapshot::decode(&v2), Ok(expected.clone()));
        // Version 3 of clients without relays is version 2 plus one tag per client.
        let clients = expected
            .servers
            .iter()
            .flat_map(|srv| &srv.applications)
            .flat_map(|a| &a.streams)
            .map(|st| st.clients.len())
            .sum::<usize>();
        assert_eq!(expected.encode_version(3).len(), v2.len() + clients);
        for n in 0..s.encode().len() {
            assert!(
                StatSnapshot::decode(&s.encode()[..n]).is_err(),
                "prefix {n}"
            );
        }
    }

    #[test]
    fn version_1_parts_still_decode_with_no_tls() {
        let s = sample();
        let v1 = s.encode_version(1);
        assert!(v1.starts_with(&STAT_MAGIC_V1));
        let mut expected = s.clone();
        for c in expected
            .servers
            .iter_mut()
            .flat_map(|srv| &mut srv.applications)
            .flat_map(|a| &mut a.streams)
            .flat_map(|st| &mut st.clients)
        {
            c.tls = None;
        }
        assert_eq!(StatSnapshot::decode(&v1), Ok(expected.clone()));
        // Version 2 of the same clients without TLS is version 1 plus one tag per client.
        let v2 = expected.encode_version(2);
        assert_eq!(v2.len(), v1.len() + 2);
        assert_eq!(StatSnapshot::decode(&v2), Ok(expected));
        // A version 1 part is not read as version 2 nor the other way round.
        let mut relabelled = v1.clone();
        relabelled[..4].copy_from_slice(&STAT_MAGIC);
        assert!(StatSnapshot::decode(&relabelled).is_err());
        for n in 0..v1.len() {
            assert!(StatSnapshot::decode(&v1[..n]).is_err(), "v1 prefix {n}");
        }
    }

    #[test]
    fn overlong_strings_are_cut_at_a_character_boundary_and_still_decode() {
        let mut s = sample();
        s.compiler = "é".repeat(MAX_STAT_STRING_LEN);
        let back = StatSnapshot::decode(&s.encode()).unwrap();
        assert!(back.compiler.len() <= MAX_STAT_STRING_LEN);
        assert!(back.compiler.chars().all(|c| c == 'é'));
        assert_eq!(back.compiler.len(), MAX_STAT_STRING_LEN);
    }

    #[test]
    fn every_truncation_of_a_valid_snapshot_is_refused() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            assert!(StatSnapshot::decode(&bytes[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn trailing_bytes_bad_magic_and_bad_flags_are_refused() {
        let mut bytes = sample().encode();
        bytes.push(0);
        assert_eq!(
            StatSnapshot::decode(&bytes),
            Err(StatError::Corrupt("trailing bytes"))
        );
        assert_eq!(
            StatSnapshot::decode(b"RSS7"),
            Err(StatError::Corrupt("bad magic or version"))
        );
        // Four empty strings, seven zero counters, then a workers count far past the end.
        let mut lie = STAT_MAGIC.to_vec();
        lie.extend_from_slice(&[0, 0, 0, 0]);
        lie.extend_from_slice(&[0; 7]);
        lie.extend_from_slice(&[0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(
            StatSnapshot::decode(&lie),
            Err(StatError::Corrupt("list too long"))
        );
        let mut overflow = STAT_MAGIC.to_vec();
        overflow.extend_from_slice(&[0xff; 11]);
        assert_eq!(
            StatSnapshot::decode(&overflow),
            Err(StatError::Corrupt("integer overflow"))
        );
        let mut bad_utf8 = STAT_MAGIC.to_vec();
        bad_utf8.extend_from_slice(&[2, 0xc3, 0x28]);
        assert_eq!(
            StatSnapshot::decode(&bad_utf8),
            Err(StatError::Corrupt("string is not UTF-8"))
        );
    }

    #[test]
    fn random_and_mutated_bytes_never_panic() {
        let valid = sample().encode();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..3000 {
            let mut bytes = if i % 2 == 0 {
                let len = (next() % 300) as usize;
                let mut b = STAT_MAGIC.to_vec();
                b.extend((0..len).map(|_| next() as u8));
                b
            } else {
                valid.clone()
            };
            for _ in 0..(1 + next() % 8) {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
            }
            let _ = StatSnapshot::decode(&bytes);
        }
    }
}
