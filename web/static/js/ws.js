// The one WebSocket client every page uses (contract §3).
//
//   const sock = new Socket({ getToken: async () => token });
//   sock.onState(s => ...)         // 'idle' | 'connecting' | 'live' | 'offline' | 'unauthorized'
//   sock.on('welcome', w => ...)   // after every successful hello (first connect and reconnects)
//   sock.on('incident.updated', m => ...)   // any push type
//   const res = await sock.request('help.request', {...})   // resolves with the ok frame
//
// request() rejects with an Error carrying `.code`: one of the server's error codes,
// or 'disconnected' (the socket closed before the answer: the outcome is unknown),
// 'timeout', 'offline' (not live within the wait), 'withdrawn' (its `wanted` check said no once the
// socket was live: never sent).
// The socket reconnects by itself with exponential backoff and full jitter, re-sends
// hello, and is 'live' only between a welcome and the next close. A ping every 25 s
// (any answer, even an error, proves the server is there) catches half-dead links.

const PING_EVERY_MS = 25000;
const PING_TIMEOUT_MS = 10000;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 15000;

export class RequestError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

export class Socket {
  constructor({ getToken, url } = {}) {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    this.url = url || `${proto}//${location.host}/ws`;
    this.getToken = getToken;
    this.state = 'idle'; // not started, or stopped
    this.ws = null;
    this.pending = new Map(); // ref -> {resolve, reject, timer}
    this.listeners = new Map(); // type -> Set(callback)
    this.stateListeners = new Set();
    this.attempt = 0;
    this.seq = 0;
    this.stopped = true;
    this.retryTimer = null;
    this.pingTimer = null;
    this.serverOffsetMs = 0; // server clock minus local clock, from welcome.server_time
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this._connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const ws = this.ws;
    if (ws) this._drop(ws);
    this._setState('idle');
  }

  /** Reconnect now (e.g. after a new token was obtained). */
  restart() {
    this.stopped = false;
    clearTimeout(this.retryTimer);
    this.attempt = 0;
    if (this.ws && this.ws.readyState <= 1) this.ws.close(1000);
    else this._connect();
  }

  on(type, cb) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(cb);
    return () => this.listeners.get(type).delete(cb);
  }

  onState(cb) {
    this.stateListeners.add(cb);
    cb(this.state);
    return () => this.stateListeners.delete(cb);
  }

  /** Server time now, in ms since the epoch (corrected by the offset seen at welcome). */
  now() {
    return Date.now() + this.serverOffsetMs;
  }

  async request(type, fields = {}, { timeoutMs = 15000, waitMs = 15000, wanted = null } = {}) {
    if (this.state !== 'live') await this._waitLive(waitMs);
    // a request that waited for the connection goes out only if it is still wanted: a help request pressed
    // off line and cancelled before the link came back must never be sent later
    if (wanted && !wanted()) throw new RequestError('withdrawn');
    const ref = `${Date.now().toString(36)}-${(++this.seq).toString(36)}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(new RequestError('timeout'));
      }, timeoutMs);
      this.pending.set(ref, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ ...fields, type, ref }));
    });
  }

  _waitLive(waitMs) {
    return new Promise((resolve, reject) => {
      let off = null;
      const timer = setTimeout(() => {
        off();
        reject(new RequestError('offline'));
      }, waitMs);
      off = this.onState((s) => {
        if (s === 'live') {
          clearTimeout(timer);
          queueMicrotask(() => off());
          resolve();
        }
      });
    });
  }

  _setState(s) {
    if (s === this.state) return;
    this.state = s;
    for (const cb of [...this.stateListeners]) cb(s);
  }

  _emit(type, msg) {
    for (const cb of [...(this.listeners.get(type) || [])]) {
      try {
        cb(msg);
      } catch (e) {
        console.error(`listener for ${type} failed`, e);
      }
    }
  }

  async _connect() {
    if (this.stopped) return;
    this._setState('connecting');
    let token;
    try {
      token = await this.getToken();
    } catch (e) {
      console.warn('could not get a token', e);
      this._scheduleRetry();
      return;
    }
    if (!token) {
      this._setState('unauthorized');
      return;
    }
    if (this.stopped) return;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', token }));
    ws.onmessage = (ev) => this._onMessage(ws, ev);
    ws.onclose = (ev) => this._onClose(ws, ev);
    ws.onerror = () => {}; // onclose follows and handles it
  }

  _onMessage(ws, ev) {
    if (ws !== this.ws) return;
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (msg.ref !== undefined && this.pending.has(msg.ref)) {
      const p = this.pending.get(msg.ref);
      this.pending.delete(msg.ref);
      clearTimeout(p.timer);
      if (msg.type === 'ok') p.resolve(msg);
      else p.reject(new RequestError(msg.code || 'error', msg.message));
      return;
    }
    if (msg.type === 'welcome') {
      this.attempt = 0;
      const t = Date.parse(msg.server_time);
      if (!Number.isNaN(t)) this.serverOffsetMs = t - Date.now();
      this._setState('live');
      this._startPing(ws);
    }
    this._emit(msg.type, msg);
  }

  _onClose(ws, ev) {
    if (ws !== this.ws) return;
    this.ws = null;
    clearInterval(this.pingTimer);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new RequestError('disconnected'));
    }
    this.pending.clear();
    if (ev.code === 4401) {
      // bad or expired token: the page decides (new device token, or the login form)
      this._setState('unauthorized');
      this._emit('unauthorized', { code: ev.code });
      return;
    }
    if (this.stopped) return;
    this._setState('offline');
    this._scheduleRetry();
  }

  /** Give up on a link that stopped answering, without waiting for a closing handshake. */
  _drop(ws) {
    ws.onmessage = ws.onclose = null;
    try {
      ws.close(4000);
    } catch {
      /* already closed */
    }
    this._onClose(ws, { code: 4000 });
  }

  _scheduleRetry() {
    if (this.stopped) return;
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
    this.attempt += 1;
    const delay = BACKOFF_BASE_MS / 2 + Math.random() * cap; // full jitter, never a tight loop
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this._connect(), delay);
  }

  _startPing(ws) {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (ws !== this.ws || this.state !== 'live') return;
      this.request('ping', {}, { timeoutMs: PING_TIMEOUT_MS, waitMs: 0 }).catch((e) => {
        // any answer from the server (even "bad_request") proves the link works
        if (e.code === 'timeout' && ws === this.ws) this._drop(ws);
      });
    }, PING_EVERY_MS);
  }
}
