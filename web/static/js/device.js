// A resident's identity without a login: a random device id kept in localStorage, traded at
// POST /api/auth/device for a token (contract §2), and a fresh token when the server stops
// accepting the old one. The help page (/) and the mediation page (/mediate) share both keys,
// so a resident is the same account on either.
import { Socket } from './ws.js';
import { postJSON, newId, store } from './api.js';

const DEVICE = 'helpline.device_id';
const TOKEN = 'helpline.resident.token';

/** The saved device token, or a new one for this device's id (made up and kept on first use). */
export async function deviceToken() {
  const saved = store.get(TOKEN);
  if (saved) return saved;
  let device = store.get(DEVICE);
  if (!device) {
    device = newId();
    store.set(DEVICE, device);
  }
  const r = await postJSON('/api/auth/device', { device_id: device });
  store.set(TOKEN, r.token);
  return r.token;
}

/** Keep a token the server gave this browser's resident another way (a phone code): the next hello uses it. */
export function saveResidentToken(token) {
  store.set(TOKEN, token);
}

/**
 * A Socket that signs in with the device token. When the server refuses the token (a stale
 * one), it is forgotten and the socket restarts after retryAfterMs() — unless retryIf() says
 * no by then — so the next hello carries a new token for the same device id.
 */
export function deviceSocket({ retryAfterMs = () => 1000, retryIf = () => true } = {}) {
  const sock = new Socket({ getToken: deviceToken });
  sock.on('unauthorized', () => {
    store.del(TOKEN);
    setTimeout(() => { if (retryIf()) sock.restart(); }, retryAfterMs());
  });
  return sock;
}
