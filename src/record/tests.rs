use std::collections::HashMap;

use super::*;
use crate::conf::RtmpConf;
use crate::rtmp::amf0;

const AVC_HEADER: &[u8] = &[
    0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 4, 0x68, 0xee,
    0x3c, 0x80,
];
const AAC_HEADER: &[u8] = &[0xaf, 0, 0x12, 0x10];

fn video(key: bool, len: usize) -> Bytes {
    let mut b = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    b.extend_from_slice(&((len - 9) as u32).to_be_bytes());
    b.push(if key { 0x65 } else { 0x41 });
    b.resize(len, 0x5a);
    Bytes::from(b)
}

fn audio() -> Bytes {
    Bytes::from(vec![0xaf, 1, 0x21, 0x21, 0x21, 0x21])
}

fn settings(directives: &[(&str, &[&str])]) -> RecordSettings {
    let mut c = RtmpConf::default();
    for (name, args) in directives {
        c.apply(name, args).unwrap();
    }
    let mut r = c.resolve().record;
    r.path = "/rec".into();
    r
}

fn no_file(_: &Path) -> Option<ExistingFile> {
    None
}

/// A disk that performs operations at once, and the recorder's events.
#[derive(Default)]
struct Disk {
    files: HashMap<PathBuf, Vec<u8>>,
    open: Vec<PathBuf>,
}

impl Disk {
    fn apply(&mut self, rec: &mut Recorder, ops: &mut Vec<FileOp>) {
        let n = ops.len();
        for op in ops.drain(..) {
            match op {
                FileOp::CreateDir { .. } => {}
                FileOp::OpenRecording { path, append, .. } => {
                    assert!(!self.open.contains(&path), "{path:?} opened twice");
                    let f = self.files.entry(path.clone()).or_default();
                    if !append {
                        f.clear();
                    }
                    self.open.push(path);
                }
                FileOp::Append { path, data } => {
                    assert!(self.open.contains(&path), "append to closed {path:?}");
                    self.files.get_mut(&path).unwrap().extend_from_slice(&data);
                }
                FileOp::WriteAt { path, offset, data } => {
                    let f = self.files.get_mut(&path).unwrap();
                    let at = offset as usize;
                    f[at..at + data.len()].copy_from_slice(&data);
                }
                FileOp::Close { path } => self.open.retain(|p| *p != path),
                other => panic!("a recorder never asks for {other:?}"),
            }
        }
        rec.on_written(n);
    }
}

/// A tag read back: (type, timestamp, offset, body).
type Tag = (u8, u32, usize, Vec<u8>);

/// Reads a whole FLV file, checking every PreviousTagSize.
fn read_flv(data: &[u8]) -> Vec<Tag> {
    assert_eq!(&data[..3], b"FLV");
    let mut tags = Vec::new();
    let mut pos = 13;
    while pos < data.len() {
        let h = &data[pos..pos + 11];
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let body = data[pos + 11..pos + 11 + len].to_vec();
        let trailer = u32::from_be_bytes(data[pos + 11 + len..pos + 15 + len].try_into().unwrap());
        assert_eq!(trailer as usize, len + 11, "PreviousTagSize at {pos}");
        tags.push((h[0], ts, pos, body));
        pos += 15 + len;
    }
    assert_eq!(pos, data.len());
    tags
}

fn metadata(tags: &[Tag]) -> Amf0Value {
    assert_eq!(tags[0].0, flv::TAG_SCRIPT);
    amf0::decode_all(&tags[0].3).unwrap().remove(1)
}

fn now(mono_ms: u64) -> Now {
    Now {
        mono_ms,
        unix_ms: 1_796_573_148_000 + mono_ms,
    }
}

/// Feeds `secs` seconds of 25 fps video (a keyframe every `gop` frames) and audio, starting
/// at media time `from` ms (the clock follows the media).
fn feed(rec: &mut Recorder, disk: &mut Disk, from: u32, secs: u32, gop: u32) {
    let mut ops = Vec::new();
    for i in 0..secs * 25 {
        let t = from + i * 40;
        rec.on_media(
            true,
            t,
            &video(i % gop == 0, 1000),
            now(u64::from(t)),
            &mut ops,
        );
        rec.on_media(false, t, &audio(), now(u64::from(t)), &mut ops);
        disk.apply(rec, &mut ops);
    }
}

