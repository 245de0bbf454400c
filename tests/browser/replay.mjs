// Usage: node replay.mjs <player-page-url> [max-seconds]
//
// Replays a recording's playlist the way a viewer does, in Debian's Chromium (never a
// downloaded browser) with hls.js: <player-page-url> is the player page (index.html +
// player.js, ?src=<playlist>&buffer=S). It plays from the start to the end (at most
// <max-seconds>, default 60), then seeks back to the middle; a second tab opens the playlist
// again and seeks to the middle at once. Prints one JSON line:
//   {"duration": s, "firstTime": s, "ended": bool, "endTime": s, "played": [[from, to], ...],
//    "playWallMs": ms, "seeks": [{"after": "end"|"load", "target": s, "landed": s,
//    "advanced": s, "fragsLoaded": n}, ...], "errorCount": n, "errors": [...],
//    "outsideCount": n, ...}
// firstTime: video.currentTime when playback started; played: video.played (what was really
// shown); landed: the media time of the first frame shown after the seek (or currentTime when
// playback resumed); advanced: how far currentTime moved past the target in 5 s; fragsLoaded:
// fragments hls.js loaded after the seek; errors: hls.js errors (with "fatal"), media and page
// errors of both tabs. Exit status 0 when the run itself worked (the caller judges the
// numbers), 2 when the browser could not be driven.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [pageUrl, maxArg] = process.argv.slice(2);
if (!pageUrl) {
  console.error('usage: node replay.mjs <player-page-url> [max-seconds]');
  process.exit(2);
}
const maxSecs = Number(maxArg ?? 60);
const SEEK_WATCH_MS = 5000;
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const userDataDir = mkdtempSync(join(tmpdir(), 'replay-chromium-'));
const result = {
  duration: null,
  firstTime: null,
  ended: false,
  endTime: null,
  played: [],
  playWallMs: null,
  seeks: [],
  hlsVersion: null,
  errorCount: 0,
  errors: [],
  outsideCount: 0,
  outside: [],
  console: [],
};
let context = null;
// A hard bound, whatever happens inside the browser.
const watchdog = setTimeout(() => {
  result.errors.push({ type: 'harness', details: 'watchdog: run took too long', fatal: true });
  finish(2);
}, (maxSecs + 60) * 1000);

