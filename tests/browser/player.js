// Plays the playlist named by ?src= with hls.js and exposes what a viewer would notice:
// window.__snapshot() -> { currentTime, startTime, firstPlayingMs, errors, latency, ... }.
// ?buffer=S keeps only S seconds buffered ahead and behind, so a seek in a replay must load its
// fragments again (fragsLoaded counts the fragments hls.js loaded).
// Latency: every 250 ms of playing, now minus the EXT-X-PROGRAM-DATE-TIME of the playing frame
// (hls.playingDate; the server stamps PDT with the wall clock the frame arrived at), summed up
// as pdtLatency { count, median, p90, max } in seconds; partsLoaded counts LL-HLS parts loaded.
// ?switch=S:H,S:H... (optional) forces variant switches: S seconds after the first 'playing',
// hls.js is told to play the variant whose picture is H pixels high (`hls.nextLevel`: a manual
// level from the next fragment on, the buffer ahead beyond it flushed); each is recorded in
// switches[] ({ atMs, height, level, error }).
// ?trace=1 also records the last 3000 loads and stalls as trace[] (ms since the page started):
// { ev: 'frag', type, sn, part, start, dur, req, end } for each fragment or part (when its
// request started and ended), { ev: 'playlist', type, msn, part, req, end } for each playlist,
// { ev: 'waiting', at, time, bufferEnd } when the element ran out of data: to see whether a
// stall came from a late part or from the player.
'use strict';