fn start(rec: &mut Recorder, disk: &mut Disk, t: u32) {
    let mut ops = Vec::new();
    rec.on_metadata(&{
        let mut p = Vec::new();
        amf0::write_string(&mut p, "onMetaData");
        amf0::encode(
            &Amf0Value::EcmaArray(vec![("width".into(), Amf0Value::Number(1280.0))]),
            &mut p,
        );
        p
    });
    rec.on_media(
        true,
        t,
        &Bytes::from_static(AVC_HEADER),
        now(u64::from(t)),
        &mut ops,
    );
    rec.on_media(
        false,
        t,
        &Bytes::from_static(AAC_HEADER),
        now(u64::from(t)),
        &mut ops,
    );
    disk.apply(rec, &mut ops);
}

/// A recorder with `directives` fed `secs` seconds of media (a keyframe every `gop` frames)
/// from time 0 and finished.
fn recorded(directives: &[(&str, &[&str])], secs: u32, gop: u32) -> (Recorder, Disk) {
    let conf = settings(directives);
    let mut rec = Recorder::new("", &conf, "cam", 0, no_file);
    let mut disk = Disk::default();
    start(&mut rec, &mut disk, 0);
    feed(&mut rec, &mut disk, 0, secs, gop);
    finish(&mut rec, &mut disk);
    (rec, disk)
}

fn finish(rec: &mut Recorder, disk: &mut Disk) {
    let mut ops = Vec::new();
    rec.finish(now(0), &mut ops);
    disk.apply(rec, &mut ops);
    assert!(rec.is_done());
}

#[test]
fn a_recording_starts_on_a_keyframe_and_closes_indexed() {
    let conf = settings(&[("record", &["all"])]);
    let mut rec = Recorder::new("", &conf, "cam", 0, no_file);
    let mut disk = Disk::default();
    start(&mut rec, &mut disk, 5000);
    // Audio and inter frames before the first keyframe are not recorded.
    let mut ops = Vec::new();
    rec.on_media(false, 5000, &audio(), now(5000), &mut ops);
    rec.on_media(true, 5010, &video(false, 500), now(5010), &mut ops);
    assert!(ops.is_empty(), "{ops:?}");
    feed(&mut rec, &mut disk, 5040, 6, 50);
    finish(&mut rec, &mut disk);

    let events = rec.take_events();
    let path = PathBuf::from("/rec/cam.flv");
    assert_eq!(
        events[0],
        RecordEvent::Started {
            recorder: String::new(),
            path: path.clone()
        }
    );
    let RecordEvent::Done {
        path: done,
        bytes,
        duration_ms,
        ..
    } = &events[1]
    else {
        panic!("{events:?}")
    };
    assert_eq!(done, &path);
    let data = &disk.files[&path];
    assert_eq!(*bytes, data.len() as u64);
    assert_eq!(*duration_ms, 5960);

    let tags = read_flv(data);
    assert_eq!(data[4], 5, "audio and video flags");
    // onMetaData, then the codec headers at time zero, then the keyframe.
    assert_eq!(&tags[1].3[..], AVC_HEADER);
    assert_eq!(&tags[2].3[..], AAC_HEADER);
    assert_eq!((tags[1].1, tags[2].1, tags[3].1), (0, 0, 0));
    assert_eq!(tags[3].3[0], 0x17);
    let meta = metadata(&tags);
    assert_eq!(meta.get("width").and_then(Amf0Value::as_f64), Some(1280.0));
    assert_eq!(meta.get("duration").and_then(Amf0Value::as_f64), Some(5.96));
    assert_eq!(
        meta.get("filesize").and_then(Amf0Value::as_f64),
        Some(data.len() as f64)
    );
    let kf = meta.get("keyframes").unwrap();
    let (Some(Amf0Value::StrictArray(pos)), Some(Amf0Value::StrictArray(times))) =
        (kf.get("filepositions"), kf.get("times"))
    else {
        panic!("{kf:?}")
    };
    assert_eq!(pos.len(), 3, "keyframes at 0, 2 and 4 s");
    for (p, t) in pos.iter().zip(times) {
        let tag = tags
            .iter()
            .find(|tag| tag.2 as f64 == p.as_f64().unwrap())
            .unwrap();
        assert_eq!((tag.0, tag.3[0]), (flv::TAG_VIDEO, 0x17));
        assert_eq!(f64::from(tag.1) / 1000.0, t.as_f64().unwrap());
    }
    // Timestamps never go back.
    assert!(tags.windows(2).all(|w| w[0].1 <= w[1].1));
}

