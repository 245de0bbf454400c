//! `/stat?format=json`: the same snapshot as a JSON document (schema in `docs/stat.md`).
//!
//! Written by hand because serde is not a dependency of the crate; the writer is small and
//! escapes every string, and the tests read the output back with `serde_json`.

use std::fmt::{Display, Write};

use super::{estimated_len, AudioMeta, ClientStat, StatMask, StatSnapshot, StreamStat, VideoMeta};

/// Renders everything (the `all` mask).
pub fn render_json(s: &StatSnapshot) -> String {
    render_json_masked(s, StatMask::ALL)
}

/// Renders with a location's mask: without `live` applications list no streams, without
/// `clients` streams list no clients (their `nclients` stays the real count).
pub fn render_json_masked(s: &StatSnapshot, mask: StatMask) -> String {
    let mut w = Json {
        out: String::with_capacity(estimated_len(s)),
    };
    w.out.push('{');
    w.str_field("nginx_version", &s.nginx_version);
    w.str_field("module_version", &s.module_version);
    w.str_field("compiler", &s.compiler);
    w.str_field("built", &s.built);
    w.num_field("pid", s.pid);
    w.num_field("uptime_s", s.uptime_s);
    w.num_field("naccepted", s.naccepted);
    w.num_field("bytes_in", s.bytes_in);
    w.num_field("bytes_out", s.bytes_out);
    w.num_field("bw_in", s.bw_in);
    w.num_field("bw_out", s.bw_out);
    w.key("workers");
    w.out.push('[');
    for (i, wk) in s.workers.iter().enumerate() {
        w.sep(i);
        w.out.push('{');
        w.num_field("pid", wk.pid);
        w.num_field("connections", wk.connections);
        w.key("execs");
        w.out.push('[');
        for (j, e) in wk.execs.iter().enumerate() {
            w.sep(j);
            w.out.push('{');
            w.num_field("pid", e.pid);
            w.str_field("directive", &e.directive);
            w.str_field("app", &e.app);
            w.str_field("name", &e.name);
            w.str_field("command", &e.command);
            w.num_field("restarts", e.restarts);
            w.close('}');
        }
        w.out.push_str("],");
        w.close('}');
    }
    w.out.push_str("],");
    w.key("servers");
    w.out.push('[');
    for (i, srv) in s.servers.iter().enumerate() {
        w.sep(i);
        w.out.push('{');
        w.num_field("index", srv.index);
        w.key("applications");
        w.out.push('[');
        for (j, app) in srv.applications.iter().enumerate() {
            w.sep(j);
            w.out.push('{');
            w.str_field("name", &app.name);
            w.bool_field("live", app.live);
            w.key("streams");
            w.out.push('[');
            if mask.live && app.live {
                for (k, st) in app.streams.iter().enumerate() {
                    w.sep(k);
                    w.stream(st, mask);
                }
            }
            w.out.push(']');
            w.out.push('}');
        }
        w.out.push(']');
        w.out.push('}');
    }
    w.out.push(']');
    w.out.push('}');
    w.out
}

/// A minimal JSON writer: every `*_field` appends `"key":value,` and `close` drops the
/// trailing comma before closing an object.
struct Json {
    out: String,
}

impl Json {
    fn sep(&mut self, index: usize) {
        if index > 0 {
            self.out.push(',');
        }
    }

    fn key(&mut self, k: &str) {
        self.out.push('"');
        self.out.push_str(k);
        self.out.push_str("\":");
    }

    fn close(&mut self, c: char) {
        if self.out.ends_with(',') {
            self.out.pop();
        }
        self.out.push(c);
    }

    fn num_field(&mut self, k: &str, v: impl Display) {
        self.key(k);
        // Writing to a String cannot fail.
        let _ = write!(self.out, "{v},");
    }

    fn bool_field(&mut self, k: &str, v: bool) {
        self.key(k);
        self.out.push_str(if v { "true," } else { "false," });
    }