async function finish(code) {
  clearTimeout(watchdog);
  result.errorCount = result.errors.length;
  process.stdout.write(JSON.stringify(result) + '\n');
  try {
    if (context) await context.close();
  } catch {
    // already gone
  }
  rmSync(userDataDir, { recursive: true, force: true });
  process.exit(code);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The <video> and the player's snapshot (runs in the page). */
function readVideo() {
  const v = document.getElementById('video');
  const played = [];
  for (let i = 0; i < v.played.length; i++) played.push([v.played.start(i), v.played.end(i)]);
  return {
    currentTime: v.currentTime,
    duration: v.duration,
    ended: v.ended,
    paused: v.paused,
    readyState: v.readyState,
    played,
    landed: window.__landed ?? null,
    snap: window.__snapshot ? window.__snapshot() : null,
  };
}

async function openTab(tag) {
  const page = await context.newPage();
  page.on('pageerror', (e) =>
    result.errors.push({ type: 'pageerror', tab: tag, details: String(e), fatal: true }),
  );
  page.on('console', (m) => {
    if (m.type() === 'error' && result.console.length < 20) result.console.push(m.text());
  });
  await page.goto(pageUrl, { waitUntil: 'load', timeout: 15000 });
  return page;
}

/** Seeks to the middle and watches playback resume there. */
async function seekMiddle(page, after) {
  const before = await page.evaluate(readVideo);
  const target = before.duration / 2;
  await page.evaluate((t) => {
    const v = document.getElementById('video');
    window.__landed = null;
    // The first frame shown once the seek is done is where playback really resumed.
    v.addEventListener(
      'seeked',
      () => {
        if (v.requestVideoFrameCallback) {
          v.requestVideoFrameCallback((_now, md) => {
            window.__landed = md.mediaTime;
          });
        }
      },
      { once: true },
    );
    v.currentTime = t;
    v.play().catch(() => {});
  }, target);
  const seek = { after, target, landed: null, advanced: 0, fragsLoaded: 0 };
  const start = Date.now();
  let resumed = null;
  let v = before;
  while (Date.now() - start < SEEK_WATCH_MS) {
    await sleep(100);
    v = await page.evaluate(readVideo);
    if (resumed === null && !v.paused && v.readyState >= 3) resumed = v.currentTime;
  }
  seek.landed = v.landed ?? resumed;
  seek.advanced = v.currentTime - target;
  seek.fragsLoaded = (v.snap?.fragsLoaded ?? 0) - (before.snap?.fragsLoaded ?? 0);
  seek.currentTime = v.currentTime;
  return { seek, snap: v.snap };
}

function collectErrors(tag, snap) {
  if (!snap) {
    result.errors.push({ type: 'harness', tab: tag, details: 'the page never answered', fatal: true });
    return;
  }
  for (const e of snap.errors) result.errors.push({ tab: tag, ...e });
}

try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    // --headless=new is passed below, so Playwright must not add its own headless flags.
    headless: false,
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
      '--mute-audio',
      '--autoplay-policy=no-user-gesture-required',
    ],
    timeout: 30000,
  });
  // Only this machine may be asked; anything else is recorded and refused.
  const local = new Set(['127.0.0.1', 'localhost', '[::1]']);
  await context.route(
    (url) => (url.protocol === 'http:' || url.protocol === 'https:') && !local.has(url.hostname),
    (route) => {
      result.outsideCount += 1;
      if (result.outside.length < 10) result.outside.push(route.request().url());
      route.abort().catch(() => {});
    },
  );

  // Start to end.
  const page = await openTab('play');
  const deadline = Date.now() + maxSecs * 1000;
  let playingAt = null;
  let v = null;
  while (Date.now() < deadline) {
    await sleep(200);
    v = await page.evaluate(readVideo);
    if (Number.isFinite(v.duration) && v.duration > 0) result.duration = v.duration;
    if (playingAt === null && v.snap && v.snap.startTime !== null) {
      playingAt = Date.now();
      result.firstTime = v.snap.startTime;
    }
    if (v.ended || (v.snap && v.snap.errors.some((e) => e.fatal))) break;
  }
  if (v) {
    result.ended = v.ended;
    result.endTime = v.currentTime;
    result.played = v.played;
    result.hlsVersion = v.snap ? v.snap.hlsVersion : null;
    if (v.ended && playingAt !== null) result.playWallMs = Date.now() - playingAt;
  }

  // Back to the middle once it has ended, then the middle of a fresh tab (nothing there is
  // buffered yet).
  if (result.ended) {
    const { seek, snap } = await seekMiddle(page, 'end');
    result.seeks.push(seek);
    collectErrors('play', snap);
  } else {
    collectErrors('play', v && v.snap);
  }
  await page.close();
  const fresh = await openTab('seek');
  const loadDeadline = Date.now() + 15000;
  let w = await fresh.evaluate(readVideo);
  while (!(Number.isFinite(w.duration) && w.duration > 0) && Date.now() < loadDeadline) {
    await sleep(50);
    w = await fresh.evaluate(readVideo);
  }
  if (Number.isFinite(w.duration) && w.duration > 0) {
    const { seek, snap } = await seekMiddle(fresh, 'load');
    result.seeks.push(seek);
    collectErrors('seek', snap);
  } else {
    collectErrors('seek', w.snap);
  }
} catch (e) {
  result.errors.push({ type: 'harness', details: String(e && e.stack ? e.stack : e), fatal: true });
  await finish(2);
}
await finish(0);