#[test]
fn record_interval_cuts_unique_files_on_keyframes() {
    let conf = settings(&[
        ("record", &["all"]),
        ("record_interval", &["4s"]),
        ("record_unique", &["on"]),
    ]);
    let mut rec = Recorder::new("rec1", &conf, "cam", 0, no_file);
    let mut disk = Disk::default();
    start(&mut rec, &mut disk, 0);
    feed(&mut rec, &mut disk, 0, 13, 25);
    finish(&mut rec, &mut disk);
    let mut names: Vec<_> = disk.files.keys().cloned().collect();
    names.sort();
    assert_eq!(names.len(), 4, "{names:?}");
    assert_eq!(names[0], PathBuf::from("/rec/cam-1796573148.flv"));
    for name in &names {
        let tags = read_flv(&disk.files[name]);
        let first_frame = tags
            .iter()
            .find(|t| t.0 == flv::TAG_VIDEO && t.3[1] == 1)
            .unwrap();
        assert_eq!(
            (first_frame.1, first_frame.3[0]),
            (0, 0x17),
            "{name:?} starts on a keyframe"
        );
        let meta = metadata(&tags);
        let d = meta.get("duration").and_then(Amf0Value::as_f64).unwrap();
        assert!(d <= 4.0, "{name:?}: {d}");
    }
    let done = rec
        .take_events()
        .iter()
        .filter(|e| matches!(e, RecordEvent::Done { .. }))
        .count();
    assert_eq!(done, 4);
}

#[test]
fn max_size_closes_the_file_and_max_frames_counts_video() {
    let (_rec, disk) = recorded(
        &[("record", &["all"]), ("record_max_size", &["40K"])],
        4,
        25,
    );
    let data = &disk.files[&PathBuf::from("/rec/cam.flv")];
    assert!(data.len() <= 40 * 1024, "{}", data.len());
    assert!(data.len() > 30 * 1024, "{}", data.len());
    read_flv(data);

    let (_rec, disk) = recorded(
        &[("record", &["video"]), ("record_max_frames", &["10"])],
        4,
        25,
    );
    let tags = read_flv(&disk.files[&PathBuf::from("/rec/cam.flv")]);
    assert!(tags.iter().all(|t| t.0 != flv::TAG_AUDIO), "video only");
    assert_eq!(disk.files[&PathBuf::from("/rec/cam.flv")][4], 1);
    let frames = tags
        .iter()
        .filter(|t| t.0 == flv::TAG_VIDEO && t.3[1] == 1)
        .count();
    assert_eq!(frames, 10);
}

#[test]
fn keyframes_mode_records_only_keyframes() {
    let (_rec, disk) = recorded(&[("record", &["keyframes"])], 4, 25);
    let tags = read_flv(&disk.files[&PathBuf::from("/rec/cam.flv")]);
    let frames: Vec<_> = tags
        .iter()
        .filter(|t| t.0 == flv::TAG_VIDEO && t.3[1] == 1)
        .collect();
    assert_eq!(frames.len(), 4);
    assert!(frames.iter().all(|t| t.3[0] == 0x17));
}

