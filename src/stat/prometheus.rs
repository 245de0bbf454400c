//! `/stat?format=prometheus`: the snapshot in the Prometheus text exposition format 0.0.4, so a
//! scraper can read it without an exporter sidecar.
//!
//! Each metric family is written once with its `# HELP` and `# TYPE` lines, followed by all its
//! samples (the format requires a family's samples to be contiguous). Stream series carry the
//! labels `server` (index of the `server{}` block), `app` and `name`.

use std::fmt::{Display, Write};

use super::{estimated_len, StatMask, StatSnapshot, StreamStat};

/// Renders everything (the `all` mask).
pub fn render_prometheus(s: &StatSnapshot) -> String {
    render_prometheus_masked(s, StatMask::ALL)
}

/// Renders with a location's mask: without `live` no per-stream series are written. Clients
/// never get series of their own (unbounded label cardinality); `clients` has no effect.
pub fn render_prometheus_masked(s: &StatSnapshot, mask: StatMask) -> String {
    let mut out = String::with_capacity(estimated_len(s).saturating_mul(2));
    let o = &mut out;

    family(
        o,
        "nginx_rtmp_info",
        "gauge",
        "Versions of nginx and of the RTMP module.",
    );
    o.push_str("nginx_rtmp_info{nginx_version=\"");
    push_label_value(o, &s.nginx_version);
    o.push_str("\",module_version=\"");
    push_label_value(o, &s.module_version);
    o.push_str("\"} 1\n");

    scalar(
        o,
        "nginx_rtmp_uptime_seconds",
        "gauge",
        "Seconds since nginx started.",
        s.uptime_s,
    );
    scalar(
        o,
        "nginx_rtmp_connections_accepted_total",
        "counter",
        "RTMP connections accepted.",
        s.naccepted,
    );
    scalar(
        o,
        "nginx_rtmp_bytes_received_total",
        "counter",
        "Bytes received over RTMP.",
        s.bytes_in,
    );
    scalar(
        o,
        "nginx_rtmp_bytes_sent_total",
        "counter",
        "Bytes sent over RTMP.",
        s.bytes_out,
    );

    family(
        o,
        "nginx_rtmp_bitrate_bits_per_second",
        "gauge",
        "Current RTMP bitrate of the whole server.",
    );
    let _ = writeln!(
        o,
        "nginx_rtmp_bitrate_bits_per_second{{direction=\"in\"}} {}",
        s.bw_in
    );
    let _ = writeln!(
        o,
        "nginx_rtmp_bitrate_bits_per_second{{direction=\"out\"}} {}",
        s.bw_out
    );

    scalar(
        o,
        "nginx_rtmp_workers",
        "gauge",
        "nginx worker processes covered by this report.",
        s.workers.len(),
    );
    if !s.workers.is_empty() {
        family(
            o,
            "nginx_rtmp_worker_connections",
            "gauge",
            "RTMP connections handled by each worker.",
        );
        for w in &s.workers {
            let _ = writeln!(
                o,
                "nginx_rtmp_worker_connections{{pid=\"{}\"}} {}",
                w.pid, w.connections
            );
        }
    }
    let execs: Vec<_> = s.workers.iter().flat_map(|w| &w.execs).collect();
    if !execs.is_empty() {
        family(
            o,
            "nginx_rtmp_exec_restarts_total",
            "counter",
            "Restarts of each exec* process, by directive, stream and the worker that runs it.",
        );
        for e in execs {
            o.push_str("nginx_rtmp_exec_restarts_total{directive=\"");
            push_label_value(o, &e.directive);
            o.push_str("\",app=\"");
            push_label_value(o, &e.app);
            o.push_str("\",name=\"");
            push_label_value(o, &e.name);
            let _ = writeln!(o, "\",pid=\"{}\"}} {}", e.pid, e.restarts);
        }
    }

    if !mask.live {
        return out;
    }
    let streams: Vec<(usize, &str, &StreamStat)> = s
        .servers
        .iter()
        .flat_map(|srv| {
            srv.applications
                .iter()
                .filter(|app| app.live)
                .flat_map(move |app| {
                    app.streams
                        .iter()
                        .map(move |st| (srv.index, app.name.as_str(), st))
                })
        })
        .collect();
    if streams.is_empty() {
        return out;
    }

    let per_stream = |o: &mut String,
                      name: &str,
                      kind: &str,
                      help: &str,
                      v: &dyn Fn(&StreamStat) -> Option<f64>| {
        family(o, name, kind, help);
        for &(srv, app, st) in &streams {
            if let Some(val) = v(st) {
                sample(o, name, srv, app, st, None, val);
            }
        }
    };

    per_stream(
        o,
        "nginx_rtmp_stream_bytes_received_total",
        "counter",
        "Bytes received for the stream.",
        &|st| Some(st.bytes_in as f64),
    );
    per_stream(
        o,
        "nginx_rtmp_stream_bytes_sent_total",
        "counter",
        "Bytes sent for the stream.",
        &|st| Some(st.bytes_out as f64),
    );

    let br = "nginx_rtmp_stream_bitrate_bits_per_second";
    family(
        o,
        br,
        "gauge",
        "Current bitrate of the stream by direction.",
    );
    for &(srv, app, st) in &streams {
        for (dir, v) in [
            ("in", st.bw_in),
            ("out", st.bw_out),
            ("audio", st.bw_audio),
            ("video", st.bw_video),
        ] {
            sample(o, br, srv, app, st, Some(dir), v as f64);
        }
    }

    per_stream(
        o,
        "nginx_rtmp_stream_clients",
        "gauge",
        "Sessions attached to the stream (publisher and players).",
        &|st| Some(st.nclients() as f64),
    );
    per_stream(
        o,
        "nginx_rtmp_stream_relay_reconnects_total",
        "counter",
        "Reconnects of the stream's pushes (relays) since each started.",
        &|st| {
            let relays = st.clients.iter().filter_map(|c| c.relay.as_ref());
            Some(relays.map(|r| r.reconnects as f64).sum())
        },
    );
    per_stream(
        o,
        "nginx_rtmp_stream_recording_bytes",
        "gauge",
        "Bytes in the files the stream's recorders are writing (none: not recording).",
        &|st| (!st.recorders.is_empty()).then(|| st.recorders.iter().map(|r| r.bytes as f64).sum()),
    );
    per_stream(
        o,
        "nginx_rtmp_stream_publishing",
        "gauge",
        "1 while a publisher is attached.",
        &|st| Some(if st.publishing { 1.0 } else { 0.0 }),
    );
    per_stream(
        o,
        "nginx_rtmp_stream_uptime_seconds",
        "gauge",
        "Seconds since the stream was created.",
        &|st| Some(st.time_ms as f64 / 1000.0),
    );
    if streams.iter().any(|(_, _, st)| st.video.is_some()) {
        per_stream(
            o,
            "nginx_rtmp_stream_video_width",
            "gauge",
            "Video width in pixels.",
            &|st| st.video.as_ref().map(|v| f64::from(v.width)),
        );
        per_stream(
            o,
            "nginx_rtmp_stream_video_height",
            "gauge",
            "Video height in pixels.",
            &|st| st.video.as_ref().map(|v| f64::from(v.height)),
        );
        per_stream(
            o,
            "nginx_rtmp_stream_video_frame_rate",
            "gauge",
            "Video frames per second announced by the publisher.",
            &|st| st.video.as_ref().map(|v| v.frame_rate),
        );
        let name = "nginx_rtmp_stream_video_info";
        family(
            o,
            name,
            "gauge",
            "Video codec of the stream (always 1); hdr is PQ or HLG, empty for none signalled.",
        );
        for &(srv, app, st) in &streams {
            if let Some(v) = &st.video {
                let depth = v.bit_depth.map(|d| d.to_string()).unwrap_or_default();
                info(
                    o,
                    name,
                    (srv, app, st),
                    &[
                        ("codec", &v.codec),
                        ("profile", v.profile.as_deref().unwrap_or_default()),
                        ("level", v.level.as_deref().unwrap_or_default()),
                        ("bit_depth", &depth),
                        ("hdr", v.hdr.as_deref().unwrap_or_default()),
                    ],
                );
            }
        }
    }
    if streams.iter().any(|(_, _, st)| st.audio.is_some()) {
        let name = "nginx_rtmp_stream_audio_info";
        family(o, name, "gauge", "Audio codec of the stream (always 1).");
        for &(srv, app, st) in &streams {
            if let Some(a) = &st.audio {
                let profile = a.profile.as_deref().unwrap_or_default();
                info(
                    o,
                    name,
                    (srv, app, st),
                    &[("codec", &a.codec), ("profile", profile)],
                );
            }
        }
        per_stream(
            o,
            "nginx_rtmp_stream_audio_channels",
            "gauge",
            "Audio channels.",
            &|st| st.audio.as_ref()?.channels.map(f64::from),
        );
        per_stream(
            o,
            "nginx_rtmp_stream_audio_sample_rate_hertz",
            "gauge",
            "Audio sample rate.",
            &|st| st.audio.as_ref()?.sample_rate.map(f64::from),
        );
    }
    out
}

