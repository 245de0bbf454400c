//! HTTP-FLV player side of `rtmp-load play --url http://HOST:PORT/live?app=A&stream=S`: the
//! response head, chunked transfer decoding and FLV tag framing, as a byte-at-a-time state
//! machine (no buffering beyond a tag header), reporting each tag's start and first bytes.

/// What the parser saw in a piece of input.
pub trait TagSink {
    /// A tag of `typ` (8 audio, 9 video, 18 script) with `timestamp` starts.
    fn tag_start(&mut self, typ: u8, timestamp: u32);
    /// The first two bytes of a video tag's body (keyframe check).
    fn video_head(&mut self, head: [u8; 2], len: u32);
}

#[derive(Debug)]
enum Chunk {
    /// Reading the chunk size line.
    Size(Vec<u8>),
    Data(usize),
    /// The CRLF after chunk data.
    Crlf(usize),
    End,
}

#[derive(Debug)]
pub struct FlvParse {
    head: Vec<u8>,
    head_done: bool,
    chunked: bool,
    chunk: Chunk,
    /// FLV file header bytes still to skip.
    file_skip: usize,
    tag_head: Vec<u8>,
    /// Body bytes of the current tag still to come, and previous-tag-size after.
    body_left: usize,
    body_seen: usize,
    tag_len: u32,
    typ: u8,
    vhead: [u8; 2],
    trailer_left: usize,
}

impl Default for FlvParse {
    fn default() -> Self {
        FlvParse {
            head: Vec::new(),
            head_done: false,
            chunked: false,
            chunk: Chunk::Size(Vec::new()),
            file_skip: 13,
            tag_head: Vec::with_capacity(11),
            body_left: 0,
            body_seen: 0,
            tag_len: 0,
            typ: 0,
            vhead: [0; 2],
            trailer_left: 0,
        }
    }
}

impl FlvParse {
    /// Consumes `data` (all of it); Err on a response that is not a 200 HTTP-FLV stream.
    pub fn feed(&mut self, mut data: &[u8], sink: &mut impl TagSink) -> Result<(), String> {
        if !self.head_done {
            let take = data.len();
            self.head.extend_from_slice(data);
            let Some(end) = self.head.windows(4).position(|w| w == b"\r\n\r\n") else {
                if self.head.len() > 16 * 1024 {
                    return Err("HTTP response head too long".into());
                }
                return Ok(());
            };
            let head = String::from_utf8_lossy(&self.head[..end]).to_ascii_lowercase();
            let status = head.split_whitespace().nth(1).unwrap_or("");
            if status != "200" {
                return Err(format!("HTTP status {status}"));
            }
            self.chunked = head.contains("transfer-encoding: chunked");
            self.head_done = true;
            let rest = self.head.split_off(end + 4);
            let _ = take;
            self.head = Vec::new();
            return self.feed(&rest, sink);
        }
        while !data.is_empty() {
            if !self.chunked {
                self.flv(data, sink);
                return Ok(());
            }
            match &mut self.chunk {
                Chunk::Size(line) => {
                    let b = data[0];
                    data = &data[1..];
                    if b == b'\n' {
                        let text = String::from_utf8_lossy(line);
                        let size = usize::from_str_radix(text.trim(), 16)
                            .map_err(|_| format!("bad chunk size {text:?}"))?;
                        self.chunk = if size == 0 {
                            Chunk::End
                        } else {
                            Chunk::Data(size)
                        };
                    } else if line.len() < 32 {
                        line.push(b);
                    } else {
                        return Err("chunk size line too long".into());
                    }
                }
                Chunk::Data(left) => {
                    let n = (*left).min(data.len());
                    let (now, rest) = data.split_at(n);
                    *left -= n;
                    if *left == 0 {
                        self.chunk = Chunk::Crlf(2);
                    }
                    self.flv(now, sink);
                    data = rest;
                }
                Chunk::Crlf(left) => {
                    *left -= 1;
                    data = &data[1..];
                    if *left == 0 {
                        self.chunk = Chunk::Size(Vec::new());
                    }
                }
                Chunk::End => return Ok(()),
            }
        }
        Ok(())
    }

    fn flv(&mut self, mut data: &[u8], sink: &mut impl TagSink) {
        while !data.is_empty() {
            if self.file_skip > 0 {
                let n = self.file_skip.min(data.len());
                self.file_skip -= n;
                data = &data[n..];
            } else if self.trailer_left > 0 {
                let n = self.trailer_left.min(data.len());
                self.trailer_left -= n;
                data = &data[n..];
            } else if self.body_left > 0 {
                let n = self.body_left.min(data.len());
                if self.typ == 9 && self.body_seen < 2 {
                    for (i, &b) in data[..n].iter().take(2 - self.body_seen).enumerate() {
                        self.vhead[self.body_seen + i] = b;
                    }
                    if self.body_seen + n >= 2 || n == self.body_left {
                        sink.video_head(self.vhead, self.tag_len);
                    }
                }
                self.body_seen += n;
                self.body_left -= n;
                if self.body_left == 0 {
                    self.trailer_left = 4;
                }
                data = &data[n..];
            } else {
                let n = (11 - self.tag_head.len()).min(data.len());
                self.tag_head.extend_from_slice(&data[..n]);
                data = &data[n..];
                if self.tag_head.len() == 11 {
                    let h = &self.tag_head;
                    self.typ = h[0];
                    self.tag_len = u32::from_be_bytes([0, h[1], h[2], h[3]]);
                    let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
                    self.tag_head.clear();
                    sink.tag_start(self.typ, ts);
                    self.body_left = self.tag_len as usize;
                    self.body_seen = 0;
                    self.vhead = [0; 2];
                    if self.body_left == 0 {
                        self.trailer_left = 4;
                    }
                }
            }
        }
    }
}
