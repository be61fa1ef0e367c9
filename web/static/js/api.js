// Small HTTP helpers: the public config and the JSON endpoints of contract §2.

export class HttpError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

const DEFAULT_CONFIG = { map_tile_url: '', emergency_number: '110', city_center: null };
let configPromise = null;

/** GET /api/config once per page; falls back to safe defaults if the server cannot answer. */
export function getConfig() {
  if (!configPromise) {
    configPromise = fetch('/api/config', { cache: 'no-store' })
      .then((r) => (r.ok ? r.json() : {}))
      .catch(() => ({}))
      .then((c) => ({ ...DEFAULT_CONFIG, ...c }));
  }
  return configPromise;
}

export async function postJSON(path, body, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  let r;
  try {
    r = await fetch(path, { method: 'POST', headers, body: JSON.stringify(body) });
  } catch (e) {
    throw new HttpError(0, 'network', String(e));
  }
  return answer(r);
}

export async function getJSON(path, token) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  let r;
  try {
    r = await fetch(path, { headers, cache: 'no-store' });
  } catch (e) {
    throw new HttpError(0, 'network', String(e));
  }
  return answer(r);
}

async function answer(r) {
  let data = null;
  try {
    data = await r.json();
  } catch {
    data = null;
  }
  if (!r.ok) {
    const err = (data && data.error) || {};
    throw new HttpError(r.status, err.code || `http_${r.status}`, err.message);
  }
  return data;
}

/** A random id (request ids, device ids, message ids). */
export function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

/** localStorage that never throws (private mode, quota). */
export const store = {
  get(key) {
    try {
      const v = localStorage.getItem(key);
      return v === null ? null : JSON.parse(v);
    } catch {
      return null;
    }
  },
  set(key, value) {
    try {
      localStorage.setItem(key, JSON.stringify(value));
    } catch {
      /* storage unavailable: the page still works for this visit */
    }
  },
  del(key) {
    try {
      localStorage.removeItem(key);
    } catch {
      /* ignore */
    }
  },
};
