// Plays the playlist named by ?src= with hls.js and exposes what a viewer would notice:
// window.__snapshot() -> { currentTime, startTime, firstPlayingMs, errors, latency, ... }.
// ?buffer=S keeps only S seconds buffered ahead and behind, so a seek in a replay must load its
// fragments again (fragsLoaded counts the fragments hls.js loaded).
'use strict';

(function () {
  const params = new URLSearchParams(location.search);
  const src = params.get('src');
  const buffer = Number(params.get('buffer'));
  const video = document.getElementById('video');
  const t0 = performance.now();
  const state = {
    errors: [],
    startTime: null,
    firstPlayingMs: null,
    hlsVersion: null,
    fragsLoaded: 0,
  };
  let hls = null;
  // Size, frames, stalls (media-stats.js; absent on pages that do not load it).
  const media = window.watchMedia ? window.watchMedia(video) : null;

  function error(e) {
    state.errors.push(e);
  }

  video.addEventListener('playing', () => {
    if (state.firstPlayingMs === null) {
      state.firstPlayingMs = performance.now() - t0;
      state.startTime = video.currentTime;
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
    hls.on(Hls.Events.FRAG_LOADED, () => {
      state.fragsLoaded += 1;
    });
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
          }))
        : null,
    audioTracks: hls && Array.isArray(hls.audioTracks) ? hls.audioTracks.length : null,
    media: media ? media() : null,
    errors: state.errors,
  });

  setInterval(() => {
    document.getElementById('status').textContent = JSON.stringify(window.__snapshot(), null, 1);
  }, 500);
})();
