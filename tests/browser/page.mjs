// Usage: node page.mjs <page-url> [options]
//   --stream APP/NAME   the stream row to wait for (as the page shows it); without it the page
//                       is only rendered (no playback) and its rows and notices are reported
//   --format hls|dash|flv  the player to pick before clicking (default hls; flv: HTTP-FLV)
//   --resolution WxH    the row must show this resolution (default 320x240)
//   --codec TEXT        the row's codecs must contain this (default H264)
//   --wait S            how long the row may take to appear (default 20)
//   --seconds S         how long to watch playback after the click (default 10)
//   --min-advance S     how far video.currentTime must move meanwhile (default 3)
//   --replay NAME       the replay row to wait for (its name as the page shows it, with a date
//                       and a size) and click, instead of a stream's; it must play as a VOD
//                       (a finite video.duration: the controls have a seek bar)
//   --no-play           find the row, do not click it
//
// Opens the live page (www/: index.html + app.js) in Debian's Chromium (never a downloaded
// browser), waits until the stream's row appears with the expected resolution and codecs (or
// the replay's row with its date and size), clicks it like a viewer, and watches the <video>.
// Prints one JSON line:
//   {"ok": bool, "rowFound": bool, "rowOk": bool, "row": {...}, "advanced": s,
//    "errorCount": n, "errors": [...], "outsideCount": n, "player": {...}, "rows": [...],
//    "replays": {"shown": bool, "count": text, "rows": [{"name", "href", "ended", "size"}]},
//    "duration": s, ...}
// advanced: how far video.currentTime moved since playback started; errors: uncaught page
// errors (pageerror), console errors, dialogs (alert() run by markup from the network) and the
// page's own player errors; duration: video.duration after playing; outsideCount: requests
// to hosts other than 127.0.0.1/localhost (refused: the page must need no outside server).
// Exit status 0 when every check passed, 1 when one failed, 2 when the browser could not be
// driven.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

let args;
try {
  args = parseArgs({
    allowPositionals: true,
    options: {
      stream: { type: 'string' },
      format: { type: 'string', default: 'hls' },
      resolution: { type: 'string', default: '320x240' },
      codec: { type: 'string', default: 'H264' },
      wait: { type: 'string', default: '20' },
      seconds: { type: 'string', default: '10' },
      'min-advance': { type: 'string', default: '3' },
      replay: { type: 'string' },
      'no-play': { type: 'boolean', default: false },
    },
  });
} catch (e) {
  console.error(String(e.message || e));
  process.exit(2);
}
const pageUrl = args.positionals[0];
const opt = args.values;
if (!pageUrl || !['hls', 'dash', 'flv'].includes(opt.format)) {
  console.error('usage: node page.mjs <page-url> [--stream APP/NAME] [--format hls|dash|flv] [--no-play] ...');
  process.exit(2);
}
const waitSecs = Number(opt.wait);
const seconds = Number(opt.seconds);
const minAdvance = Number(opt['min-advance']);
const target = opt.stream ?? opt.replay ?? null;
const play = Boolean(target) && !opt['no-play'];

const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const userDataDir = mkdtempSync(join(tmpdir(), 'page-chromium-'));
const result = {
  ok: false,
  url: pageUrl,
  stream: opt.stream ?? null,
  replay: opt.replay ?? null,
  format: opt.format,
  rowFound: false,
  rowOk: false,
  row: null,
  rows: [],
  replays: null,
  replaysState: null,
  stat: null,
  notices: null,
  played: false,
  advanced: 0,
  startupMs: null,
  currentTime: null,
  duration: null,
  player: null,
  xss: null,
  errorCount: 0,
  errors: [],
  outsideCount: 0,
  outside: [],
};
let context = null;
// A hard bound, whatever happens inside the browser.
const watchdog = setTimeout(() => {
  result.errors.push({ type: 'harness', details: 'watchdog: run took too long' });
  finish(2);
}, (waitSecs + seconds + 45) * 1000);

