// Plays the MPD named by ?src= with dash.js and exposes what a viewer would notice:
// window.__snapshot() -> { currentTime, startTime, firstPlayingMs, errors, latency, ... }
// (the same shape as player.js, so play.mjs drives both).
// ?switch=S:H,S:H... (optional) forces representation switches: ABR is turned off for video
// and, S seconds after the first 'playing', dash.js is told to play the video Representation
// whose picture is H pixels high (`setRepresentationForTypeById`, from the next segment on);
// each is recorded in switches[] ({ atMs, height, id, error }).
// liveLatency: dash.js's live latency (its synchronized clock minus the wall-clock time of the
// playing frame on the MPD's availability timeline), sampled every 250 ms while playing, as
// { count, median, p90, max } s; targetLatency: the delay dash.js aims for (the MPD's
// ServiceDescription in low-latency mode); lowLatency: whether dash.js plays in its
// low-latency mode (chunked segments announced with availabilityTimeComplete="false").
'use strict';

(function () {
  const params = new URLSearchParams(location.search);
  const src = params.get('src');
  const schedule = (params.get('switch') || '')
    .split(',')
    .filter((item) => item)
    .map((item) => {
      const [at, height] = item.split(':').map(Number);
      return { at, height };
    });
  const video = document.getElementById('video');
  const t0 = performance.now();
  const state = {
    errors: [],
    loadErrors: [],
    startTime: null,
    firstPlayingMs: null,
    playerVersion: null,
    switches: [],
    latencies: [],
  };
  let player = null;
  // Size, frames, stalls (media-stats.js; absent on pages that do not load it).
  const media = window.watchMedia ? window.watchMedia(video) : null;

  function error(e) {
    state.errors.push(e);
  }

  function representations() {
    try {
      return player ? player.getRepresentationsByType('video') || [] : [];
    } catch {
      return [];
    }
  }

  function switchTo(height, t0Playing) {
    const rec = { atMs: Math.round(performance.now() - t0Playing), height, id: null, error: null };
    state.switches.push(rec);
    const reps = representations();
    const rep = reps.find((r) => r.height === height);
    if (!rep) {
      rec.error = `no representation ${height} pixels high among ${reps.map((r) => r.height).join(', ')}`;
      return;
    }
    rec.id = rep.id;
    try {
      player.setRepresentationForTypeById('video', rep.id);
    } catch (e) {
      rec.error = String(e);
    }
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
    error({ type: 'setup', details: 'no ?src= MPD URL', fatal: true });
  } else if (!window.dashjs) {
    error({ type: 'setup', details: 'dash.js did not load', fatal: true });
  } else {
    player = dashjs.MediaPlayer().create();
    state.playerVersion = player.getVersion();
    const events = dashjs.MediaPlayer.events;
    // Errors dash.js gives up on or reports to the application.
    player.on(events.ERROR, (e) => {
      const err = e && e.error ? e.error : e;
      error({
        type: 'dashjs',
        details: err && err.message ? err.message : String(err),
        code: err && err.code !== undefined ? err.code : null,
        fatal: true,
      });
    });
    player.on(events.PLAYBACK_ERROR, (e) => {
      error({ type: 'playback', details: String(e && e.error ? e.error : e), fatal: true });
    });
    // Segment requests that failed (dash.js retries them): counted apart, for the report.
    player.on(events.FRAGMENT_LOADING_COMPLETED, (e) => {
      if (e && e.error && state.loadErrors.length < 20) {
        const req = e.request || {};
        state.loadErrors.push({ url: req.url || null, details: String(e.error.message || e.error) });
      }
    });
    if (schedule.length) {
      player.updateSettings({ streaming: { abr: { autoSwitchBitrate: { video: false } } } });
    }
    player.initialize(video, src, true);
    setInterval(() => {
      const l = latency();
      if (!video.paused && state.firstPlayingMs !== null && l !== null) {
        state.latencies.push(l);
      }
    }, 250);
  }

  function call(f) {
    try {
      const v = player ? f() : null;
      return v === undefined ? null : v;
    } catch {
      return null;
    }
  }

  function latency() {
    if (!player) return null;
    try {
      const l = player.getCurrentLiveLatency();
      return Number.isFinite(l) ? l : null;
    } catch {
      return null;
    }
  }

  // The codecs of the tracks dash.js chose from the MPD, by type.
  function tracks() {
    const out = {};
    for (const type of ['video', 'audio']) {
      try {
        const t = player ? player.getCurrentTrackFor(type) : null;
        out[type] = t ? t.codec || null : null;
      } catch {
        out[type] = null;
      }
    }
    return out;
  }

  function currentRepresentation() {
    try {
      const r = player ? player.getCurrentRepresentationForType('video') : null;
      return r ? r.id : null;
    } catch {
      return null;
    }
  }

  window.__snapshot = () => ({
    currentTime: video.currentTime,
    startTime: state.startTime,
    firstPlayingMs: state.firstPlayingMs,
    paused: video.paused,
    readyState: video.readyState,
    latency: latency(),
    liveLatency: window.summarize ? window.summarize(state.latencies) : null,
    targetLatency: call(() => player.getTargetLiveDelay()),
    lowLatency: call(() => player.getLowLatencyModeEnabled()),
    playerVersion: state.playerVersion,
    loadErrors: state.loadErrors,
    tracks: tracks(),
    // The video Representations (as player.js's levels/levelInfo), the one playing now (its
    // id) and the forced switches.
    levels: player ? representations().length : null,
    levelInfo: player
      ? representations().map((r) => ({
          id: r.id,
          videoCodec: r.codecs || null,
          width: r.width || null,
          height: r.height || null,
          bitrate: r.bandwidth || null,
        }))
      : null,
    currentLevel: currentRepresentation(),
    switches: state.switches,
    media: media ? media() : null,
    errors: state.errors,
  });

  setInterval(() => {
    document.getElementById('status').textContent = JSON.stringify(window.__snapshot(), null, 1);
  }, 500);
})();
