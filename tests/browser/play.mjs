// Usage: node play.mjs <page-url> [seconds]
//
// Opens a player page (index.html: hls.js, dash.html: dash.js) in Debian's Chromium (never a
// downloaded browser), lets it play for <seconds>, and prints one JSON line:
//   {"advanced": s, "errorCount": n, "errors": [...], "latency": s, "startupMs": ms,
//    "outsideCount": n, "media": {...}, ...}
// advanced: how far video.currentTime moved since playback started; latency: the player's
// estimate of the distance to the live edge at the end; outsideCount: requests the page made to
// hosts other than 127.0.0.1/localhost (refused: a live stream must not need an outside server,
// e.g. a time server); media: the picture size, decoded frames and bytes, and stalls since
// playback started (media-stats.js); levelInfo/audioTracks (hls.js) and tracks (dash.js): the
// codecs the player took from the playlist or MPD (levels/levelInfo: the variants or video
// Representations, with their sizes); currentLevel and switches: the variant playing at the
// end and the switches a `switch=S:H,...` page parameter forced (player.js, dash-player.js);
// pdtLatency (hls.js): now minus the playing frame's PROGRAM-DATE-TIME, sampled while playing
// ({count, median, p90, max} s), and partsLoaded: the LL-HLS parts hls.js loaded;
// liveLatency (dash.js): its live latency sampled the same way, targetLatency the delay it aims
// for and lowLatency whether it plays in its low-latency mode (dash-player.js).
// Exit status 0 when the run itself worked (the caller judges the numbers), 2 when the browser
// could not be driven.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [pageUrl, secondsArg] = process.argv.slice(2);
if (!pageUrl) {
  console.error('usage: node play.mjs <page-url> [seconds]');
  process.exit(2);
}
const seconds = Number(secondsArg ?? 10);
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const userDataDir = mkdtempSync(join(tmpdir(), 'hls-chromium-'));
const result = {
  advanced: 0,
  errorCount: 0,
  errors: [],
  latency: null,
  startupMs: null,
  currentTime: null,
  hlsVersion: null,
  playerVersion: null,
  loadErrors: [],
  outsideCount: 0,
  outside: [],
  console: [],
};
let context = null;
let exitCode = 0;
// A hard bound, whatever happens inside the browser.
const watchdog = setTimeout(() => {
  result.errors.push({ type: 'harness', details: 'watchdog: run took too long', fatal: true });
  finish(2);
}, (seconds + 40) * 1000);

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
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (e) => result.errors.push({ type: 'pageerror', details: String(e), fatal: true }));
  page.on('console', (m) => {
    if (m.type() === 'error' && result.console.length < 20) result.console.push(m.text());
  });
  await page.goto(pageUrl, { waitUntil: 'load', timeout: 15000 });
  const start = Date.now();
  let snap = null;
  while (Date.now() - start < seconds * 1000) {
    await new Promise((r) => setTimeout(r, 250));
    snap = await page.evaluate(() => window.__snapshot());
  }
  if (snap) {
    result.currentTime = snap.currentTime;
    result.advanced = snap.startTime === null ? 0 : snap.currentTime - snap.startTime;
    result.latency = snap.latency;
    result.startupMs = snap.firstPlayingMs;
    result.hlsVersion = snap.hlsVersion ?? null;
    result.playerVersion = snap.playerVersion ?? snap.hlsVersion ?? null;
    result.loadErrors = snap.loadErrors ?? [];
    result.paused = snap.paused;
    result.readyState = snap.readyState;
    result.levels = snap.levels ?? null;
    result.levelInfo = snap.levelInfo ?? null;
    result.audioTracks = snap.audioTracks ?? null;
    result.tracks = snap.tracks ?? null;
    result.currentLevel = snap.currentLevel ?? null;
    result.switches = snap.switches ?? [];
    result.pdtLatency = snap.pdtLatency ?? null;
    result.partsLoaded = snap.partsLoaded ?? null;
    result.trace = snap.trace ?? null;
    result.liveLatency = snap.liveLatency ?? null;
    result.targetLatency = snap.targetLatency ?? null;
    result.lowLatency = snap.lowLatency ?? null;
    result.fragsLoaded = snap.fragsLoaded ?? null;
    result.media = snap.media ?? null;
    result.extra = snap.extra ?? null;
    result.errors.push(...snap.errors);
  } else {
    result.errors.push({ type: 'harness', details: 'the page never answered', fatal: true });
  }
} catch (e) {
  result.errors.push({ type: 'harness', details: String(e && e.stack ? e.stack : e), fatal: true });
  exitCode = 2;
}
await finish(exitCode);
