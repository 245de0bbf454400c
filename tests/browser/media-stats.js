// What a viewer of a <video> notices beyond player errors, for player.js and dash-player.js:
// window.watchMedia(video) returns a function giving
//   { videoWidth, videoHeight, totalVideoFrames, droppedVideoFrames, videoDecodedBytes,
//     audioDecodedBytes, waitingCount, longestWaitMs, waitedMs, longestFreezeMs, playingMs,
//     sizes }
// Counted only from the first 'playing' on (startup is not a stall):
// - waitingCount / longestWaitMs / waitedMs: 'waiting' events (the element ran out of data)
//   and how long each lasted until playback went on (one still going counts up to now);
// - longestFreezeMs: the longest time video.currentTime did not move while the element was
//   neither paused nor seeking, sampled every 50 ms (a stall even without a 'waiting' event).
// videoDecodedBytes / audioDecodedBytes are Chromium's webkit*DecodedByteCount: bytes the
// decoders were given, so 0 audio bytes means no audio was played.
// sizes: the picture sizes the element showed, in order ('resize' events: a player switching
// variants changes it), each { atMs, width, height } with atMs counted from the first
// 'playing' (0 before it); at most 50.
// window.summarize(values) gives { count, median, p90, max } of numbers (null for none): the
// players' latency samples.
'use strict';

window.summarize = function (values) {
  if (values.length === 0) return null;
  const v = [...values].sort((a, b) => a - b);
  const at = (q) => v[Math.min(v.length - 1, Math.floor(q * v.length))];
  return { count: v.length, median: at(0.5), p90: at(0.9), max: v[v.length - 1] };
};

window.watchMedia = function (video) {
  const s = {
    started: null,
    waitingCount: 0,
    longestWaitMs: 0,
    waitedMs: 0,
    waitingSince: null,
    longestFreezeMs: 0,
    lastTime: null,
    lastMoved: null,
    sizes: [],
  };

  video.addEventListener('resize', () => {
    if (s.sizes.length >= 50) return;
    s.sizes.push({
      atMs: s.started === null ? 0 : Math.round(performance.now() - s.started),
      width: video.videoWidth,
      height: video.videoHeight,
    });
  });

  function endWait(now) {
    if (s.waitingSince !== null) {
      const d = now - s.waitingSince;
      s.waitedMs += d;
      s.longestWaitMs = Math.max(s.longestWaitMs, d);
      s.waitingSince = null;
    }
  }

  video.addEventListener('playing', () => {
    const now = performance.now();
    if (s.started === null) s.started = now;
    endWait(now);
  });
  video.addEventListener('waiting', () => {
    if (s.started !== null && s.waitingSince === null) {
      s.waitingCount += 1;
      s.waitingSince = performance.now();
    }
  });

  setInterval(() => {
    if (s.started === null) return;
    const now = performance.now();
    const t = video.currentTime;
    if (s.lastTime === null || t !== s.lastTime || video.paused || video.seeking) {
      s.lastTime = t;
      s.lastMoved = now;
    } else {
      s.longestFreezeMs = Math.max(s.longestFreezeMs, now - s.lastMoved);
    }
  }, 50);

  return () => {
    const now = performance.now();
    const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
    const ongoing = s.waitingSince === null ? 0 : now - s.waitingSince;
    return {
      videoWidth: video.videoWidth,
      videoHeight: video.videoHeight,
      totalVideoFrames: q ? q.totalVideoFrames : null,
      droppedVideoFrames: q ? q.droppedVideoFrames : null,
      videoDecodedBytes: Number.isFinite(video.webkitVideoDecodedByteCount)
        ? video.webkitVideoDecodedByteCount
        : null,
      audioDecodedBytes: Number.isFinite(video.webkitAudioDecodedByteCount)
        ? video.webkitAudioDecodedByteCount
        : null,
      waitingCount: s.waitingCount,
      longestWaitMs: Math.round(Math.max(s.longestWaitMs, ongoing)),
      waitedMs: Math.round(s.waitedMs + ongoing),
      longestFreezeMs: Math.round(s.longestFreezeMs),
      playingMs: s.started === null ? 0 : Math.round(now - s.started),
      sizes: s.sizes.slice(),
    };
  };
};