(function () {
  const params = new URLSearchParams(location.search);
  const src = params.get('src');
  const buffer = Number(params.get('buffer'));
  const schedule = parseSchedule(params.get('switch'));
  const video = document.getElementById('video');
  const t0 = performance.now();
  const state = {
    errors: [],
    startTime: null,
    firstPlayingMs: null,
    hlsVersion: null,
    fragsLoaded: 0,
    partsLoaded: 0,
    switches: [],
    latencies: [],
    trace: params.get('trace') ? [] : null,
  };
  let hls = null;
  const ms = (t) => (Number.isFinite(t) && t > 0 ? Math.round(t - t0) : null);
  function trace(entry) {
    if (!state.trace) return;
    state.trace.push(entry);
    if (state.trace.length > 3000) state.trace.shift();
  }
  video.addEventListener('waiting', () => {
    const b = video.buffered;
    trace({
      ev: 'waiting',
      at: ms(performance.now()),
      time: video.currentTime,
      bufferEnd: b.length ? b.end(b.length - 1) : null,
    });
  });
  // Size, frames, stalls (media-stats.js; absent on pages that do not load it).
  const media = window.watchMedia ? window.watchMedia(video) : null;

  function error(e) {
    state.errors.push(e);
  }

  // "5:90,12:360" -> [{ at: 5, height: 90 }, { at: 12, height: 360 }]
  function parseSchedule(text) {
    if (!text) return [];
    return text.split(',').map((item) => {
      const [at, height] = item.split(':').map(Number);
      return { at, height };
    });
  }

  function switchTo(height, t0Playing) {
    const rec = { atMs: Math.round(performance.now() - t0Playing), height, level: null, error: null };
    state.switches.push(rec);
    const levels = hls ? hls.levels || [] : [];
    const level = levels.findIndex((l) => l.height === height);
    if (level < 0) {
      rec.error = `no level ${height} pixels high among ${levels.map((l) => l.height).join(', ')}`;
      return;
    }
    rec.level = level;
    hls.nextLevel = level;
  }

  video.addEventListener('playing', () => {
    if (state.firstPlayingMs === null) {
      state.firstPlayingMs = performance.now() - t0;
      state.startTime = video.currentTime;
      const now = performance.now();
      for (const { at, height } of schedule) {
        setTimeout(() => switchTo(height, now), at * 1000);
      }
    }
  });
  video.addEventListener('error', () => {
    const e = video.error;
    error({ type: 'media', details: e ? `code ${e.code}: ${e.message}` : 'unknown', fatal: true });
  });

  if (!src) {
    error({ type: 'setup', details: 'no ?src= playlist URL', fatal: true });
  } else if (!window.Hls) {
    error({ type: 'setup', details: 'hls.js did not load', fatal: true });
  } else if (!Hls.isSupported()) {
    error({ type: 'setup', details: 'hls.js is not supported here (no MediaSource?)', fatal: true });
  } else {
    state.hlsVersion = Hls.version;
    hls = new Hls(
      buffer > 0
        ? { maxBufferLength: buffer, maxMaxBufferLength: buffer, backBufferLength: buffer }
        : {},
    );
    hls.on(Hls.Events.ERROR, (_event, d) => {
      error({
        type: d.type,
        details: d.details,
        fatal: d.fatal,
        url: (d.frag && d.frag.url) || d.url || null,
        code: (d.response && d.response.code) || null,
        reason: d.reason || (d.error && String(d.error)) || null,
      });
    });
    hls.on(Hls.Events.FRAG_LOADED, (_event, d) => {
      state.fragsLoaded += 1;
      if (d && d.part) state.partsLoaded += 1;
      const f = (d && (d.part || d.frag)) || {};
      const l = (f.stats && f.stats.loading) || {};
      trace({
        ev: 'frag',
        type: d && d.frag ? d.frag.type : null,
        sn: d && d.frag ? d.frag.sn : null,
        part: d && d.part ? d.part.index : null,
        start: f.start,
        dur: f.duration,
        req: ms(l.start),
        end: ms(l.end),
      });
    });
    const playlist = (type) => (_event, d) => {
      const det = (d && d.details) || {};
      const l = (d && d.stats && d.stats.loading) || {};
      trace({ ev: 'playlist', type, msn: det.endSN, part: det.endPart, req: ms(l.start), end: ms(l.end) });
    };
    hls.on(Hls.Events.LEVEL_LOADED, playlist('main'));
    hls.on(Hls.Events.AUDIO_TRACK_LOADED, playlist('audio'));
    setInterval(() => {
      const date = hls.playingDate;
      if (!video.paused && state.firstPlayingMs !== null && date) {
        state.latencies.push((Date.now() - date.getTime()) / 1000);
      }
    }, 250);
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      video.play().catch((e) => error({ type: 'play', details: String(e), fatal: true }));
    });
    hls.loadSource(src);
    hls.attachMedia(video);
  }

  window.__snapshot = () => ({
    currentTime: video.currentTime,
    startTime: state.startTime,
    firstPlayingMs: state.firstPlayingMs,
    paused: video.paused,
    readyState: video.readyState,
    latency: hls && Number.isFinite(hls.latency) ? hls.latency : null,
    hlsVersion: state.hlsVersion,
    fragsLoaded: state.fragsLoaded,
    partsLoaded: state.partsLoaded,
    trace: state.trace,
    pdtLatency: window.summarize(state.latencies),
    // Variants of a master playlist hls.js found (1 for a media playlist).
    levels: hls && Array.isArray(hls.levels) ? hls.levels.length : null,
    // What each variant declares (CODECS, RESOLUTION) and the audio renditions hls.js found.
    levelInfo:
      hls && Array.isArray(hls.levels)
        ? hls.levels.map((l) => ({
            videoCodec: l.videoCodec || null,
            audioCodec: l.audioCodec || null,
            width: l.width || null,
            height: l.height || null,
            bitrate: l.bitrate || null,
          }))
        : null,
    audioTracks: hls && Array.isArray(hls.audioTracks) ? hls.audioTracks.length : null,
    // The variant playing now (index into levelInfo) and the forced switches.
    currentLevel: hls ? hls.currentLevel : null,
    switches: state.switches,
    media: media ? media() : null,
    errors: state.errors,
  });

  setInterval(() => {
    document.getElementById('status').textContent = JSON.stringify(window.__snapshot(), null, 1);
  }, 500);
})();
