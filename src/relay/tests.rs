use std::io::IoSlice;
use std::rc::Rc;

use super::*;
use crate::conf::parse_rtmp_url;
use crate::conf::RtmpConf;
use crate::live::StreamKey;
use crate::server::{AppConfig, Outcome, ServerConfig, Worker};

fn target(url: &str) -> RelayTarget {
    RelayTarget::new(parse_rtmp_url(url).unwrap())
}

#[test]
fn push_names_default_to_the_url_then_the_local_stream() {
    let s = RelaySpec::for_stream(&target("rtmp://10.0.0.1:1940/remote"), "live", "cam").unwrap();
    assert_eq!((s.app.as_str(), s.name.as_str()), ("remote", "cam"));
    assert_eq!(s.tc_url, "rtmp://10.0.0.1:1940/remote");
    assert_eq!(s.port, 1940);
    let s = RelaySpec::for_stream(&target("rtmp://h/a/fixed"), "live", "cam").unwrap();
    assert_eq!((s.app.as_str(), s.name.as_str()), ("a", "fixed"));
    assert_eq!(s.tc_url, "rtmp://h:1935/a");
    let s = RelaySpec::for_stream(&target("rtmp://h"), "live", "cam").unwrap();
    assert_eq!((s.app.as_str(), s.name.as_str()), ("live", "cam"));
    assert!(!s.tls);
    let s = RelaySpec::for_stream(&target("rtmps://h/app"), "live", "cam").unwrap();
    assert!(s.tls);
    assert_eq!(s.tc_url, "rtmps://h:443/app");
    let mut t = target("rtmp://h/a/x");
    t.app = Some("b".into());
    t.play_path = Some("key".into());
    t.tc_url = Some("rtmp://front/b".into());
    let s = RelaySpec::for_stream(&t, "live", "cam").unwrap();
    assert_eq!(
        (s.app.as_str(), s.name.as_str(), s.tc_url.as_str()),
        ("b", "key", "rtmp://front/b")
    );
}

#[test]
fn name_key_selects_the_local_stream() {
    let mut t = target("rtmp://h/a");
    t.name = Some("cam".into());
    assert!(RelaySpec::for_stream(&t, "live", "cam").is_some());
    assert!(RelaySpec::for_stream(&t, "live", "other").is_none());
}

fn our_server() -> Rc<ServerConfig> {
    let server = RtmpConf::default();
    let mut app = RtmpConf::default();
    app.apply("live", &["on"]).unwrap();
    app.merge_from(&server);
    Rc::new(ServerConfig::new(
        0,
        server.resolve(),
        vec![AppConfig {
            name: "remote".into(),
            settings: app.resolve(),
            recorders: Vec::new(),
        }],
    ))
}

/// Moves bytes between the push client and a whole worker (our server as the target) until
/// neither has anything to say; returns whether `publish` was accepted meanwhile.
fn pump(client: &mut RelayClient, w: &mut Worker, now: &mut u64) -> Result<bool, RelayError> {
    let mut accepted = false;
    for _ in 0..50 {
        let mut moved = false;
        if let Some(b) = client.take_output() {
            let mut o = Outcome::default();
            w.on_input(7, &b, *now, &mut o);
            moved = true;
        }
        let mut slices = [IoSlice::new(&[]); 64];
        let n = w.output_slices(7, &mut slices);
        let bytes: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
        w.advance(7, bytes.len());
        if !bytes.is_empty() {
            moved = true;
            if client.feed(&bytes)? == Progress::Publishing {
                accepted = true;
            }
        }
        *now += 1;
        if !moved {
            break;
        }
    }
    Ok(accepted)
}

#[test]
fn push_client_publishes_on_our_own_server() {
    let mut w = Worker::new();
    let mut now = 1000;
    let mut rnd = |b: &mut [u8]| b.fill(7);
    w.connect(7, None, our_server(), now, &mut rnd);
    let spec = RelaySpec::for_stream(&target("rtmp://127.0.0.1/remote"), "live", "cam").unwrap();
    let mut client = RelayClient::new(spec, 4096, 0, &mut rnd);
    assert!(pump(&mut client, &mut w, &mut now).unwrap());
    assert!(client.is_streaming());
    assert!(w.hub().is_publishing(&StreamKey::new("remote", "cam")));
    // The goodbye is accepted too (FCUnpublish, deleteStream end the publish).
    let bye = client.goodbye().unwrap();
    let mut o = Outcome::default();
    w.on_input(7, &bye, now, &mut o);
    assert!(!w.hub().is_publishing(&StreamKey::new("remote", "cam")));
}

#[test]
fn refused_connect_is_an_error_with_the_targets_reason() {
    let mut w = Worker::new();
    let mut now = 1000;
    let mut rnd = |b: &mut [u8]| b.fill(3);
    w.connect(7, None, our_server(), now, &mut rnd);
    let spec = RelaySpec::for_stream(&target("rtmp://127.0.0.1/nosuchapp"), "live", "cam").unwrap();
    let mut client = RelayClient::new(spec, 4096, 0, &mut rnd);
    let err = pump(&mut client, &mut w, &mut now).unwrap_err();
    assert!(
        matches!(
            err,
            RelayError::Refused {
                command: "connect",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn garbage_from_the_target_is_an_error_not_a_panic() {
    let mut rnd = |b: &mut [u8]| b.fill(1);
    let spec = RelaySpec::for_stream(&target("rtmp://h/a"), "live", "cam").unwrap();
    let mut client = RelayClient::new(spec, 4096, 0, &mut rnd);
    assert!(client.feed(&[9, 9, 9]).is_err());
}
