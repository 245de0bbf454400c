//! AMF0 (with AMF3 inside: the 0x11 switch marker and type-17 commands): decode_all, the
//! command parser with and without the AMF3 wrapper byte, the data-message helpers, and the
//! name checks applied to decoded strings. Input: an AMF payload as a client sends it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_rtmp_rs::media::metadata::parse_metadata;
use nginx_rtmp_rs::rtmp::amf0::{self, Amf0Value, Decoder};
use nginx_rtmp_rs::rtmp::command::{
    app_from_tc_url, escape_for_log, parse_command, strip_set_data_frame, validate_name, Command,
    NameKind, StreamName,
};

fn check_name(s: &str) {
    let _ = escape_for_log(s);
    let _ = validate_name(NameKind::App, s);
    let _ = validate_name(NameKind::Stream, s);
    let _ = app_from_tc_url(s);
    let _ = StreamName::parse(s);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(values) = amf0::decode_all(data) {
        // Encoding is stable: what we encode decodes and encodes to the same bytes.
        let mut once = Vec::new();
        amf0::encode_all(&values, &mut once);
        let again = amf0::decode_all(&once).expect("our own encoding decodes");
        let mut twice = Vec::new();
        amf0::encode_all(&again, &mut twice);
        assert_eq!(once, twice, "encode(decode(encode(v))) == encode(v)");
        for v in &values {
            if let Some(s) = v.as_str() {
                check_name(s);
            }
            let _ = (v.type_name(), v.as_f64(), v.as_bool(), v.get("app"));
        }
    }

    let mut d = Decoder::new(data);
    while let Ok(Some(v)) = d.next_value() {
        assert!(d.position() <= data.len());
        if let Amf0Value::String(s) = &v {
            check_name(s);
        }
    }

    for amf3_wrapped in [false, true] {
        if let Ok(cmd) = parse_command(data, amf3_wrapped) {
            let _ = (cmd.transaction_id(), cmd.name().len());
            if let Command::Connect(c) = &cmd {
                check_name(&c.app);
                check_name(&c.tc_url);
            }
        }
    }
    let _ = strip_set_data_frame(data);
    let _ = parse_metadata(data);
});