    fn str_field(&mut self, k: &str, v: &str) {
        self.key(k);
        push_json_string(&mut self.out, v);
        self.out.push(',');
    }

    fn opt_str_field(&mut self, k: &str, v: Option<&str>) {
        match v {
            Some(v) => self.str_field(k, v),
            None => self.null_field(k),
        }
    }

    fn opt_num_field(&mut self, k: &str, v: Option<u32>) {
        match v {
            Some(v) => self.num_field(k, v),
            None => self.null_field(k),
        }
    }

    fn null_field(&mut self, k: &str) {
        self.key(k);
        self.out.push_str("null,");
    }

    fn stream(&mut self, st: &StreamStat, mask: StatMask) {
        self.out.push('{');
        self.str_field("name", &st.name);
        self.num_field("time_ms", st.time_ms);
        self.num_field("bytes_in", st.bytes_in);
        self.num_field("bytes_out", st.bytes_out);
        self.num_field("bw_in", st.bw_in);
        self.num_field("bw_out", st.bw_out);
        self.num_field("bw_audio", st.bw_audio);
        self.num_field("bw_video", st.bw_video);
        self.bool_field("publishing", st.publishing);
        self.bool_field("active", st.active);
        self.num_field("nclients", st.nclients());
        match &st.video {
            Some(v) => self.video(v),
            None => self.null_field("video"),
        }
        match &st.audio {
            Some(a) => self.audio(a),
            None => self.null_field("audio"),
        }
        self.key("recorders");
        self.out.push('[');
        for (i, r) in st.recorders.iter().enumerate() {
            self.sep(i);
            self.out.push('{');
            self.str_field("name", &r.name);
            self.str_field("path", &r.path);
            self.num_field("bytes", r.bytes);
            self.num_field("time_ms", r.time_ms);
            self.close('}');
        }
        self.out.push_str("],");
        self.key("clients");
        self.out.push('[');
        if mask.clients {
            for (i, c) in st.clients.iter().enumerate() {
                self.sep(i);
                self.client(c);
            }
        }
        self.out.push(']');
        self.out.push('}');
    }

    fn video(&mut self, v: &VideoMeta) {
        self.key("video");
        self.out.push('{');
        self.str_field("codec", &v.codec);
        self.num_field("width", v.width);
        self.num_field("height", v.height);
        if v.frame_rate.is_finite() {
            self.num_field("frame_rate", v.frame_rate);
        } else {
            self.null_field("frame_rate");
        }
        self.opt_str_field("profile", v.profile.as_deref());
        self.opt_num_field("compat", v.compat);
        self.opt_str_field("level", v.level.as_deref());
        self.opt_num_field("bit_depth", v.bit_depth);
        self.opt_str_field("hdr", v.hdr.as_deref());
        self.key("tracks");
        self.out.push('[');
        for (i, t) in v.tracks.iter().enumerate() {
            self.sep(i);
            self.out.push('{');
            self.num_field("id", t.id);
            self.str_field("codec", &t.codec);
            self.num_field("width", t.width);
            self.num_field("height", t.height);
            self.opt_str_field("profile", t.profile.as_deref());
            self.opt_str_field("level", t.level.as_deref());
            self.close('}');
        }
        self.out.push_str("],");
        self.close('}');
        self.out.push(',');
    }

    fn audio(&mut self, a: &AudioMeta) {
        self.key("audio");
        self.out.push('{');
        self.str_field("codec", &a.codec);
        self.opt_str_field("profile", a.profile.as_deref());
        self.opt_num_field("channels", a.channels);
        self.opt_num_field("sample_rate", a.sample_rate);
        self.close('}');
        self.out.push(',');
    }

