//! The C module's `/stat` XML (ngx_rtmp_stat_module.c), element for element and line break for
//! line break, so `stat.xsl` and the scripts users wrote against it keep working.

use std::fmt::{Display, Write};

use super::{estimated_len, AudioMeta, ClientStat, StatMask, StatSnapshot, StreamStat, VideoMeta};

/// Renders the snapshot as the C module's XML document (lines end with "\r\n").
pub fn render_xml(s: &StatSnapshot, mask: StatMask, stylesheet: Option<&str>) -> String {
    let mut out = String::with_capacity(estimated_len(s));
    out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\" ?>\r\n");
    if let Some(href) = stylesheet.filter(|h| !h.is_empty()) {
        out.push_str("<?xml-stylesheet type=\"text/xsl\" href=\"");
        push_escaped(&mut out, href);
        out.push_str("\" ?>\r\n");
    }
    out.push_str("<rtmp>\r\n");
    text_line(&mut out, "nginx_version", &s.nginx_version);
    text_line(&mut out, "nginx_rtmp_version", &s.module_version);
    text_line(&mut out, "compiler", &s.compiler);
    text_line(&mut out, "built", &s.built);
    num_line(&mut out, "pid", s.pid);
    num_line(&mut out, "uptime", s.uptime_s);
    num_line(&mut out, "naccepted", s.naccepted);
    num_line(&mut out, "bw_in", s.bw_in);
    num_line(&mut out, "bytes_in", s.bytes_in);
    num_line(&mut out, "bw_out", s.bw_out);
    num_line(&mut out, "bytes_out", s.bytes_out);

    for srv in &s.servers {
        out.push_str("<server>\r\n");
        for app in &srv.applications {
            out.push_str("<application>\r\n");
            text_line(&mut out, "name", &app.name);
            if mask.live && app.live {
                out.push_str("<live>\r\n");
                let mut total: usize = 0;
                for st in &app.streams {
                    stream(&mut out, st, mask);
                    total = total.saturating_add(st.nclients());
                }
                num_line(&mut out, "nclients", total);
                out.push_str("</live>\r\n");
            }
            out.push_str("</application>\r\n");
        }
        out.push_str("</server>\r\n");
    }
    let execs: Vec<_> = s.workers.iter().flat_map(|w| &w.execs).collect();
    if !execs.is_empty() {
        // Ours (the C module has none): the processes of every worker.
        out.push_str("<execs>\r\n");
        for e in execs {
            out.push_str("<exec>");
            num(&mut out, "pid", e.pid);
            text(&mut out, "directive", &e.directive);
            text(&mut out, "app", &e.app);
            text(&mut out, "name", &e.name);
            text(&mut out, "command", &e.command);
            num(&mut out, "restarts", e.restarts);
            out.push_str("</exec>\r\n");
        }
        out.push_str("</execs>\r\n");
    }
    out.push_str("</rtmp>\r\n");
    out
}

fn stream(out: &mut String, st: &StreamStat, mask: StatMask) {
    out.push_str("<stream>\r\n");
    text_line(out, "name", &st.name);
    // The C module ends <time> without a line break.
    num(out, "time", st.time_ms);
    num_line(out, "bw_in", st.bw_in);
    num_line(out, "bytes_in", st.bytes_in);
    num_line(out, "bw_out", st.bw_out);
    num_line(out, "bytes_out", st.bytes_out);
    num_line(out, "bw_audio", st.bw_audio);
    num_line(out, "bw_video", st.bw_video);
    if mask.clients {
        for c in &st.clients {
            client(out, c);
        }
    }
    if st.video.is_some() || st.audio.is_some() {
        meta(out, st.video.as_ref(), st.audio.as_ref());
    }
    // Ours (in the maintained fork's shape): the files being recorded.
    if !st.recorders.is_empty() {
        out.push_str("<recorders>");
        num(out, "count", st.recorders.len());
        for r in &st.recorders {
            out.push_str("<recorder>");
            text(out, "id", &r.name);
            text(out, "file", &r.path);
            num(out, "size", r.bytes);
            num(out, "time", r.time_ms);
            out.push_str("</recorder>");
        }
        out.push_str("</recorders>\r\n");
    }
    num_line(out, "nclients", st.nclients());
    if st.publishing {
        out.push_str("<publishing/>\r\n");
    }
    if st.active {
        out.push_str("<active/>\r\n");
    }
    out.push_str("</stream>\r\n");
}

