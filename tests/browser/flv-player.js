// Loaded before mpegts.js: wraps window.fetch so that, besides handing the HTTP-FLV response to
// mpegts.js untouched, it reads the timestamp of the first coded video frame (a tee of the
// body, parsed as FLV tags). mpegts.js plays from 0 at its first frame, so that timestamp plus
// video.currentTime is the stream time on screen; with ?t0=<Unix ms at which the publisher's
// timestamp 0 was captured> the page computes the end-to-end latency (flv-start.js).
'use strict';

(function () {
  window.__flv = { firstVideoTs: null, firstTagTs: null, bytes: 0 };
  const origFetch = window.fetch.bind(window);

  function readTags(stream) {
    const reader = stream.getReader();
    let buf = new Uint8Array(0);
    let headerDone = false;
    function append(chunk) {
      const next = new Uint8Array(buf.length + chunk.length);
      next.set(buf);
      next.set(chunk, buf.length);
      buf = next;
    }
    function parse() {
      if (!headerDone) {
        if (buf.length < 13) return false;
        buf = buf.subarray(13);
        headerDone = true;
      }
      while (buf.length >= 11) {
        const len = (buf[1] << 16) | (buf[2] << 8) | buf[3];
        if (buf.length < 15 + len) return false;
        const ts = ((buf[7] << 24) | (buf[4] << 16) | (buf[5] << 8) | buf[6]) >>> 0;
        if (window.__flv.firstTagTs === null && buf[0] !== 18) window.__flv.firstTagTs = ts;
        if (buf[0] === 9 && len > 1 && buf[12] === 1) {
          window.__flv.firstVideoTs = ts;
          return true;
        }
        buf = buf.subarray(15 + len);
      }
      return false;
    }
    (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        window.__flv.bytes += value.length;
        append(value);
        if (parse()) {
          reader.cancel().catch(() => {});
          return;
        }
      }
    })().catch(() => {});
  }

  window.fetch = async function (input, init) {
    const response = await origFetch(input, init);
    const url = typeof input === 'string' ? input : input.url;
    if (!url.includes('stream=') || !response.body) return response;
    const [forPlayer, forUs] = response.body.tee();
    readTags(forUs);
    return new Response(forPlayer, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };
})();