    fn client(&mut self, c: &ClientStat) {
        self.out.push('{');
        self.num_field("id", c.id);
        self.str_field("address", &c.address);
        self.num_field("time_ms", c.time_ms);
        self.opt_str_field("flashver", c.flashver.as_deref());
        self.opt_str_field("pageurl", c.pageurl.as_deref());
        self.opt_str_field("swfurl", c.swfurl.as_deref());
        self.num_field("dropped", c.dropped);
        self.num_field("avsync", c.avsync);
        self.num_field("timestamp", c.timestamp);
        self.bool_field("publishing", c.publishing);
        self.bool_field("active", c.active);
        self.num_field("worker_pid", c.worker_pid);
        self.num_field("bytes_in", c.bytes_in);
        self.num_field("bytes_out", c.bytes_out);
        match &c.tls {
            Some(t) => {
                self.key("tls");
                self.out.push('{');
                self.str_field("version", &t.version);
                self.opt_str_field("sni", t.sni.as_deref());
                self.close('}');
                self.out.push(',');
            }
            None => self.null_field("tls"),
        }
        match &c.relay {
            Some(r) => {
                self.key("relay");
                self.out.push('{');
                self.num_field("reconnects", r.reconnects);
                self.close('}');
                self.out.push(',');
            }
            None => self.null_field("relay"),
        }
        self.close('}');
    }
}