fn client(out: &mut String, c: &ClientStat) {
    out.push_str("<client>");
    num(out, "id", c.id);
    text(out, "address", &c.address);
    num(out, "time", c.time_ms);
    for (tag, v) in [
        ("flashver", &c.flashver),
        ("pageurl", &c.pageurl),
        ("swfurl", &c.swfurl),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            text(out, tag, v);
        }
    }
    num(out, "dropped", c.dropped);
    num(out, "avsync", c.avsync);
    num(out, "timestamp", c.timestamp);
    if c.publishing {
        out.push_str("<publishing/>");
    }
    if c.active {
        out.push_str("<active/>");
    }
    // Ours: relays (pushes) say how often they reconnected.
    if let Some(r) = &c.relay {
        out.push_str("<relay>");
        num(out, "reconnects", r.reconnects);
        out.push_str("</relay>");
    }
    out.push_str("</client>\r\n");
}

/// The C module always writes both `<video>` and `<audio>` once a publisher exists, with zero
/// width/height/frame_rate for audio-only streams; readers rely on the paths being there.
fn meta(out: &mut String, video: Option<&VideoMeta>, audio: Option<&AudioMeta>) {
    out.push_str("<meta><video>");
    let none = VideoMeta::default();
    let v = video.unwrap_or(&none);
    num(out, "width", v.width);
    num(out, "height", v.height);
    // The C module stores and prints the frame rate as an integer.
    num(out, "frame_rate", frame_rate_int(v.frame_rate));
    if !v.codec.is_empty() {
        text(out, "codec", &v.codec);
    }
    if let Some(p) = v.profile.as_deref().filter(|p| !p.is_empty()) {
        text(out, "profile", p);
    }
    if let Some(c) = v.compat {
        num(out, "compat", c);
    }
    if let Some(l) = v.level.as_deref().filter(|l| !l.is_empty()) {
        text(out, "level", l);
    }
    // Ours, last in <video> (stat.xsl reads the C module's paths only): an HDR transfer.
    if let Some(h) = v.hdr.as_deref().filter(|h| !h.is_empty()) {
        text(out, "hdr", h);
    }
    out.push_str("</video><audio>");
    if let Some(a) = audio {
        if !a.codec.is_empty() {
            text(out, "codec", &a.codec);
        }
        if let Some(p) = a.profile.as_deref().filter(|p| !p.is_empty()) {
            text(out, "profile", p);
        }
        if let Some(ch) = a.channels.filter(|&c| c != 0) {
            num(out, "channels", ch);
        }
        if let Some(sr) = a.sample_rate.filter(|&r| r != 0) {
            num(out, "sample_rate", sr);
        }
    }
    out.push_str("</audio></meta>\r\n");
}

/// Rounded to the nearest integer; NaN, negative and absurd values become 0.
fn frame_rate_int(f: f64) -> u64 {
    if f.is_finite() && f > 0.0 && f < 1.0e9 {
        f.round() as u64
    } else {
        0
    }
}

fn num(out: &mut String, tag: &str, v: impl Display) {
    // Writing to a String cannot fail.
    let _ = write!(out, "<{tag}>{v}</{tag}>");
}

fn num_line(out: &mut String, tag: &str, v: impl Display) {
    let _ = write!(out, "<{tag}>{v}</{tag}>\r\n");
}

