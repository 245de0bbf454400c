// Plays ?src=<HTTP-FLV URL> with mpegts.js, tuned for low latency (no stash buffer, latency
// chasing), and exposes window.__snapshot() in play.mjs's shape, plus `extra`: the latency
// samples (s), taken every 250 ms while playing, as (now - t0) - stream time on screen, where
// t0 (?t0=, Unix ms) is when the publisher's timestamp 0 was captured (flv-player.js).
'use strict';

(function () {
  const params = new URLSearchParams(location.search);
  const src = params.get('src');
  const t0 = Number(params.get('t0') || 'NaN');
  const video = document.getElementById('video');
  const start = performance.now();
  const state = {
    errors: [],
    loadErrors: [],
    startTime: null,
    firstPlayingMs: null,
    playerVersion: window.mpegts ? `mpegts.js ${window.mpegts.version}` : null,
    samples: [],
  };
  const media = window.watchMedia ? window.watchMedia(video) : null;

  function error(e) {
    state.errors.push(e);
  }

  function latency() {
    const first = window.__flv.firstVideoTs;
    if (first === null || !Number.isFinite(t0) || state.startTime === null) return null;
    return (Date.now() - t0) / 1000 - (first / 1000 + video.currentTime);
  }

  video.addEventListener('playing', () => {
    if (state.firstPlayingMs === null) {
      state.firstPlayingMs = performance.now() - start;
      state.startTime = video.currentTime;
      setInterval(() => {
        const l = latency();
        if (l !== null && !video.paused) state.samples.push(Math.round(l * 1000) / 1000);
      }, 250);
    }
  });
  video.addEventListener('error', () => {
    const e = video.error;
    error({ type: 'media', details: e ? `code ${e.code}: ${e.message}` : 'unknown', fatal: true });
  });

  if (!src) {
    error({ type: 'setup', details: 'no ?src= URL', fatal: true });
  } else if (!window.mpegts || !window.mpegts.isSupported()) {
    error({ type: 'setup', details: 'mpegts.js missing or MSE unsupported', fatal: true });
  } else {
    const player = window.mpegts.createPlayer(
      { type: 'flv', isLive: true, url: src },
      {
        enableWorker: false,
        enableStashBuffer: false,
        liveBufferLatencyChasing: true,
        liveBufferLatencyMaxLatency: 1.0,
        liveBufferLatencyMinRemain: 0.2,
      },
    );
    player.on(window.mpegts.Events.ERROR, (type, details, info) => {
      error({ type: String(type), details: `${details} ${JSON.stringify(info || {})}`, fatal: true });
    });
    player.attachMediaElement(video);
    player.load();
    const p = player.play();
    if (p && p.catch) p.catch((e) => error({ type: 'play', details: String(e), fatal: false }));
  }

  function median(xs) {
    if (!xs.length) return null;
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.floor(s.length / 2)];
  }

  window.__snapshot = function () {
    return {
      currentTime: video.currentTime,
      startTime: state.startTime,
      firstPlayingMs: state.firstPlayingMs,
      latency: latency(),
      playerVersion: state.playerVersion,
      loadErrors: state.loadErrors,
      paused: video.paused,
      readyState: video.readyState,
      media: media ? media() : null,
      errors: state.errors,
      extra: {
        samples: state.samples,
        medianLatency: median(state.samples),
        firstVideoTs: window.__flv.firstVideoTs,
        firstTagTs: window.__flv.firstTagTs,
      },
    };
  };
})();