/// Appends `s` as a JSON string literal. Quotes, backslashes and control characters are
/// escaped; `<`, `>`, `&` and U+2028/U+2029 too, so the output is also safe to inline in HTML
/// or JavaScript.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let plain =
            !matches!(c, '"' | '\\' | '<' | '>' | '&' | '\u{2028}' | '\u{2029}') && !c.is_control();
        if plain {
            continue;
        }
        out.push_str(s.get(start..i).unwrap_or_default());
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
        }
        start = i + c.len_utf8();
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stat::tests::sample;
    use serde_json::Value;

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}\n{s}"))
    }

    #[test]
    fn output_parses_back_with_every_top_level_field() {
        let v = parse(&render_json(&sample()));
        assert_eq!(v["nginx_version"], "1.28.3");
        assert_eq!(v["module_version"], "0.1.0");
        assert_eq!(v["pid"], 4242);
        assert_eq!(v["uptime_s"], 3600);
        assert_eq!(v["naccepted"], 12);
        assert_eq!(v["bytes_in"], 9_000_000);
        assert_eq!(v["bytes_out"], 7_500_000);
        assert_eq!(v["bw_in"], 2_600_000);
        assert_eq!(v["bw_out"], 2_450_000);
        assert_eq!(v["workers"][1]["pid"], 4243);
        assert_eq!(v["workers"][0]["connections"], 2);
        assert_eq!(v["servers"].as_array().unwrap().len(), 2);
        assert_eq!(v["servers"][1]["index"], 1);
        assert_eq!(v["servers"][1]["applications"][0]["name"], "empty");
    }

    #[test]
    fn streams_carry_counters_metadata_and_clients() {
        let v = parse(&render_json(&sample()));
        let app = &v["servers"][0]["applications"][0];
        assert_eq!(app["live"], true);
        let st = &app["streams"][0];
        assert_eq!(st["name"], "cam1");
        assert_eq!(st["time_ms"], 65_100);
        assert_eq!(st["bw_video"], 2_372_000);
        assert_eq!(st["publishing"], true);
        assert_eq!(st["nclients"], 2);
        assert_eq!(st["video"]["codec"], "H264");
        assert_eq!(st["video"]["width"], 1280);
        assert_eq!(st["video"]["frame_rate"], 29.97);
        assert_eq!(st["video"]["level"], "3.1");
        assert_eq!(st["audio"]["sample_rate"], 44_100);
        assert_eq!(st["audio"]["channels"], 2);
        let c = &st["clients"][0];
        assert_eq!(c["id"], 7);
        assert_eq!(c["avsync"], -12);
        assert_eq!(c["pageurl"], Value::Null);
        assert_eq!(c["worker_pid"], 4242);
        assert_eq!(st["clients"][1]["pageurl"], "http://example.com/?a=1&b=<2>");
        assert_eq!(st["clients"][1]["publishing"], false);
        assert_eq!(app["streams"][1]["video"], Value::Null);
        assert_eq!(app["streams"][1]["audio"], Value::Null);
    }

    #[test]
    fn clients_show_their_tls_version_and_sni_or_null() {
        let v = parse(&render_json(&sample()));
        let clients = &v["servers"][0]["applications"][0]["streams"][0]["clients"];
        assert_eq!(
            clients[0]["tls"],
            serde_json::json!({"version": "TLSv1.3", "sni": "cam.example.com"})
        );
        assert_eq!(clients[1]["tls"], Value::Null);
        assert!(clients[1].as_object().unwrap().contains_key("tls"));
        let mut s = sample();
        let c = &mut s.servers[0].applications[0].streams[0].clients[0];
        c.tls = Some(crate::stat::ClientTls {
            version: "TLSv1.2".into(),
            sni: None,
        });
        let v = parse(&render_json(&s));
        let tls = &v["servers"][0]["applications"][0]["streams"][0]["clients"][0]["tls"];
        assert_eq!(tls, &serde_json::json!({"version": "TLSv1.2", "sni": null}));
        // The client object still ends cleanly after it.
        assert_eq!(
            v["servers"][0]["applications"][0]["streams"][0]["clients"][0]["bytes_out"],
            3_000
        );
    }

    #[test]
    fn hostile_strings_round_trip_exactly() {
        let v = parse(&render_json(&sample()));
        let name = &v["servers"][0]["applications"][0]["streams"][1]["name"];
        assert_eq!(name, "a<b>&\"c'\u{1}\n\td");
        let json = render_json(&sample());
        assert!(!json.contains('\n') && !json.contains('<'));
    }

    #[test]
    fn every_escape_round_trips() {
        let all: String = (0u32..0x80)
            .filter_map(char::from_u32)
            .chain(['\u{2028}', '\u{2029}', 'é', '😀', '\u{FFFF}'])
            .collect();
        let mut out = String::new();
        push_json_string(&mut out, &all);
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, all);
    }

    #[test]
    fn masks_hide_streams_or_clients() {
        let only_global = StatMask {
            global: true,
            ..StatMask::default()
        };
        let v = parse(&render_json_masked(&sample(), only_global));
        let app = &v["servers"][0]["applications"][0];
        assert_eq!(app["streams"].as_array().unwrap().len(), 0);
        let no_clients = StatMask {
            live: true,
            ..StatMask::default()
        };
        let v = parse(&render_json_masked(&sample(), no_clients));
        let st = &v["servers"][0]["applications"][0]["streams"][0];
        assert_eq!(st["clients"].as_array().unwrap().len(), 0);
        assert_eq!(st["nclients"], 2);
    }

    #[test]
    fn empty_snapshot_and_non_finite_frame_rate_are_valid_json() {
        let v = parse(&render_json(&StatSnapshot::default()));
        assert_eq!(v["servers"], Value::Array(vec![]));
        let mut s = sample();
        if let Some(v) = s.servers[0].applications[0].streams[0].video.as_mut() {
            v.frame_rate = f64::NAN;
        }
        let v = parse(&render_json(&s));
        assert_eq!(
            v["servers"][0]["applications"][0]["streams"][0]["video"]["frame_rate"],
            Value::Null
        );
    }

    #[test]
    fn huge_frame_rate_is_still_a_json_number() {
        let mut s = sample();
        if let Some(v) = s.servers[0].applications[0].streams[0].video.as_mut() {
            v.frame_rate = 1e300;
        }
        let v = parse(&render_json(&s));
        assert!(v["servers"][0]["applications"][0]["streams"][0]["video"]["frame_rate"].is_f64());
    }
}
