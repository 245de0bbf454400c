// nginx-rtmp-rs live page: lists the live streams of /stat?format=json (every 2 s) and the
// finished recordings of replays/ (nginx's autoindex JSON), and plays the chosen one with hls.js
// (or the browser's own HLS, e.g. Safari), dash.js or mpegts.js (HTTP-FLV), all served by this
// nginx (no CDN). "Low latency" makes the players stay close to the live edge (LL-HLS parts
// when the stream has them, catching up after a stall) and the player shows its latency.
//
// Stream names, file names and every other value of /stat and of the listing come from the
// network (whoever publishes picks the name): they reach the page only as textContent or as
// attribute values set through the DOM, never as HTML, and are encoded into URLs.
'use strict';

(function () {
  const POLL_MS = 2000;
  const STAT_TIMEOUT_MS = 5000;
  // A stream that was just published has no playlist yet: try again every RETRY_MS.
  const RETRY_MS = 2000;
  const MAX_RETRIES = 15;
  const FORMAT_KEY = 'nginx-rtmp-rs.format';
  const LOW_LATENCY_KEY = 'nginx-rtmp-rs.low-latency';
  const FORMATS = ['hls', 'dash', 'flv'];
  const LATENCY_MS = 1000;
  // The replay list is read again when a recording starts or ends (seen in /stat), and at
  // least this often; at most MAX_REPLAYS of the newest are shown.
  const REPLAYS_POLL_MS = 30000;
  const MAX_REPLAYS = 200;

  function meta(name, fallback) {
    const el = document.querySelector('meta[name="' + name + '"]');
    return el && el.content ? el.content : fallback;
  }

  const cfg = {
    stat: meta('rtmp-stat-url', 'stat?format=json'),
    hls: meta('rtmp-hls-url', 'hls/{name}.m3u8'),
    dash: meta('rtmp-dash-url', 'dash/{name}.mpd'),
    hlsScript: meta('rtmp-hls-script', 'vendor/hls.min.js'),
    dashScript: meta('rtmp-dash-script', 'vendor/dash.all.min.js'),
    flv: meta('rtmp-flv-url', 'live?app={app}&stream={name}'),
    flvScript: meta('rtmp-flv-script', 'vendor/mpegts.js'),
    replays: meta('rtmp-replays-url', ''),
  };

  const $ = (id) => document.getElementById(id);
  const el = {
    status: $('status'),
    error: $('stat-error'),
    empty: $('stat-empty'),
    emptyFfmpeg: $('empty-ffmpeg'),
    emptyObs: $('empty-obs'),
    table: $('streams'),
    body: $('streams-body'),
    serverInfo: $('server-info'),
    player: $('player'),
    playerTitle: $('player-title'),
    playerEngine: $('player-engine'),
    playerLatency: $('player-latency'),
    lowLatency: $('low-latency'),
    playerLink: $('player-link'),
    playerMsg: $('player-msg'),
    playerClose: $('player-close'),
    video: $('video'),
    replays: $('replays'),
    replaysBody: $('replays-body'),
    replaysCount: $('replays-count'),
  };

  // ---------------------------------------------------------------------------------------
  // Formatting

  function pad2(n) {
    return n < 10 ? '0' + n : String(n);
  }

  /** h:mm:ss */
  function formatUptime(ms) {
    const t = Math.max(0, Math.floor(Number(ms) / 1000)) || 0;
    return Math.floor(t / 3600) + ':' + pad2(Math.floor((t % 3600) / 60)) + ':' + pad2(t % 60);
  }

  function formatBitrate(bps) {
    const b = Number(bps);
    if (!Number.isFinite(b) || b < 0) return '—';
    if (b >= 1e6) return (b / 1e6).toFixed(b >= 1e7 ? 1 : 2) + ' Mbit/s';
    return Math.round(b / 1e3) + ' kbit/s';
  }

  /** 44100 -> "44.1 kHz", 48000 -> "48 kHz". */
  function formatRate(hz) {
    const n = Number(hz);
    return Number.isFinite(n) && n > 0 ? parseFloat((n / 1000).toFixed(2)) + ' kHz' : null;
  }

  /** 2111138 -> "2.1 MB" */
  function formatBytes(n) {
    const b = Number(n);
    if (n === null || !Number.isFinite(b) || b < 0) return '—';
    const units = ['B', 'kB', 'MB', 'GB', 'TB'];
    let i = 0;
    let v = b;
    while (v >= 1000 && i < units.length - 1) {
      v /= 1000;
      i += 1;
    }
    return (i === 0 ? String(v) : v.toFixed(v >= 100 ? 0 : 1)) + ' ' + units[i];
  }

  function text(v) {
    return v === null || v === undefined || v === '' ? null : String(v);
  }

  function hasVideo(s) {
    const v = s.video;
    return !!(v && (text(v.codec) || Number(v.width) > 0));
  }

  function hasAudio(s) {
    return !!(s.audio && text(s.audio.codec));
  }

  function resolutionOf(s) {
    const v = s.video;
    if (v && Number(v.width) > 0 && Number(v.height) > 0) {
      return Math.round(Number(v.width)) + 'x' + Math.round(Number(v.height));
    }
    if (!hasVideo(s) && hasAudio(s)) return 'audio only';
    return '—';
  }

  function frameRateOf(s) {
    const fr = s.video ? Number(s.video.frame_rate) : NaN;
    return Number.isFinite(fr) && fr > 0 ? parseFloat(fr.toFixed(2)) + ' fps' : '';
  }

  /** "10-bit" for more than 8 bits per sample (8-bit is the norm and not worth a word). */
  function bitDepthOf(v) {
    const d = v ? Number(v.bit_depth) : NaN;
    return Number.isInteger(d) && d > 8 && d <= 16 ? d + '-bit' : null;
  }

  /** "HDR PQ" / "HDR HLG" when the stream signals one of those transfers, else null. */
  function hdrOf(s) {
    const h = s.video ? text(s.video.hdr) : null;
    return h === 'PQ' || h === 'HLG' ? 'HDR ' + h : null;
  }

  /** The other video tracks of a multitrack publisher, one line each. */
  function tracksOf(s) {
    const tracks = s.video && Array.isArray(s.video.tracks) ? s.video.tracks : [];
    return tracks.slice(0, 16).map((t) => {
      const size = Number(t.width) > 0 && Number(t.height) > 0
        ? Math.round(Number(t.width)) + 'x' + Math.round(Number(t.height)) : null;
      return ['track ' + text(t.id), text(t.codec), text(t.profile), text(t.level), size]
        .filter(Boolean).join(' ');
    });
  }

  /** "H264 High 3.1 / AAC LC 44.1 kHz", "HEVC Main 10 4.1 10-bit / Opus 48 kHz" */
  function codecsOf(s) {
    const parts = [];
    if (hasVideo(s)) {
      const v = s.video;
      const t = [text(v.codec), text(v.profile), text(v.level), bitDepthOf(v)]
        .filter(Boolean).join(' ');
      if (t) parts.push(t);
    }
    if (hasAudio(s)) {
      const a = s.audio;
      parts.push([text(a.codec), text(a.profile), formatRate(a.sample_rate)].filter(Boolean).join(' '));
    }
    return parts.length ? parts.join(' / ') : '—';
  }

  function channelsOf(s) {
    const c = s.audio ? Number(s.audio.channels) : NaN;
    if (c === 1) return 'mono';
    if (c === 2) return 'stereo';
    return Number.isFinite(c) && c > 0 ? c + ' channels' : '';
  }

  // ---------------------------------------------------------------------------------------
  // /stat

  /** The live streams of a /stat JSON document, sorted by application and name. */
  function streamsOf(doc) {
    const out = [];
    const servers = Array.isArray(doc.servers) ? doc.servers : [];
    servers.forEach((srv, si) => {
      const server = srv && Number.isInteger(srv.index) ? srv.index : si;
      const apps = srv && Array.isArray(srv.applications) ? srv.applications : [];
      for (const app of apps) {
        if (!app || !Array.isArray(app.streams)) continue;
        for (const s of app.streams) {
          // Only streams someone publishes; players waiting for a publisher are not "live".
          if (!s || !s.publishing) continue;
          const appName = String(app.name);
          const name = String(s.name);
          out.push({
            key: server + '\u0000' + appName + '\u0000' + name,
            server,
            app: appName,
            name,
            raw: s,
          });
        }
      }
    });
    out.sort(
      (a, b) => a.server - b.server || cmp(a.app, b.app) || cmp(a.name, b.name),
    );
    return out;
  }

  function cmp(a, b) {
    return a < b ? -1 : a > b ? 1 : 0;
  }

  /** The first application with `live on`, for the "publish with" hint. */
  function liveAppOf(doc) {
    for (const srv of Array.isArray(doc.servers) ? doc.servers : []) {
      for (const app of srv && Array.isArray(srv.applications) ? srv.applications : []) {
        if (app && app.live && app.name) return String(app.name);
      }
    }
    return 'live';
  }

  const state = {
    streams: new Map(), // key -> stream (latest poll)
    rows: new Map(), // key -> { tr, cells }
    fetchedAt: 0, // performance.now() of the latest good poll
    stale: false,
    multiServer: false,
    pendingHash: location.hash.length > 1 ? location.hash.slice(1) : null,
  };

  let pollTimer = 0;
  let polling = false;

  async function poll() {
    clearTimeout(pollTimer);
    if (polling) return;
    polling = true;
    try {
      const doc = await fetchStat();
      showStat(doc);
    } catch (e) {
      showStatError(e);
    } finally {
      polling = false;
      pollTimer = setTimeout(tick, POLL_MS);
    }
    maybeLoadReplays();
  }

  function tick() {
    // A hidden tab does not poll; it catches up when shown again.
    if (document.hidden) {
      pollTimer = setTimeout(tick, POLL_MS);
    } else {
      poll();
    }
  }

  async function fetchStat() {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), STAT_TIMEOUT_MS);
    let res;
    try {
      res = await fetch(cfg.stat, {
        cache: 'no-store',
        headers: { Accept: 'application/json' },
        signal: ctl.signal,
      });
    } catch (e) {
      throw new Error(
        e && e.name === 'AbortError'
          ? 'no answer within ' + STAT_TIMEOUT_MS / 1000 + ' s'
          : 'the server cannot be reached',
      );
    } finally {
      clearTimeout(timer);
    }
    if (!res.ok) {
      const hint = res.status === 404 ? ' (is "rtmp_stat all;" configured at /stat?)' : '';
      throw new Error('HTTP ' + res.status + hint);
    }
    let doc;
    try {
      doc = await res.json();
    } catch {
      throw new Error('the answer is not JSON (is the module new enough for ?format=json?)');
    }
    if (!doc || typeof doc !== 'object' || !Array.isArray(doc.servers)) {
      throw new Error('the answer has no "servers" list');
    }
    return doc;
  }

  function showStat(doc) {
    const list = streamsOf(doc);
    state.fetchedAt = performance.now();
    state.stale = false;
    state.multiServer = new Set(list.map((s) => s.server)).size > 1;
    state.streams = new Map(list.map((s) => [s.key, s]));

    el.error.hidden = true;
    el.table.classList.remove('stale');
    renderRows(list);

    const app = liveAppOf(doc);
    const host = location.hostname || 'HOST';
    el.emptyFfmpeg.textContent =
      'ffmpeg -re -i input.mp4 -c:v libx264 -c:a aac -f flv rtmp://' + host + '/' + app + '/KEY';
    el.emptyObs.textContent = 'rtmp://' + host + '/' + app;
    el.empty.hidden = list.length > 0;
    el.table.hidden = list.length === 0;
    document.body.dataset.stat = list.length ? 'ok' : 'empty';

    const n = list.length;
    el.status.textContent =
      (n === 0 ? 'No live streams' : n === 1 ? '1 live stream' : n + ' live streams') +
      ' · updated ' + new Date().toLocaleTimeString();

    const info = [];
    if (text(doc.nginx_version)) info.push('nginx ' + doc.nginx_version);
    if (text(doc.module_version)) info.push('nginx-rtmp-rs ' + doc.module_version);
    if (Number.isFinite(Number(doc.uptime_s)) && doc.uptime_s !== null) {
      info.push('up ' + formatUptime(Number(doc.uptime_s) * 1000));
    }
    el.serverInfo.textContent = info.join(' · ');

    playerStreamUpdate();
    openPendingHash();
  }

  function showStatError(e) {
    state.stale = true;
    document.body.dataset.stat = 'error';
    el.error.textContent = '';
    const strong = document.createElement('strong');
    strong.textContent = 'Cannot read the stream list';
    el.error.append(strong, ' from ' + cfg.stat + ': ' + (e && e.message ? e.message : String(e)) + '. Retrying…');
    el.error.hidden = false;
    el.empty.hidden = true;
    el.table.classList.add('stale');
    el.status.textContent = 'Stream list unavailable';
  }

  // ---------------------------------------------------------------------------------------
  // The table (rows are kept per stream, so focus and selection survive each poll)

  const COLUMNS = [
    ['name', 'Stream'],
    ['uptime', 'Uptime'],
    ['res', 'Resolution'],
    ['codecs', 'Codecs'],
    ['bitrate', 'Bitrate'],
    ['viewers', 'Viewers'],
  ];

  function makeRow(s) {
    const tr = document.createElement('tr');
    tr.className = 'stream-row';
    const cells = {};
    for (const [cls, label] of COLUMNS) {
      const td = document.createElement('td');
      td.className = 'c-' + cls;
      td.dataset.label = label;
      cells[cls] = td;
      tr.appendChild(td);
    }
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'stream-name';
    const srv = document.createElement('span');
    srv.className = 'badge';
    // Shown while the stream is being recorded (the files in its title).
    const rec = document.createElement('span');
    rec.className = 'badge rec';
    rec.hidden = true;
    const nameText = document.createElement('span');
    button.append(srv, rec, nameText);
    cells.name.appendChild(button);
    cells.srvBadge = srv;
    cells.recBadge = rec;
    cells.nameText = nameText;
    const resWrap = document.createElement('span');
    const resText = document.createElement('span');
    const fps = document.createElement('span');
    fps.className = 'sub';
    // Shown when the stream signals an HDR transfer (PQ or HLG).
    const hdr = document.createElement('span');
    hdr.className = 'badge hdr';
    hdr.hidden = true;
    resWrap.append(resText, fps, hdr);
    cells.res.appendChild(resWrap);
    cells.resText = resText;
    cells.fps = fps;
    cells.hdrBadge = hdr;
    // The whole row is a target; the button makes it reachable by keyboard.
    tr.addEventListener('click', () => {
      const cur = state.streams.get(tr.dataset.key);
      if (cur) select(cur);
    });
    return { tr, cells };
  }

  function updateRow(row, s) {
    const r = s.raw;
    const c = row.cells;
    row.tr.dataset.key = s.key;
    setText(c.nameText, s.app + '/' + s.name);
    setText(c.srvBadge, state.multiServer ? 'srv ' + s.server : '');
    c.srvBadge.hidden = !state.multiServer;
    const recs = Array.isArray(r.recorders) ? r.recorders : [];
    setText(c.recBadge, recs.length ? 'REC' : '');
    c.recBadge.hidden = recs.length === 0;
    c.recBadge.title = recs.map((x) => String(x.path)).join('\n');
    setText(c.uptime, formatUptime(r.time_ms));
    setText(c.resText, resolutionOf(s.raw));
    setText(c.fps, frameRateOf(s.raw));
    const hdr = hdrOf(s.raw);
    setText(c.hdrBadge, hdr || '');
    c.hdrBadge.hidden = !hdr;
    setText(c.codecs, codecsOf(s.raw));
    c.codecs.title = [channelsOf(s.raw)].concat(tracksOf(s.raw)).filter(Boolean).join('\n');
    setText(c.bitrate, formatBitrate(r.bw_in));
    const n = Number(r.nclients);
    const viewers = Number.isFinite(n) ? Math.max(0, n - (r.publishing ? 1 : 0)) : 0;
    setText(c.viewers, String(viewers));
  }

  function setText(node, t) {
    if (node.textContent !== t) node.textContent = t;
  }

  function renderRows(list) {
    const keep = new Set(list.map((s) => s.key));
    for (const [key, row] of state.rows) {
      if (!keep.has(key)) {
        row.tr.remove();
        state.rows.delete(key);
      }
    }
    const order = [];
    for (const s of list) {
      let row = state.rows.get(s.key);
      if (!row) {
        row = makeRow(s);
        state.rows.set(s.key, row);
      }
      updateRow(row, s);
      order.push(row.tr);
    }
    markSelected();
    reorder(el.body, order);
  }

  /** Re-appends only when the order changed (moving a focused row would lose its focus). */
  function reorder(body, order) {
    const current = Array.from(body.children);
    if (current.length !== order.length || current.some((tr, i) => tr !== order[i])) {
      body.append(...order);
    }
  }

  // Uptimes tick between polls (not while the list is stale).
  setInterval(() => {
    if (state.stale || !state.fetchedAt) return;
    const dt = performance.now() - state.fetchedAt;
    for (const [key, row] of state.rows) {
      const s = state.streams.get(key);
      if (s) setText(row.cells.uptime, formatUptime(Number(s.raw.time_ms) + dt));
    }
  }, 1000);

  // ---------------------------------------------------------------------------------------
  // Replays: NAME.m3u8 files (record_format mp4 writes one beside each NAME.mp4) of the
  // directory at cfg.replays, listed by nginx's autoindex as JSON:
  // [{"name": "cam-1765000000.m3u8", "type": "file", "mtime": "Sat, 06 Dec 2025 ...", "size": 1333}]

  const replays = {
    enabled: Boolean(cfg.replays),
    loading: false,
    loadedAt: -Infinity,
    recording: null, // recordingPlaylists() when the list was last read
    rows: new Map(), // key -> { tr, cells, replay }
  };
  // body[data-replays]: ok, none (no listing here), error, off (not configured).
  if (!replays.enabled) document.body.dataset.replays = 'off';

  /** Playlists of the recordings being written now: not finished, so not listed yet. */
  function recordingPlaylists() {
    const out = [];
    for (const s of state.streams.values()) {
      for (const r of Array.isArray(s.raw.recorders) ? s.raw.recorders : []) {
        const file = String(r && r.path).split('/').pop();
        // The module's name for it: X.mp4 -> X.m3u8, another suffix gets .m3u8 added.
        out.push(file.endsWith('.mp4') ? file.slice(0, -4) + '.m3u8' : file + '.m3u8');
      }
    }
    return out.sort().join('/');
  }

  function maybeLoadReplays() {
    if (!replays.enabled || replays.loading || document.hidden) return;
    const recording = recordingPlaylists();
    if (recording !== replays.recording || performance.now() - replays.loadedAt >= REPLAYS_POLL_MS) {
      loadReplays(recording);
    }
  }

  async function loadReplays(recording) {
    replays.loading = true;
    // A failure is tried again with the next change or period, not at every poll.
    replays.recording = recording;
    replays.loadedAt = performance.now();
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), STAT_TIMEOUT_MS);
    try {
      const res = await fetch(cfg.replays, {
        cache: 'no-cache',
        headers: { Accept: 'application/json' },
        signal: ctl.signal,
      });
      if (res.status === 404 || res.status === 403) {
        // No such location (or no listing) on this server: no replays, and no more asking.
        replays.enabled = false;
        el.replays.hidden = true;
        document.body.dataset.replays = 'none';
        return;
      }
      if (!res.ok) throw new Error('HTTP ' + res.status);
      const list = await res.json();
      if (!Array.isArray(list)) throw new Error('not a listing');
      renderReplays(replaysOf(list, new Set(recording.split('/'))));
      document.body.dataset.replays = 'ok';
    } catch {
      // Unreachable, or not a listing: what is shown stays, until the next try.
      document.body.dataset.replays = 'error';
    } finally {
      clearTimeout(timer);
      replays.loading = false;
    }
  }

  /** The finished replays of a listing, newest first. */
  function replaysOf(list, recording) {
    const files = list.filter((f) => f && f.type === 'file' && typeof f.name === 'string');
    const sizes = new Map(files.map((f) => [f.name, Number(f.size)]));
    const base = new URL(cfg.replays, document.baseURI);
    const out = [];
    for (const f of files) {
      const file = f.name;
      if (!file.endsWith('.m3u8') || file.length <= 5 || recording.has(file)) continue;
      const title = file.slice(0, -5);
      const ended = Date.parse(f.mtime);
      const size = sizes.get(title + '.mp4');
      out.push({
        key: 'replay\u0000' + file,
        replay: true,
        file,
        title,
        ended: Number.isFinite(ended) ? ended : 0,
        size: Number.isFinite(size) ? size : null,
        url: new URL(encodeURIComponent(file), base).href,
      });
    }
    out.sort((a, b) => b.ended - a.ended || cmp(a.file, b.file));
    return out;
  }

  function makeReplayRow() {
    const tr = document.createElement('tr');
    tr.className = 'stream-row';
    const cells = {};
    for (const [cls, label] of [['name', 'Recording'], ['ended', 'Ended'], ['size', 'Size']]) {
      const td = document.createElement('td');
      td.className = 'c-' + cls;
      td.dataset.label = label;
      cells[cls] = td;
      tr.appendChild(td);
    }
    // A link to the playlist: a plain click plays it here, a middle or modified click (or
    // "copy link") takes the playlist to another player.
    const link = document.createElement('a');
    link.className = 'stream-name';
    const nameText = document.createElement('span');
    link.appendChild(nameText);
    cells.name.appendChild(link);
    cells.link = link;
    cells.nameText = nameText;
    const row = { tr, cells, replay: null };
    link.addEventListener('click', (e) => {
      if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) {
        e.stopPropagation();
        return;
      }
      e.preventDefault();
    });
    tr.addEventListener('click', () => {
      if (row.replay) select(row.replay);
    });
    return row;
  }

  function updateReplayRow(row, r) {
    const c = row.cells;
    row.replay = r;
    row.tr.dataset.key = r.key;
    setText(c.nameText, r.title);
    if (c.link.href !== r.url) c.link.href = r.url;
    c.link.title = r.file;
    setText(c.ended, r.ended ? new Date(r.ended).toLocaleString() : '—');
    setText(c.size, formatBytes(r.size));
  }

  function renderReplays(list) {
    const shown = list.slice(0, MAX_REPLAYS);
    const keep = new Set(shown.map((r) => r.key));
    for (const [key, row] of replays.rows) {
      if (!keep.has(key)) {
        row.tr.remove();
        replays.rows.delete(key);
      }
    }
    const order = [];
    for (const r of shown) {
      let row = replays.rows.get(r.key);
      if (!row) {
        row = makeReplayRow();
        replays.rows.set(r.key, row);
      }
      updateReplayRow(row, r);
      order.push(row.tr);
    }
    markSelected();
    reorder(el.replaysBody, order);
    setText(
      el.replaysCount,
      list.length > shown.length ? '(the newest ' + shown.length + ' of ' + list.length + ')' : '(' + list.length + ')',
    );
    el.replays.hidden = list.length === 0;
  }

  // ---------------------------------------------------------------------------------------
  // The player (a live stream of /stat, or a replay: { replay: true, title, url, ... })

  const player = {
    gen: 0, // bumped by every start/stop; async steps of an older one give up
    stream: null,
    format: 'hls',
    hls: null,
    dash: null,
    flv: null,
    latencyTimer: 0,
    retries: 0,
    retryTimer: 0,
    mediaRecoveries: 0,
    gone: false,
  };

  function streamUrl(template, s) {
    const path = template.replace(/\{(app|name)\}/g, (_, k) =>
      encodeURIComponent(k === 'app' ? s.app : s.name),
    );
    return new URL(path, document.baseURI).href;
  }

  function setPlayer(stateName, message) {
    el.player.dataset.state = stateName;
    setText(el.playerMsg, message || '');
    el.playerMsg.hidden = !message;
  }

  function select(s) {
    if (player.stream && player.stream.key === s.key && el.player.dataset.state !== 'error'
        && el.player.dataset.state !== 'ended') {
      return; // already playing it
    }
    setHash(s.replay ? null : s);
    // Replays are HLS only (the recording's own playlist).
    start(s, s.replay ? 'hls' : currentFormat(), 0);
    el.player.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
  }

  function start(s, format, retries) {
    stop();
    const gen = player.gen;
    player.stream = s;
    player.format = format;
    player.retries = retries;
    player.mediaRecoveries = 0;
    player.gone = false;
    el.player.hidden = false;
    setText(el.playerTitle, s.replay ? 'Replay: ' + s.title : s.app + '/' + s.name);
    setText(el.playerEngine, '');
    const url = s.replay ? s.url : streamUrl(cfg[format], s);
    el.playerLink.href = url;
    setText(el.playerLink, { hls: 'Playlist', dash: 'MPD', flv: 'FLV' }[format]);
    const label = { hls: 'HLS', dash: 'DASH', flv: 'HTTP-FLV' }[format];
    setPlayer('loading', retries ? el.playerMsg.textContent : 'Loading ' + label + '…');
    markSelected();
    ({ hls: startHls, dash: startDash, flv: startFlv })[format](url, gen);
    if (!s.replay) player.latencyTimer = setInterval(showLatency, LATENCY_MS);
  }

  /** Seconds behind the live edge, as the playing engine knows it (null: not known). */
  function latencyNow() {
    const v = el.video;
    if (player.hls) {
      // The frame's PROGRAM-DATE-TIME is the wall clock it reached the server at.
      const date = player.hls.playingDate;
      return date ? (Date.now() - date.getTime()) / 1000 : null;
    }
    if (player.dash) {
      const l = player.dash.getCurrentLiveLatency();
      return Number.isFinite(l) && l > 0 ? l : null;
    }
    if (player.flv && v.buffered.length) {
      // FLV carries no wall clock: what is buffered ahead of the playing frame.
      return v.buffered.end(v.buffered.length - 1) - v.currentTime;
    }
    return null;
  }

  function showLatency() {
    const l = el.video.paused ? null : latencyNow();
    setText(el.playerLatency, l === null ? '' : (player.flv ? 'buffer ' : 'latency ') + l.toFixed(1) + ' s');
  }

  function lowLatency() {
    return Boolean(el.lowLatency && el.lowLatency.checked);
  }

  function stop() {
    player.gen += 1;
    clearTimeout(player.retryTimer);
    clearInterval(player.latencyTimer);
    setText(el.playerLatency, '');
    if (player.flv) {
      try {
        player.flv.destroy();
      } catch {
        // already torn down
      }
      player.flv = null;
    }
    if (player.hls) {
      try {
        player.hls.destroy();
      } catch {
        // already torn down
      }
      player.hls = null;
    }
    if (player.dash) {
      try {
        player.dash.destroy();
      } catch {
        // already torn down
      }
      player.dash = null;
    }
    const v = el.video;
    if (v.hasAttribute('src')) {
      v.removeAttribute('src');
      v.load();
    }
  }

  function close() {
    stop();
    player.stream = null;
    el.player.hidden = true;
    setPlayer('idle', '');
    setHash(null);
    markSelected();
  }

  function markSelected() {
    for (const [key, row] of [...state.rows, ...replays.rows]) {
      const selected = player.stream !== null && player.stream.key === key;
      row.tr.classList.toggle('selected', selected);
      if (selected) row.tr.setAttribute('aria-current', 'true');
      else row.tr.removeAttribute('aria-current');
    }
  }

  function fail(message) {
    stop();
    setPlayer('error', message);
  }

  /** Tries the same stream again later (its playlist may not exist yet), or gives up. */
  function retryLater(why, gen) {
    if (gen !== player.gen) return;
    const s = player.stream;
    if (s && s.replay) {
      // A file, not a stream that may yet start: nothing to wait for.
      fail('Cannot play this replay (' + why + ').');
      return;
    }
    if (player.gone) {
      fail('The stream has ended.');
      return;
    }
    if (player.retries >= MAX_RETRIES) {
      fail('Cannot play this stream (' + why + '). Is ' + player.format.toUpperCase() + ' on for its application?');
      return;
    }
    const retries = player.retries + 1;
    const format = player.format;
    stop();
    setPlayer('waiting', 'Waiting for the stream to become available (' + why + ')…');
    player.retryTimer = setTimeout(() => {
      // player.stream is replaced by each poll's fresh copy: compare keys.
      if (player.stream && player.stream.key === s.key) start(player.stream, format, retries);
    }, RETRY_MS);
  }

  /** Keeps the playing stream's data fresh; notes when it left /stat. */
  function playerStreamUpdate() {
    if (!player.stream || player.stream.replay) return;
    const cur = state.streams.get(player.stream.key);
    if (cur) {
      player.stream = cur;
      player.gone = false;
    } else {
      player.gone = true;
      if (el.player.dataset.state === 'waiting') fail('The stream has ended.');
    }
  }

  function playVideo(gen) {
    const v = el.video;
    const p = v.play();
    if (!p || !p.catch) return;
    p.catch((e) => {
      if (gen !== player.gen) return;
      if (e && e.name === 'NotAllowedError' && !v.muted) {
        // Autoplay with sound refused (e.g. Safari after an asynchronous load): start muted.
        v.muted = true;
        playVideo(gen);
        setPlayer(el.player.dataset.state, 'Muted: the browser refused to start with sound; unmute in the controls.');
      } else if (e && e.name === 'NotAllowedError') {
        setPlayer('paused', 'Press play to start.');
      }
      // AbortError: a newer load or pause() interrupted this play(); nothing to report.
    });
  }

  // One set of listeners on the <video> for every engine.
  el.video.addEventListener('playing', () => {
    if (!player.stream) return;
    player.retries = 0;
    const muted = el.playerMsg.textContent.startsWith('Muted');
    setPlayer('playing', muted ? el.playerMsg.textContent : '');
  });
  el.video.addEventListener('waiting', () => {
    if (player.stream && el.player.dataset.state === 'playing') setPlayer('buffering', 'Buffering…');
  });
  el.video.addEventListener('ended', () => {
    if (player.stream) setPlayer('ended', player.stream.replay ? 'The replay has ended.' : 'The stream has ended.');
  });
  el.video.addEventListener('error', () => {
    // Only errors of the current source (stop() empties it, which is no error).
    if (!player.stream || !el.video.currentSrc) return;
    const e = el.video.error;
    const gen = player.gen;
    if (player.format === 'hls' && !player.hls && !player.gone) {
      // The browser's own HLS: most likely no playlist yet.
      retryLater('the browser could not load it' + (e && e.code ? ', code ' + e.code : ''), gen);
    } else {
      fail('Playback failed' + (e && e.message ? ': ' + e.message : '') + '.');
    }
  });

  const scripts = new Map();
  function loadScript(src) {
    if (!scripts.has(src)) {
      scripts.set(
        src,
        new Promise((resolve, reject) => {
          const s = document.createElement('script');
          s.src = src;
          s.async = true;
          s.onload = () => resolve();
          s.onerror = () => {
            scripts.delete(src);
            s.remove();
            reject(new Error('could not load ' + src));
          };
          document.head.appendChild(s);
        }),
      );
    }
    return scripts.get(src);
  }

  async function startHls(url, gen) {
    let loadError = null;
    try {
      await loadScript(cfg.hlsScript);
    } catch (e) {
      loadError = e;
    }
    if (gen !== player.gen) return;
    const Hls = window.Hls;
    if (Hls && Hls.isSupported()) {
      // A replay starts at its beginning, also while its playlist is still an EVENT one (a
      // recording cut by a crash never gets its EXT-X-ENDLIST), with a seek bar.
      const replay = Boolean(player.stream && player.stream.replay);
      // Low latency: LL-HLS parts when the playlist has them, and a faster playback rate to
      // get back to the live edge after a stall (hls.js otherwise stays behind for good).
      const live = lowLatency()
        ? { lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.5 }
        : { lowLatencyMode: false };
      const hls = new Hls(
        replay
          ? { startPosition: 0 }
          : { liveDurationInfinity: true, backBufferLength: 30, ...live },
      );
      player.hls = hls;
      setText(el.playerEngine, 'hls.js ' + Hls.version);
      hls.on(Hls.Events.MANIFEST_PARSED, () => {
        if (gen === player.gen) playVideo(gen);
      });
      hls.on(Hls.Events.ERROR, (_event, d) => {
        if (gen !== player.gen || !d || !d.fatal) return;
        if (d.type === Hls.ErrorTypes.MEDIA_ERROR && player.mediaRecoveries < 2) {
          player.mediaRecoveries += 1;
          hls.recoverMediaError();
        } else if (d.type === Hls.ErrorTypes.NETWORK_ERROR) {
          const code = d.response && d.response.code ? 'HTTP ' + d.response.code : d.details;
          retryLater(code, gen);
        } else {
          fail('Playback failed (' + d.details + ').');
        }
      });
      hls.loadSource(url);
      hls.attachMedia(el.video);
    } else if (el.video.canPlayType('application/vnd.apple.mpegurl')) {
      // Safari (and iOS before Managed Media Source): the browser plays HLS itself.
      setText(el.playerEngine, 'native HLS');
      el.video.src = url;
      playVideo(gen);
    } else if (loadError) {
      fail('The HLS player (' + cfg.hlsScript + ') could not be loaded; this browser cannot play HLS without it.');
    } else {
      fail('This browser cannot play HLS (no Media Source Extensions).');
    }
  }

  async function startDash(url, gen) {
    try {
      await loadScript(cfg.dashScript);
    } catch {
      if (gen === player.gen) fail('The DASH player (' + cfg.dashScript + ') could not be loaded.');
      return;
    }
    if (gen !== player.gen) return;
    const dashjs = window.dashjs;
    if (!dashjs) {
      fail('The DASH player (' + cfg.dashScript + ') did not start.');
      return;
    }
    if (typeof dashjs.supportsMediaSource === 'function' && !dashjs.supportsMediaSource()) {
      fail('This browser cannot play DASH (no Media Source Extensions).');
      return;
    }
    const p = dashjs.MediaPlayer().create();
    player.dash = p;
    setText(el.playerEngine, 'dash.js ' + p.getVersion());
    // The module's MPD names its own clock (UTCTiming); should one lack it, dash.js would ask
    // a public time server: ask this server's Date header instead.
    p.updateSettings({
      streaming: {
        // Low latency: catch up with the live edge by playing faster (dash.js's target is
        // the MPD's suggested presentation delay).
        liveCatchup: { enabled: lowLatency() },
        utcSynchronization: {
          defaultTimingSource: {
            scheme: 'urn:mpeg:dash:utc:http-head:2014',
            value: new URL(cfg.stat, document.baseURI).href,
          },
        },
      },
    });
    const ev = dashjs.MediaPlayer.events;
    p.on(ev.ERROR, (e) => {
      if (gen !== player.gen) return;
      const err = e && e.error ? e.error : e;
      const code = err && err.code;
      // 10: the MPD could not be downloaded, 11: the manifest loader failed (e.g. 404).
      if (code === 10 || code === 11 || code === 25) {
        retryLater('no MPD yet', gen);
      } else {
        fail('Playback failed (' + (err && err.message ? err.message : 'dash.js error ' + code) + ').');
      }
    });
    p.on(ev.PLAYBACK_NOT_ALLOWED, () => {
      if (gen !== player.gen) return;
      el.video.muted = true;
      playVideo(gen);
      setPlayer(el.player.dataset.state, 'Muted: the browser refused to start with sound; unmute in the controls.');
    });
    p.initialize(el.video, url, true);
  }

  async function startFlv(url, gen) {
    try {
      await loadScript(cfg.flvScript);
    } catch {
      if (gen === player.gen) fail('The HTTP-FLV player (' + cfg.flvScript + ') could not be loaded.');
      return;
    }
    if (gen !== player.gen) return;
    const mpegts = window.mpegts;
    if (!mpegts || !mpegts.isSupported()) {
      fail('This browser cannot play HTTP-FLV (no Media Source Extensions).');
      return;
    }
    const ll = lowLatency();
    const p = mpegts.createPlayer(
      { type: 'flv', isLive: true, url },
      {
        // Low latency: no stash buffer, and skip ahead when more than 1.5 s is buffered.
        enableStashBuffer: !ll,
        liveBufferLatencyChasing: ll,
        liveBufferLatencyMaxLatency: 1.5,
        liveBufferLatencyMinRemain: 0.3,
      },
    );
    player.flv = p;
    setText(el.playerEngine, 'mpegts.js ' + (mpegts.version || ''));
    p.on(mpegts.Events.ERROR, (type, detail, info) => {
      if (gen !== player.gen) return;
      if (type === mpegts.ErrorTypes.NETWORK_ERROR) {
        const code = info && info.code ? 'HTTP ' + info.code : detail;
        retryLater(code, gen);
      } else {
        fail('Playback failed (' + detail + ').');
      }
    });
    p.attachMediaElement(el.video);
    p.load();
    playVideo(gen);
  }

  // ---------------------------------------------------------------------------------------
  // Format toggle, deep links, wiring

  function currentFormat() {
    const checked = document.querySelector('input[name="format"]:checked');
    return checked && FORMATS.includes(checked.value) ? checked.value : 'hls';
  }

  try {
    const saved = localStorage.getItem(FORMAT_KEY);
    const input = document.querySelector('input[name="format"][value="' + saved + '"]');
    if (FORMATS.includes(saved) && input) input.checked = true;
    const ll = localStorage.getItem(LOW_LATENCY_KEY);
    if (el.lowLatency && (ll === 'on' || ll === 'off')) el.lowLatency.checked = ll === 'on';
  } catch {
    // no storage (private mode, file://): the defaults it is
  }

  if (el.lowLatency) {
    el.lowLatency.addEventListener('change', () => {
      try {
        localStorage.setItem(LOW_LATENCY_KEY, lowLatency() ? 'on' : 'off');
      } catch {
        // not remembered then
      }
      if (player.stream && !player.stream.replay) start(player.stream, player.format, 0);
    });
  }

  for (const input of document.querySelectorAll('input[name="format"]')) {
    input.addEventListener('change', () => {
      const f = currentFormat();
      try {
        localStorage.setItem(FORMAT_KEY, f);
      } catch {
        // not remembered then
      }
      if (player.stream && !player.stream.replay) start(player.stream, f, 0);
    });
  }

  el.playerClose.addEventListener('click', close);

  // #APP/NAME opens that stream once it is listed.
  function setHash(s) {
    const h = s ? '#' + encodeURIComponent(s.app) + '/' + encodeURIComponent(s.name) : '';
    history.replaceState(null, '', location.pathname + location.search + h);
  }

  function decodeHash(h) {
    const at = h.indexOf('/');
    if (at < 0) return null;
    try {
      return { app: decodeURIComponent(h.slice(0, at)), name: decodeURIComponent(h.slice(at + 1)) };
    } catch {
      return null;
    }
  }

  function openPendingHash() {
    if (!state.pendingHash || player.stream) return;
    const want = decodeHash(state.pendingHash);
    if (!want) {
      state.pendingHash = null;
      return;
    }
    for (const s of state.streams.values()) {
      if (s.app === want.app && s.name === want.name) {
        state.pendingHash = null;
        start(s, currentFormat(), 0);
        return;
      }
    }
  }

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) poll();
  });

  poll();
})();
