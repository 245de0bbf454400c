#!/usr/bin/env python3
"""Regenerates the committed seed corpus (fuzz/seeds/<target>/) from real data:

- a real FLV file made by ffmpeg (x264 with B-frames + AAC): its tag bodies, AVC/AAC
  configuration records, frames;
- the client half of real ffmpeg publish and play sessions, captured by a tiny TCP proxy in
  front of the C nginx-rtmp-module (Debian's nginx + libnginx-mod-rtmp), then de-chunked to get
  the real command and data message payloads.

Needs ffmpeg and the Debian nginx with the rtmp module. Usage: python3 fuzz/make_seeds.py
Seeds are kept small (a few KB; the largest, whole sessions, ~60 KB).
"""

import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, "seeds")
NGINX_PORT = 19450
PROXY_PORT = 19451


def sh(*args, **kw):
    return subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def make_flv(path, seconds):
    sh("ffmpeg", "-y", "-loglevel", "error",
       "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10",
       "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050",
       "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-g", "10", "-bf", "2",
       "-b:v", "60k", "-c:a", "aac", "-ac", "1", "-b:a", "24k", "-f", "flv", path)


def flv_tags(path):
    """(type, timestamp, body) of each tag of an FLV file."""
    data = open(path, "rb").read()
    pos = struct.unpack(">I", data[5:9])[0] + 4
    while pos + 11 <= len(data):
        kind = data[pos] & 0x1F
        size = int.from_bytes(data[pos + 1:pos + 4], "big")
        ts = int.from_bytes(data[pos + 4:pos + 7], "big") | (data[pos + 7] << 24)
        yield kind, ts, data[pos + 11:pos + 11 + size]
        pos += 11 + size + 4


class Proxy:
    """Accepts connections on PROXY_PORT, forwards them to nginx, records what clients send."""

    def __init__(self):
        self.captures = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", PROXY_PORT))
        self.sock.listen(8)
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            client, _ = self.sock.accept()
            upstream = socket.create_connection(("127.0.0.1", NGINX_PORT))
            record = bytearray()
            self.captures.append(record)
            threading.Thread(target=self.pipe, args=(client, upstream, record), daemon=True).start()
            threading.Thread(target=self.pipe, args=(upstream, client, None), daemon=True).start()

    @staticmethod
    def pipe(src, dst, record):
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                if record is not None:
                    record.extend(b)
                dst.sendall(b)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def run_nginx(tmp):
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off; master_process off; error_log {tmp}/error.log; pid {tmp}/nginx.pid;
events {{ worker_connections 64; }}
rtmp {{ server {{ listen 127.0.0.1:{NGINX_PORT}; application live {{ live on; }} }} }}
""")
    p = subprocess.Popen(["nginx", "-p", tmp, "-c", conf],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return p


def dechunk(data):
    """RTMP messages (csid, type, timestamp, payload) of a client's chunk stream."""
    pos, chunk_size, streams, out = 0, 128, {}, []
    while pos < len(data):
        b = data[pos]
        fmt, csid, pos = b >> 6, b & 0x3F, pos + 1
        if csid == 0:
            csid, pos = 64 + data[pos], pos + 1
        elif csid == 1:
            csid, pos = 64 + data[pos] + 256 * data[pos + 1], pos + 2
        st = streams.setdefault(csid, {"ts": 0, "len": 0, "type": 0, "buf": b"", "delta": 0})
        if fmt <= 2:
            ts = int.from_bytes(data[pos:pos + 3], "big")
            pos += 3
        if fmt <= 1:
            st["len"] = int.from_bytes(data[pos:pos + 3], "big")
            st["type"] = data[pos + 3]
            pos += 4
        if fmt == 0:
            pos += 4
        if fmt <= 2 and ts == 0xFFFFFF:
            ts = int.from_bytes(data[pos:pos + 4], "big")
            pos += 4
        if not st["buf"]:
            if fmt == 0:
                st["ts"] = ts
            elif fmt in (1, 2):
                st["delta"] = ts
                st["ts"] += ts
            else:
                st["ts"] += st["delta"]
        take = min(chunk_size, st["len"] - len(st["buf"]))
        st["buf"] += data[pos:pos + take]
        pos += take
        if len(st["buf"]) == st["len"]:
            msg = (csid, st["type"], st["ts"], st["buf"])
            st["buf"] = b""
            if msg[1] == 1:
                chunk_size = int.from_bytes(msg[3][:4], "big")
            out.append(msg)
    return out


def record(video, ts_delta, body, kind=0):
    """One record in the MediaOps format (fuzz/src/lib.rs): media with a delta timestamp."""
    flags = (1 if video else 0) | (kind << 2)
    return bytes([flags]) + struct.pack(">hH", ts_delta, min(len(body), 0xFFFF)) + body[:0xFFFF]