/// An info sample (value 1) of a stream with more labels.
fn info(o: &mut String, metric: &str, at: (usize, &str, &StreamStat), labels: &[(&str, &str)]) {
    let (srv, app, st) = at;
    let _ = write!(o, "{metric}{{server=\"{srv}\",app=\"");
    push_label_value(o, app);
    o.push_str("\",name=\"");
    push_label_value(o, &st.name);
    for (k, v) in labels {
        let _ = write!(o, "\",{k}=\"");
        push_label_value(o, v);
    }
    o.push_str("\"} 1\n");
}

fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = write!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
}

fn scalar(o: &mut String, name: &str, kind: &str, help: &str, v: impl Display) {
    family(o, name, kind, help);
    let _ = writeln!(o, "{name} {v}");
}

fn sample(
    o: &mut String,
    metric: &str,
    srv: usize,
    app: &str,
    st: &StreamStat,
    direction: Option<&str>,
    v: f64,
) {
    let _ = write!(o, "{metric}{{server=\"{srv}\",app=\"");
    push_label_value(o, app);
    o.push_str("\",name=\"");
    push_label_value(o, &st.name);
    o.push('"');
    if let Some(d) = direction {
        let _ = write!(o, ",direction=\"{d}\"");
    }
    o.push_str("} ");
    push_value(o, v);
    o.push('\n');
}

