//! The configuration model: RtmpConf::apply with directive names from the directive table
//! (or free text) and fuzzed arguments at three levels, then merge, check and resolve, as the
//! glue does after parsing; parse_listen on the same arguments; the http/main-level confs.
//! Input: lines; a line's first byte picks the directive (an index into DIRECTIVES; past its end,
//! the name is the first word), the argument count picks the level; the rest of the line is the
//! whitespace-separated arguments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_rtmp_rs::conf::{parse_listen, HttpConf, MainConf, RtmpConf, DIRECTIVES};

fuzz_target!(|data: &[u8]| {
    let mut levels = [
        RtmpConf::default(),
        RtmpConf::default(),
        RtmpConf::default(),
    ];
    let mut http = HttpConf::default();
    let mut main = MainConf::default();
    for line in data.split(|b| *b == b'\n').take(64) {
        let Some((&pick, rest)) = line.split_first() else {
            continue;
        };
        let rest = String::from_utf8_lossy(rest);
        let mut words: Vec<&str> = rest.split_ascii_whitespace().collect();
        let name = match DIRECTIVES.get(usize::from(pick)) {
            Some(d) => d.name,
            None if words.is_empty() => continue,
            None => words.remove(0),
        };
        let level = &mut levels[words.len() % 3];
        let _ = level.apply(name, &words);
        let _ = http.apply(name, &words);
        let _ = main.apply(name, &words);
        let _ = parse_listen(&words);
    }
    let [rtmp, mut server, mut app] = levels;
    server.merge_from(&rtmp);
    app.merge_from(&server);
    for level in [&rtmp, &server, &app] {
        let _ = level.check();
        let _ = level.resolve();
    }
    let mut http_child = HttpConf::default();
    http_child.merge_from(&http);
    let _ = main.resolve();
});