fn text(out: &mut String, tag: &str, v: &str) {
    out.push('<');
    out.push_str(tag);
    out.push('>');
    push_escaped(out, v);
    out.push_str("</");
    out.push_str(tag);
    out.push('>');
}

fn text_line(out: &mut String, tag: &str, v: &str) {
    text(out, tag, v);
    out.push_str("\r\n");
}

/// Appends `s` escaped for XML text and attribute values: the five markup characters become
/// entities; control characters other than tab, and U+FFFE/U+FFFF (not XML characters), are
/// dropped so a hostile stream name cannot break the document or spoof lines.
pub(crate) fn push_escaped(out: &mut String, s: &str) {
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let rep = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' => "&quot;",
            '\'' => "&apos;",
            '\t' => continue,
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => "",
            _ => continue,
        };
        out.push_str(s.get(start..i).unwrap_or_default());
        out.push_str(rep);
        start = i + c.len_utf8();
    }
    out.push_str(s.get(start..).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stat::tests::sample;
    use crate::stat::{AppStat, ServerStat};

    fn doc(xml: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}\n{xml}"))
    }

    /// Text of the element at a slash-separated path of child element names from `node`.
    fn at<'a>(node: roxmltree::Node<'a, 'a>, path: &str) -> Option<roxmltree::Node<'a, 'a>> {
        let mut n = node;
        for part in path.split('/') {
            n = n.children().find(|c| c.has_tag_name(part))?;
        }
        Some(n)
    }

    fn text_at<'a>(node: roxmltree::Node<'a, 'a>, path: &str) -> Option<&'a str> {
        at(node, path).map(|n| n.text().unwrap_or(""))
    }

    fn child_names<'a>(node: roxmltree::Node<'a, 'a>) -> Vec<&'a str> {
        node.children()
            .filter(|c| c.is_element())
            .map(|c| c.tag_name().name())
            .collect()
    }

    #[test]
    fn header_elements_come_in_the_c_modules_order() {
        let xml = render_xml(&sample(), StatMask::ALL, None);
        let d = doc(&xml);
        let root = d.root_element();
        assert_eq!(root.tag_name().name(), "rtmp");
        assert_eq!(
            child_names(root),
            [
                "nginx_version",
                "nginx_rtmp_version",
                "compiler",
                "built",
                "pid",
                "uptime",
                "naccepted",
                "bw_in",
                "bytes_in",
                "bw_out",
                "bytes_out",
                "server",
                "server"
            ]
        );
        assert_eq!(text_at(root, "nginx_version"), Some("1.28.3"));
        assert_eq!(text_at(root, "nginx_rtmp_version"), Some("0.1.0"));
        assert_eq!(text_at(root, "built"), Some("Jan  1 2025 00:00:00"));
        assert_eq!(text_at(root, "uptime"), Some("3600"));
        assert_eq!(text_at(root, "bw_in"), Some("2600000"));
        assert_eq!(text_at(root, "bytes_out"), Some("7500000"));
    }

    #[test]
    fn stream_paths_read_by_stat_xsl_are_present() {
        let xml = render_xml(&sample(), StatMask::ALL, None);
        let d = doc(&xml);
        let r = d.root_element();
        let app = at(r, "server/application").unwrap();
        assert_eq!(text_at(app, "name"), Some("live"));
        assert_eq!(text_at(app, "live/nclients"), Some("2"));
        let st = at(app, "live/stream").unwrap();
        assert_eq!(
            child_names(st),
            [
                "name",
                "time",
                "bw_in",
                "bytes_in",
                "bw_out",
                "bytes_out",
                "bw_audio",
                "bw_video",
                "client",
                "client",
                "meta",
                "nclients",
                "publishing",
                "active"
            ]
        );
        assert_eq!(text_at(st, "time"), Some("65100"));
        assert_eq!(text_at(st, "bw_audio"), Some("128000"));
        assert_eq!(text_at(st, "meta/video/width"), Some("1280"));
        assert_eq!(text_at(st, "meta/video/height"), Some("720"));
        assert_eq!(text_at(st, "meta/video/frame_rate"), Some("30"));
        assert_eq!(text_at(st, "meta/video/codec"), Some("H264"));
        assert_eq!(text_at(st, "meta/video/profile"), Some("High"));
        assert_eq!(text_at(st, "meta/video/compat"), Some("0"));
        assert_eq!(text_at(st, "meta/video/level"), Some("3.1"));
        assert_eq!(text_at(st, "meta/audio/codec"), Some("AAC"));
        assert_eq!(text_at(st, "meta/audio/profile"), Some("LC"));
        assert_eq!(text_at(st, "meta/audio/channels"), Some("2"));
        assert_eq!(text_at(st, "meta/audio/sample_rate"), Some("44100"));
        assert_eq!(text_at(st, "nclients"), Some("2"));
    }

    #[test]
    fn clients_have_the_c_fields_and_flags_only_when_true() {
        let xml = render_xml(&sample(), StatMask::ALL, None);
        let d = doc(&xml);
        let st = at(d.root_element(), "server/application/live/stream").unwrap();
        let clients: Vec<_> = st.children().filter(|c| c.has_tag_name("client")).collect();
        // The publisher came over TLS: the C module's tree has no place for it.
        assert!(!xml.contains("TLSv1") && !xml.contains("cam.example.com"));
        assert_eq!(
            child_names(clients[0]),
            [
                "id",
                "address",
                "time",
                "flashver",
                "swfurl",
                "dropped",
                "avsync",
                "timestamp",
                "publishing",
                "active"
            ]
        );
        assert_eq!(text_at(clients[0], "avsync"), Some("-12"));
        assert_eq!(
            child_names(clients[1]),
            [
                "id",
                "address",
                "time",
                "flashver",
                "pageurl",
                "dropped",
                "avsync",
                "timestamp",
                "active"
            ]
        );
        assert_eq!(
            text_at(clients[1], "pageurl"),
            Some("http://example.com/?a=1&b=<2>")
        );
        assert_eq!(text_at(clients[1], "address"), Some("[2001:db8::1]"));
        assert!(at(clients[1], "publishing").is_none());
    }

    #[test]
    fn hostile_stream_name_is_escaped_and_control_characters_dropped() {
        let xml = render_xml(&sample(), StatMask::ALL, None);
        assert!(xml.contains("<name>a&lt;b&gt;&amp;&quot;c&apos;\td</name>\r\n"));
        let d = doc(&xml);
        let names: Vec<_> = d
            .descendants()
            .filter(|n| n.has_tag_name("stream"))
            .filter_map(|n| text_at(n, "name"))
            .collect();
        assert_eq!(names, ["cam1", "a<b>&\"c'\td"]);
        // The second stream has no publisher: no meta, no flags.
        let st = d
            .descendants()
            .filter(|n| n.has_tag_name("stream"))
            .nth(1)
            .unwrap();
        assert!(at(st, "meta").is_none() && at(st, "publishing").is_none());
    }

    #[test]
    fn lines_end_with_crlf_like_the_c_module() {
        let xml = render_xml(&sample(), StatMask::ALL, None);
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\" ?>\r\n<rtmp>\r\n"));
        assert!(xml.ends_with("</rtmp>\r\n"));
        assert!(!xml.replace("\r\n", "").contains('\n'));
        assert!(xml.contains("<stream>\r\n<name>cam1</name>\r\n<time>65100</time><bw_in>"));
        assert!(xml.contains("<nclients>2</nclients>\r\n<publishing/>\r\n<active/>\r\n</stream>"));
    }

    #[test]
    fn stylesheet_processing_instruction_is_added_and_escaped() {
        let xml = render_xml(&sample(), StatMask::ALL, Some("/stat.xsl?a=1&b=\"x\""));
        assert!(xml.contains(
            "<?xml-stylesheet type=\"text/xsl\" href=\"/stat.xsl?a=1&amp;b=&quot;x&quot;\" ?>\r\n"
        ));
        let d = doc(&xml);
        let pi = d
            .root()
            .children()
            .find_map(|n| n.pi())
            .expect("stylesheet PI");
        assert_eq!(pi.target, "xml-stylesheet");
        assert!(!render_xml(&sample(), StatMask::ALL, Some("")).contains("xml-stylesheet"));
    }

    #[test]
    fn live_mask_off_hides_streams_but_keeps_applications() {
        let m = StatMask {
            global: true,
            ..StatMask::default()
        };
        let xml = render_xml(&sample(), m, None);
        let d = doc(&xml);
        assert!(d.descendants().all(|n| !n.has_tag_name("live")));
        assert_eq!(
            d.descendants()
                .filter(|n| n.has_tag_name("application"))
                .count(),
            3
        );
    }

    #[test]
    fn clients_mask_off_hides_clients_but_keeps_counts() {
        let m = StatMask {
            live: true,
            ..StatMask::default()
        };
        let xml = render_xml(&sample(), m, None);
        let d = doc(&xml);
        assert!(d.descendants().all(|n| !n.has_tag_name("client")));
        let st = at(d.root_element(), "server/application/live/stream").unwrap();
        assert_eq!(text_at(st, "nclients"), Some("2"));
    }

    #[test]
    fn application_without_live_has_no_live_element() {
        let xml = render_xml(&sample(), StatMask::ALL, None);
        assert!(xml.contains("<application>\r\n<name>vod</name>\r\n</application>\r\n"));
        assert!(xml.contains(
            "<name>empty</name>\r\n<live>\r\n<nclients>0</nclients>\r\n</live>\r\n</application>"
        ));
    }

    #[test]
    fn audio_only_stream_still_has_video_element_with_zeros() {
        let mut s = sample();
        let st = &mut s.servers[0].applications[0].streams[0];
        st.video = None;
        let xml = render_xml(&s, StatMask::ALL, None);
        assert!(xml.contains(
            "<meta><video><width>0</width><height>0</height><frame_rate>0</frame_rate></video><audio><codec>AAC</codec>"
        ));
        doc(&xml);
    }

    #[test]
    fn empty_snapshot_is_a_valid_document() {
        let xml = render_xml(&Default::default(), StatMask::ALL, None);
        let d = doc(&xml);
        assert_eq!(child_names(d.root_element()).len(), 11);
    }

    #[test]
    fn weird_frame_rates_do_not_panic() {
        for f in [f64::NAN, f64::INFINITY, -1.0, 1e300, 0.4] {
            assert_eq!(frame_rate_int(f), 0, "{f}");
        }
        assert_eq!(frame_rate_int(59.94), 60);
    }

    #[test]
    fn escaping_keeps_non_ascii_and_drops_noncharacters() {
        let mut out = String::new();
        push_escaped(&mut out, "Ünï😀\u{7f}\u{85}\u{FFFF}\r\n\0x");
        assert_eq!(out, "Ünï😀x");
    }

    #[test]
    fn many_servers_render_in_order() {
        let s = StatSnapshot {
            servers: (0..3)
                .map(|i| ServerStat {
                    index: i,
                    applications: vec![AppStat {
                        name: format!("app{i}"),
                        ..AppStat::default()
                    }],
                })
                .collect(),
            ..StatSnapshot::default()
        };
        let xml = render_xml(&s, StatMask::ALL, None);
        let d = doc(&xml);
        let names: Vec<_> = d
            .descendants()
            .filter(|n| n.has_tag_name("application"))
            .filter_map(|n| text_at(n, "name"))
            .collect();
        assert_eq!(names, ["app0", "app1", "app2"]);
    }
}