#[test]
fn manual_recording_starts_and_stops_on_request() {
    let conf = settings(&[
        ("record", &["all", "manual"]),
        ("record_suffix", &["-%Y%m%d-%H%M%S.flv"]),
    ]);
    let mut rec = Recorder::new("", &conf, "cam", 60, no_file);
    let mut disk = Disk::default();
    start(&mut rec, &mut disk, 0);
    feed(&mut rec, &mut disk, 0, 2, 25);
    assert!(disk.files.is_empty(), "nothing before the start");
    let mut ops = Vec::new();
    let path = rec.start(now(2000), &mut ops).unwrap();
    assert_eq!(path, PathBuf::from("/rec/cam-20261206-170550.flv"));
    assert_eq!(rec.start(now(2000), &mut ops), None, "already recording");
    disk.apply(&mut rec, &mut ops);
    feed(&mut rec, &mut disk, 2000, 3, 25);
    assert_eq!(rec.stop(&mut ops), Some(path.clone()));
    assert_eq!(rec.stop(&mut ops), None);
    disk.apply(&mut rec, &mut ops);
    feed(&mut rec, &mut disk, 5000, 1, 25);
    let tags = read_flv(&disk.files[&path]);
    let d = metadata(&tags)
        .get("duration")
        .and_then(Amf0Value::as_f64)
        .unwrap();
    assert!((2.9..=3.0).contains(&d), "{d}");
    assert_eq!(disk.files.len(), 1);
}

#[test]
fn append_continues_after_the_last_timestamp() {
    fn existing(_: &Path) -> Option<ExistingFile> {
        Some(ExistingFile {
            size: 5000,
            last_timestamp: Some(60_000),
        })
    }
    let conf = settings(&[("record", &["all"]), ("record_append", &["on"])]);
    let mut rec = Recorder::new("", &conf, "cam", 0, existing);
    let mut disk = Disk::default();
    let old = vec![7u8; 5000];
    disk.files
        .insert(PathBuf::from("/rec/cam.flv"), old.clone());
    start(&mut rec, &mut disk, 100);
    feed(&mut rec, &mut disk, 100, 2, 25);
    finish(&mut rec, &mut disk);
    let data = &disk.files[&PathBuf::from("/rec/cam.flv")];
    assert_eq!(&data[..5000], &old[..], "the earlier recording is kept");
    // No new file header: tags follow the old ones, later in time.
    let h = &data[5000..5011];
    assert_eq!(h[0], flv::TAG_VIDEO);
    assert_eq!(u32::from_be_bytes([h[7], h[4], h[5], h[6]]), 60_000);
}

#[test]
fn a_write_failure_ends_the_file_and_the_recording() {
    let conf = settings(&[("record", &["all"])]);
    let mut rec = Recorder::new("", &conf, "cam", 0, no_file);
    let mut disk = Disk::default();
    start(&mut rec, &mut disk, 0);
    feed(&mut rec, &mut disk, 0, 1, 25);
    let mut ops = Vec::new();
    rec.on_media(true, 1000, &video(false, 800), now(1000), &mut ops);
    assert!(!ops.is_empty());
    rec.on_write_failed(Path::new("/rec/cam.flv"));
    rec.on_write_failed(Path::new("/rec/cam.flv"));
    let events = rec.take_events();
    let done: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, RecordEvent::Done { .. }))
        .collect();
    assert_eq!(done.len(), 1, "{events:?}");
    ops.clear();
    rec.on_media(true, 2000, &video(true, 800), now(2000), &mut ops);
    assert!(ops.is_empty(), "nothing more is recorded for this publish");
    rec.finish(now(2000), &mut ops);
    assert!(ops.is_empty());
    assert!(rec.is_done());
}

#[test]
fn file_names_follow_the_c_module() {
    let mut conf = settings(&[("record", &["all"])]);
    assert_eq!(
        file_path(&conf, "a/cam", 0, 0),
        PathBuf::from("/rec/a/cam.flv")
    );
    conf.unique = true;
    conf.suffix = "-%D.flv".into();
    assert_eq!(
        file_path(&conf, "cam", 86_400_000, 0),
        PathBuf::from("/rec/cam-86400-01_02_70.flv")
    );
}