def media_records(tags, limit):
    out, last = bytearray(), 0
    for kind, ts, body in tags:
        if kind not in (8, 9, 18):
            continue
        delta = max(-32768, min(32767, ts - last))
        last = ts
        r = record(kind == 9, delta, body, 3 if kind == 18 else 0)
        if len(out) + len(r) > limit:
            break
        out += r
    return bytes(out)


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    if not shutil.which("ffmpeg") or not os.path.exists("/usr/lib/nginx/modules/ngx_rtmp_module.so"):
        sys.exit("needs ffmpeg and nginx with libnginx-mod-rtmp")
    tmp = tempfile.mkdtemp(prefix="fuzz-seeds-")
    flv = os.path.join(tmp, "real.flv")
    make_flv(flv, 3)
    tags = list(flv_tags(flv))

    nginx = run_nginx(tmp)
    proxy = Proxy()
    url = f"rtmp://127.0.0.1:{PROXY_PORT}/live/stream"
    try:
        pub = subprocess.Popen(["ffmpeg", "-loglevel", "error", "-re", "-stream_loop", "2",
                                "-i", flv, "-c", "copy",
                                "-f", "flv", url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        sh("ffmpeg", "-loglevel", "error", "-analyzeduration", "500000", "-probesize", "32768",
           "-i", url, "-t", "0.5", "-f", "null", "-", timeout=20)
        pub.wait(timeout=30)
        time.sleep(0.3)
    finally:
        nginx.terminate()
        nginx.wait()
    publish, play = bytes(proxy.captures[0]), bytes(proxy.captures[1])
    hs = 1 + 2 * 1536

    # Whole sessions: [config byte, slicing byte] + the client's bytes.
    write("session", "ffmpeg-publish.bin", bytes([0, 7]) + publish[:60000])
    write("session", "ffmpeg-publish-hls-dash.bin", bytes([0x46, 3]) + publish[:60000])
    write("session", "ffmpeg-play.bin", bytes([0, 5]) + play)
    # The session target's second client replays this one as it is.
    os.makedirs(os.path.join(HERE, "captures"), exist_ok=True)
    with open(os.path.join(HERE, "captures", "ffmpeg-play.raw"), "wb") as f:
        f.write(play)
    write("handshake", "ffmpeg-publish.bin", bytes([1]) + publish[:hs + 64])
    write("handshake", "ffmpeg-play-whole.bin", bytes([200]) + play[:hs])
    write("chunk_decoder", "ffmpeg-publish.bin", bytes([0x80]) + publish[hs:hs + 30000])
    write("chunk_decoder", "ffmpeg-play.bin", bytes([3]) + play[hs:])

    for i, (csid, kind, ts, payload) in enumerate(dechunk(publish[hs:]) + dechunk(play[hs:])):
        if kind in (17, 18, 20):
            write("amf0", f"msg{i:03}-type{kind}.bin", payload)

    video = [b for k, _, b in tags if k == 9]
    audio = [b for k, _, b in tags if k == 8]
    meta = [b for k, _, b in tags if k == 18]
    write("amf0", "onmetadata.bin", meta[0])
    key = next(b for b in video[1:] if b[0] >> 4 == 1)
    inter = next(b for b in video[1:] if b[0] >> 4 == 2)
    for name, body in [("avc-seq-header", video[0]), ("avc-key", key[:3000]),
                       ("avc-inter", inter[:1500]), ("aac-seq-header", audio[0]),
                       ("aac-frame", audio[1]), ("avcc-record", video[0][5:]),
                       ("aac-asc", audio[0][2:])]:
        write("flv", name + ".bin", body)

    # avc_annexb: nal_length_size 4 (coded as in the record: size byte), SPS/PPS from the record.
    rec = video[0][5:]
    sps_len = int.from_bytes(rec[6:8], "big")
    sps = rec[8:8 + sps_len]
    pps_len = int.from_bytes(rec[9 + sps_len:11 + sps_len], "big")
    pps = rec[11 + sps_len:11 + sps_len + pps_len]
    cfg = bytes([4, 1, 1, len(sps)]) + sps + bytes([len(pps)]) + pps
    write("avc_annexb", "key.bin", cfg + key[5:3000])
    write("avc_annexb", "inter.bin", cfg + inter[5:1500])
    write("avc_annexb", "key-no-config.bin", bytes([4, 0, 0]) + key[5:3000])

    # ts_muxer: tracks byte (video + AAC), then real frames as records with 90 kHz times.
    ts = bytearray([0b011])
    for k, t, b in tags[:40]:
        if k in (8, 9):
            op = 0 | (8 if b[0] >> 4 == 1 else 0) if k == 9 else 2
            ts += bytes([op]) + (t * 90 + 126000).to_bytes(5, "big") + (0).to_bytes(2, "big")
            ts += len(b[:2000]).to_bytes(2, "big") + b[:2000]
    write("ts_muxer", "real-frames.bin", bytes(ts))

    recs = media_records(tags, 60000)
    write("hls_segmenter", "real-av.bin", bytes([0x01]) + recs)
    write("hls_segmenter", "real-av-keys-aligned.bin", bytes([0x07]) + recs)
    write("dash_segmenter", "real-av.bin", bytes([0x01]) + recs)
    write("dash_segmenter", "real-av-nested.bin", bytes([0x07]) + recs)

    # conf: lines of "<directive index byte><args>"; 0xff: the first word names the directive in text.
    write("conf", "typical.conf", b"\n".join([
        b"\xfflisten 1935 reuseport so_keepalive=on",
        b"\xffchunk_size 4096",
        b"\xffhls on", b"\xffhls_path /tmp/hls", b"\xffhls_fragment 3s",
        b"\xffhls_variant _low BANDWIDTH=288000",
        b"\xffallow publish 127.0.0.0/8", b"\xffdeny publish all",
        b"\xffpush rtmp://example.com/app name=x live=1",
        b"\xffexec ffmpeg -i rtmp://localhost/$app/$name -c copy -f flv rtmp://x/$name",
        b"\xffaccess_log /tmp/a.log combined",
        b"\xfflog_format fmt '$remote_addr [$time_local] $command'",
        b"\xffdash on", b"\xffdash_path /tmp/dash",
    ]))
    write("conf", "every-directive.conf", b"\n".join(bytes([i]) + b" on" for i in range(142)))
    shutil.rmtree(tmp)
    print(f"seeds written under {SEEDS}")


if __name__ == "__main__":
    main()
