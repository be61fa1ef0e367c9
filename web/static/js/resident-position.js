// Where the resident is: a fresh fix when the browser gives one, else the last known place or
// the city centre with an accuracy that tells the dispatcher not to trust it.
import { getConfig, store } from './api.js';
import { currentPosition } from './ui.js';

const LAST_POS = 'helpline.resident.lastpos'; // {lat, lon, accuracy_m, at}
const FRESH_POS_MS = 2 * 60 * 1000;
const UNKNOWN_ACCURACY_M = 50000;

function remember(pos) {
  store.set(LAST_POS, {
    lat: pos.coords.latitude,
    lon: pos.coords.longitude,
    accuracy_m: Math.round(pos.coords.accuracy || 0),
    at: Date.now(),
  });
}

/** Keep a fresh fix ready when the browser already lets us, so one press sends at once. */
export async function prewarmPosition() {
  if (!('geolocation' in navigator) || !navigator.permissions) return;
  try {
    const p = await navigator.permissions.query({ name: 'geolocation' });
    if (p.state === 'granted') {
      navigator.geolocation.watchPosition(remember, () => {}, { enableHighAccuracy: true, maximumAge: 30000 });
    }
  } catch {
    /* no permissions API: we ask on the press */
  }
}

/** The best position we can have now: {lat, lon, accuracy_m, located} */
export async function locate() {
  const last = store.get(LAST_POS);
  if (last && Date.now() - last.at < FRESH_POS_MS) return { ...last, located: true };
  try {
    const pos = await currentPosition({ timeoutMs: 6000, maximumAgeMs: 60000 }); // not longer: help waits
    remember(pos);
    return {
      lat: pos.coords.latitude,
      lon: pos.coords.longitude,
      accuracy_m: Math.round(pos.coords.accuracy || 0),
      located: true,
    };
  } catch {
    // unavailable or refused: still send, with the last known place or the city centre,
    // and an accuracy that tells the dispatcher not to trust it
    if (last) return { lat: last.lat, lon: last.lon, accuracy_m: UNKNOWN_ACCURACY_M, located: false };
    const cfg = await getConfig();
    const c = cfg.city_center || [cfg.city_center_lat, cfg.city_center_lon];
    const lat = Number(c && c[0]);
    const lon = Number(c && c[1]);
    return {
      lat: Number.isFinite(lat) ? lat : 0,
      lon: Number.isFinite(lon) ? lon : 0,
      accuracy_m: UNKNOWN_ACCURACY_M,
      located: false,
    };
  }
}