impl Disk {
    /// Whole small files written atomically (the replay playlist).
    fn apply_atomic(&mut self, ops: &[FileOp]) {
        for op in ops {
            if let FileOp::WriteAtomic { path, data } = op {
                self.files.insert(path.clone(), data.to_vec());
            }
        }
    }
}

#[test]
fn mp4_recordings_play_in_ffmpeg_with_their_replay_playlist() {
    use crate::testutil::{artifact_dir, encode_test_flv, require_tools, run};
    if !require_tools(&["ffmpeg", "ffprobe"], "MP4 recordings are not checked") {
        return;
    }
    let dir = artifact_dir("record-mp4");
    let flv = encode_test_flv(&dir.join("src.flv"), 7, 25, 48_000);
    let mut conf = settings(&[("record", &["all"]), ("record_format", &["mp4"])]);
    conf.path = dir.to_string_lossy().into_owned();
    assert_eq!(conf.suffix, ".mp4");
    let mut rec = Recorder::new("", &conf, "cam", 0, no_file);
    let mut disk = Disk::default();
    let mut ops = Vec::new();
    let mut written = Vec::new();
    for (kind, ts, body) in crate::testutil::flv_tags(&flv) {
        let body = Bytes::copy_from_slice(body);
        match kind {
            8 | 9 => rec.on_media(kind == 9, ts, &body, now(u64::from(ts)), &mut ops),
            18 => rec.on_metadata(&body),
            _ => {}
        }
        // The playlist is never written before the bytes it lists.
        for op in &ops {
            if let FileOp::WriteAtomic { data, .. } = op {
                let listed: u64 = String::from_utf8_lossy(data)
                    .lines()
                    .filter_map(|l| l.strip_prefix("#EXT-X-BYTERANGE:"))
                    .filter_map(|r| {
                        let (len, at) = r.split_once('@')?;
                        Some(len.parse::<u64>().ok()? + at.parse::<u64>().ok()?)
                    })
                    .max()
                    .unwrap_or(0);
                assert!(
                    listed <= written.len() as u64,
                    "listed {listed} of {}",
                    written.len()
                );
            }
            if let FileOp::Append { data, .. } = op {
                written.extend_from_slice(data);
            }
        }
        disk.apply_atomic(&ops);
        ops.retain(|op| !matches!(op, FileOp::WriteAtomic { .. }));
        disk.apply(&mut rec, &mut ops);
    }
    rec.finish(now(0), &mut ops);
    disk.apply_atomic(&ops);
    ops.retain(|op| !matches!(op, FileOp::WriteAtomic { .. }));
    disk.apply(&mut rec, &mut ops);
    let mp4 = dir.join("cam.mp4");
    std::fs::write(&mp4, &disk.files[&mp4]).unwrap();
    let playlist = String::from_utf8(disk.files[&dir.join("cam.m3u8")].clone()).unwrap();
    std::fs::write(dir.join("cam.m3u8"), &playlist).unwrap();
    assert!(
        playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD") && playlist.ends_with("#EXT-X-ENDLIST\n")
    );
    assert!(
        playlist.contains("#EXT-X-MAP:URI=\"cam.mp4\",BYTERANGE="),
        "{playlist}"
    );

    let (out, err) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_name",
            "-of",
            "default=nw=1",
            mp4.to_str().unwrap(),
        ],
    );
    assert!(err.is_empty(), "{err}");
    assert!(
        out.contains("codec_name=h264") && out.contains("codec_name=aac"),
        "{out}"
    );
    let duration: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("duration="))
        .and_then(|d| d.parse().ok())
        .unwrap();
    assert!((6.8..7.2).contains(&duration), "{duration}");
    // The replay playlist plays to the end through its byte ranges.
    let (_, err) = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            dir.join("cam.m3u8").to_str().unwrap(),
            "-f",
            "null",
            "-",
        ],
    );
    assert!(err.is_empty(), "{err}");
}