/// Sample values are floats; the format spells the special ones `NaN`, `+Inf`, `-Inf`.
fn push_value(o: &mut String, v: f64) {
    if v.is_nan() {
        o.push_str("NaN");
    } else if v.is_infinite() {
        o.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(o, "{v}");
    }
}

/// Label values escape backslash, double quote and line feed (exposition format 0.0.4).
fn push_label_value(o: &mut String, s: &str) {
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let rep = match c {
            '\\' => "\\\\",
            '"' => "\\\"",
            '\n' => "\\n",
            _ => continue,
        };
        o.push_str(s.get(start..i).unwrap_or_default());
        o.push_str(rep);
        start = i + c.len_utf8();
    }
    o.push_str(s.get(start..).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stat::tests::sample as snapshot;
    use std::collections::{BTreeMap, HashSet};

    /// One parsed sample: metric name, labels, value.
    type Sample = (String, BTreeMap<String, String>, f64);

    /// An independent reader of the text format: checks HELP/TYPE come once per family before
    /// its samples, families are contiguous, label values unescape, values parse as floats.
    fn parse(text: &str) -> Vec<Sample> {
        let mut out = Vec::new();
        let mut typed: HashSet<String> = HashSet::new();
        let mut helped: HashSet<String> = HashSet::new();
        let mut finished: HashSet<String> = HashSet::new();
        let mut current = String::new();
        assert!(text.ends_with('\n'));
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                assert!(helped.insert(name.to_owned()), "HELP twice for {name}");
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut it = rest.split(' ');
                let name = it.next().unwrap();
                let kind = it.next().unwrap();
                assert!(["counter", "gauge"].contains(&kind), "{line}");
                assert!(typed.insert(name.to_owned()), "TYPE twice for {name}");
                if kind == "counter" {
                    assert!(name.ends_with("_total"), "{name}");
                }
                continue;
            }
            assert!(!line.starts_with('#'), "{line}");
            let name_end = line.find(['{', ' ']).unwrap();
            let name = &line[..name_end];
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "{name}"
            );
            assert!(
                typed.contains(name) && helped.contains(name),
                "{name} has no HELP/TYPE"
            );
            if name != current {
                assert!(!finished.contains(name), "family {name} is split");
                finished.insert(std::mem::replace(&mut current, name.to_owned()));
            }
            let mut rest = &line[name_end..];
            let mut labels = BTreeMap::new();
            if let Some(r) = rest.strip_prefix('{') {
                let mut chars = r.char_indices();
                let mut key = String::new();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '}' => {
                            end = Some(i + 1);
                            break;
                        }
                        ',' => {}
                        '=' => {
                            assert_eq!(chars.next().map(|(_, c)| c), Some('"'));
                            let mut val = String::new();
                            loop {
                                match chars.next().unwrap().1 {
                                    '\\' => match chars.next().unwrap().1 {
                                        'n' => val.push('\n'),
                                        '\\' => val.push('\\'),
                                        '"' => val.push('"'),
                                        other => panic!("bad escape \\{other}"),
                                    },
                                    '"' => break,
                                    '\n' => panic!("raw newline in label"),
                                    c => val.push(c),
                                }
                            }
                            assert!(labels.insert(std::mem::take(&mut key), val).is_none());
                        }
                        c => key.push(c),
                    }
                }
                rest = &r[end.unwrap()..];
            }
            let value = rest.strip_prefix(' ').unwrap();
            let v: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value {v:?}")),
            };
            out.push((name.to_owned(), labels, v));
        }
        out
    }

    fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
        samples.iter().find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
    }

    #[test]
    fn global_metrics_parse_back() {
        let p = parse(&render_prometheus(&snapshot()));
        let val = |n: &str| find(&p, n, &[]).unwrap().2;
        assert_eq!(val("nginx_rtmp_uptime_seconds"), 3600.0);
        assert_eq!(val("nginx_rtmp_connections_accepted_total"), 12.0);
        assert_eq!(val("nginx_rtmp_bytes_received_total"), 9_000_000.0);
        assert_eq!(val("nginx_rtmp_bytes_sent_total"), 7_500_000.0);
        assert_eq!(val("nginx_rtmp_workers"), 2.0);
        let info = find(&p, "nginx_rtmp_info", &[("nginx_version", "1.28.3")]).unwrap();
        assert_eq!(info.2, 1.0);
        let bw = find(
            &p,
            "nginx_rtmp_bitrate_bits_per_second",
            &[("direction", "out")],
        )
        .unwrap();
        assert_eq!(bw.2, 2_450_000.0);
        let w = find(&p, "nginx_rtmp_worker_connections", &[("pid", "4243")]).unwrap();
        assert_eq!(w.2, 1.0);
    }

    #[test]
    fn stream_metrics_are_labelled_by_server_app_and_name() {
        let p = parse(&render_prometheus(&snapshot()));
        let cam = [("server", "0"), ("app", "live"), ("name", "cam1")];
        let get = |n: &str, extra: &[(&str, &str)]| {
            let mut l = cam.to_vec();
            l.extend_from_slice(extra);
            find(&p, n, &l).unwrap_or_else(|| panic!("{n}")).2
        };
        assert_eq!(
            get("nginx_rtmp_stream_bytes_received_total", &[]),
            8_000_000.0
        );
        assert_eq!(get("nginx_rtmp_stream_bytes_sent_total", &[]), 7_000_000.0);
        assert_eq!(
            get(
                "nginx_rtmp_stream_bitrate_bits_per_second",
                &[("direction", "in")]
            ),
            2_500_000.0
        );
        assert_eq!(
            get(
                "nginx_rtmp_stream_bitrate_bits_per_second",
                &[("direction", "audio")]
            ),
            128_000.0
        );
        assert_eq!(
            get(
                "nginx_rtmp_stream_bitrate_bits_per_second",
                &[("direction", "video")]
            ),
            2_372_000.0
        );
        assert_eq!(get("nginx_rtmp_stream_clients", &[]), 2.0);
        assert_eq!(get("nginx_rtmp_stream_publishing", &[]), 1.0);
        assert_eq!(get("nginx_rtmp_stream_uptime_seconds", &[]), 65.1);
        assert_eq!(get("nginx_rtmp_stream_video_width", &[]), 1280.0);
        assert_eq!(get("nginx_rtmp_stream_video_height", &[]), 720.0);
        assert_eq!(get("nginx_rtmp_stream_video_frame_rate", &[]), 29.97);
    }

    #[test]
    fn hostile_label_values_are_escaped_and_parse_back() {
        let text = render_prometheus(&snapshot());
        assert!(text.contains("name=\"a<b>&\\\"c'\u{1}\\n\td\""));
        let p = parse(&text);
        let hostile = find(
            &p,
            "nginx_rtmp_stream_clients",
            &[("name", "a<b>&\"c'\u{1}\n\td")],
        )
        .unwrap();
        assert_eq!(hostile.2, 0.0);
        // No video: no width series for it.
        assert!(find(
            &p,
            "nginx_rtmp_stream_video_width",
            &[("name", "a<b>&\"c'\u{1}\n\td")]
        )
        .is_none());
        let mut s = String::new();
        push_label_value(&mut s, "x\\\"\ny");
        assert_eq!(s, "x\\\\\\\"\\ny");
    }

    #[test]
    fn live_mask_off_drops_stream_series() {
        let m = StatMask {
            global: true,
            ..StatMask::default()
        };
        let p = parse(&render_prometheus_masked(&snapshot(), m));
        assert!(p
            .iter()
            .all(|(n, _, _)| !n.starts_with("nginx_rtmp_stream_")));
        assert!(find(&p, "nginx_rtmp_uptime_seconds", &[]).is_some());
    }

    #[test]
    fn empty_snapshot_parses_and_has_no_empty_families() {
        let text = render_prometheus(&StatSnapshot::default());
        let p = parse(&text);
        assert!(!text.contains("nginx_rtmp_stream_"));
        assert!(!text.contains("nginx_rtmp_worker_connections"));
        assert!(find(&p, "nginx_rtmp_workers", &[]).is_some());
    }

    #[test]
    fn special_float_values_use_the_formats_spelling() {
        let mut s = String::new();
        push_value(&mut s, f64::NAN);
        s.push(' ');
        push_value(&mut s, f64::INFINITY);
        s.push(' ');
        push_value(&mut s, f64::NEG_INFINITY);
        s.push(' ');
        push_value(&mut s, 0.5);
        assert_eq!(s, "NaN +Inf -Inf 0.5");
    }
}