async function finish(code) {
  clearTimeout(watchdog);
  result.errorCount = result.errors.length;
  if (code === 0) {
    result.ok =
      result.errorCount === 0 &&
      result.outsideCount === 0 &&
      result.xss === null &&
      (!target || result.rowOk) &&
      (!play || result.advanced >= minAdvance) &&
      (!play || !opt.replay || typeof result.duration === 'number');
    if (!result.ok) code = 1;
  }
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

/** What a viewer sees: every row's cells, the notices, and the player. */
function readPage() {
  const t = (node) => (node ? node.textContent.trim() : null);
  const shown = (id) => {
    const n = document.getElementById(id);
    return n && !n.hidden ? n.textContent.replace(/\s+/g, ' ').trim() : null;
  };
  const rows = Array.from(document.querySelectorAll('#streams-body tr')).map((tr) => ({
    name: t(tr.querySelector('.c-name .stream-name > span:last-child')),
    uptime: t(tr.querySelector('.c-uptime')),
    resolution: t(tr.querySelector('.c-res > span > span:first-child')),
    frameRate: t(tr.querySelector('.c-res .sub')),
    codecs: t(tr.querySelector('.c-codecs')),
    bitrate: t(tr.querySelector('.c-bitrate')),
    viewers: t(tr.querySelector('.c-viewers')),
    selected: tr.classList.contains('selected'),
    recording: t(tr.querySelector('.c-name .rec:not([hidden])')),
  }));
  const section = document.getElementById('replays');
  const replays = section
    ? {
        shown: !section.hidden,
        count: t(document.getElementById('replays-count')),
        rows: Array.from(document.querySelectorAll('#replays-body tr')).map((tr) => ({
          name: t(tr.querySelector('.c-name .stream-name')),
          href: tr.querySelector('.c-name a') ? tr.querySelector('.c-name a').href : null,
          ended: t(tr.querySelector('.c-ended')),
          size: t(tr.querySelector('.c-size')),
          selected: tr.classList.contains('selected'),
        })),
      }
    : null;
  const v = document.querySelector('video');
  const p = document.getElementById('player');
  return {
    stat: document.body.dataset.stat || null,
    // ok, none (no listing: 404), error, off (no meta tag); null until read
    replaysState: document.body.dataset.replays || null,
    tableShown: !document.getElementById('streams').hidden,
    rows,
    replays,
    notices: {
      status: shown('status'),
      error: shown('stat-error'),
      empty: shown('stat-empty'),
    },
    player: {
      shown: !p.hidden,
      state: p.dataset.state || null,
      title: shown('player-title'),
      engine: shown('player-engine'),
      latency: shown('player-latency'),
      message: shown('player-msg'),
    },
    video: {
      currentTime: v.currentTime,
      duration: Number.isFinite(v.duration) ? v.duration : String(v.duration),
      paused: v.paused,
      readyState: v.readyState,
      muted: v.muted,
      error: v.error ? v.error.code : null,
    },
    // Set only if markup from the network ran (the hostile-name test).
    xss: window.__xss === undefined ? null : String(window.__xss),
  };
}

function rowOk(row) {
  if (opt.replay) {
    return /\d/.test(row.ended ?? '') && /^\d+(\.\d)? [kMGT]?B$/.test(row.size ?? '') && Boolean(row.href);
  }
  return (
    row.resolution !== null &&
    row.resolution.includes(opt.resolution) &&
    row.codecs !== null &&
    row.codecs.includes(opt.codec) &&
    /^\d+:\d\d:\d\d$/.test(row.uptime ?? '') &&
    /bit\/s$/.test(row.bitrate ?? '') &&
    /^\d+$/.test(row.viewers ?? '')
  );
}

function record(snap) {
  result.rows = snap.rows;
  result.replays = snap.replays;
  result.replaysState = snap.replaysState;
  result.stat = snap.stat;
  result.notices = snap.notices;
  result.player = snap.player;
  result.xss = snap.xss;
}

try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    // --headless=new is passed below, so Playwright must not add its own headless flags.
    headless: false,
    // Narrow enough to be a laptop, wide enough for the table layout.
    viewport: { width: 1024, height: 768 },
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
      // No --autoplay-policy override: the click is a real user gesture, as for a viewer.
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
  page.on('pageerror', (e) => result.errors.push({ type: 'pageerror', details: String(e) }));
  // alert() and friends: only markup from the network could call them.
  page.on('dialog', (d) => {
    result.errors.push({ type: 'dialog', details: d.type() + ': ' + d.message() });
    d.dismiss().catch(() => {});
  });
  page.on('console', (m) => {
    if (m.type() === 'error' && result.errors.length < 50) {
      result.errors.push({ type: 'console', details: m.text(), url: m.location().url || null });
    }
  });
  await page.goto(pageUrl, { waitUntil: 'load', timeout: 15000 });

  if (opt.format !== 'hls') {
    await page.locator('input[name="format"][value="' + opt.format + '"]').check({ timeout: 5000 });
  }

  // The row: shown once /stat lists the stream (and its codec information), or the replays.
  const deadline = Date.now() + waitSecs * 1000;
  let row = null;
  for (;;) {
    const snap = await page.evaluate(readPage);
    record(snap);
    if (target) {
      const rows = opt.replay ? (snap.replays ? snap.replays.rows : []) : snap.rows;
      row = rows.find((r) => r.name === target) ?? null;
      if (row) {
        result.rowFound = true;
        result.row = row;
        result.rowOk = rowOk(row);
        // Both lists are rendered once the replays are read (right after /stat).
        if (result.rowOk && snap.replaysState !== null) break;
      }
    } else if (snap.stat && snap.stat !== 'loading' && snap.replaysState !== null) {
      break; // rendered: the stream list, and the replay list read after it
    }
    if (Date.now() > deadline) break;
    await sleep(250);
  }

  if (play && result.rowOk) {
    // Click the row's name, as a viewer would (Playwright's clicks are trusted input events).
    // (A stream's button also holds its badges, e.g. REC: it is found by its name's text.)
    await (opt.replay
      ? page.locator('#replays-body').getByRole('link', { name: opt.replay, exact: true })
      : page
          .locator('#streams-body')
          .getByRole('button')
          .filter({ has: page.getByText(opt.stream, { exact: true }) })
    ).click({ timeout: 5000 });
    result.played = true;
    const clickedAt = Date.now();
    let start = null;
    let snap = null;
    while (Date.now() - clickedAt < seconds * 1000) {
      await sleep(250);
      snap = await page.evaluate(readPage);
      const v = snap.video;
      if (start === null && !v.paused && v.readyState >= 3 && v.currentTime > 0) {
        start = v.currentTime;
        result.startupMs = Date.now() - clickedAt;
      }
      if (start !== null) result.advanced = Math.max(result.advanced, v.currentTime - start);
    }
    if (snap) {
      record(snap);
      result.currentTime = snap.video.currentTime;
      result.duration = snap.video.duration;
      result.video = snap.video;
      if (snap.player.state === 'error') {
        result.errors.push({ type: 'player', details: snap.player.message });
      }
    }
  }
} catch (e) {
  result.errors.push({ type: 'harness', details: String(e && e.stack ? e.stack : e) });
  await finish(2);
}
await finish(0);
