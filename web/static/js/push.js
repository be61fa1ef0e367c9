// Alerts when the screen is off: the Web Push opt-in of the staff pages (responder, dispatch).
//
// One button. The first press registers the service worker (/sw.js), asks the browser's permission
// (only ever on that press), subscribes with the server's VAPID key (GET /api/push/key) and gives
// the subscription to the server (POST /api/push/subscribe). Pressed again, it unsubscribes
// (DELETE /api/push/subscribe, then the browser's own). After every sign-in the page hands an
// existing subscription to the server again (so it follows whoever is signed in here, and comes
// back after a sign-out elsewhere dropped it); at sign-out the browser's subscription is dropped.
//
// The section's data-state is one of: unsupported, denied, off, working, on, failed.
import { t, getLang, onLangChange } from './i18n.js';
import { getJSON, HttpError } from './api.js';
import { h } from './ui.js';

function supported() {
  return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
}

function keyBytes(b64url) {
  const s = b64url.replace(/-/g, '+').replace(/_/g, '/');
  const raw = atob(s + '='.repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

function sameKey(sub, key) {
  const had = sub.options && sub.options.applicationServerKey;
  if (!had) return true; // the browser does not say: keep it
  const a = new Uint8Array(had);
  return a.length === key.length && a.every((b, i) => b === key[i]);
}

async function send(method, body, token) {
  let r;
  try {
    r = await fetch('/api/push/subscribe', {
      method,
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
    });
  } catch (e) {
    throw new HttpError(0, 'network', String(e));
  }
  if (!r.ok) {
    let err = {};
    try {
      err = (await r.json()).error || {};
    } catch {
      /* not JSON */
    }
    throw new HttpError(r.status, err.code || `http_${r.status}`, err.message);
  }
}

/**
 * @param {object} o
 * @param {HTMLElement} o.container  where the card goes (appended)
 * @param {() => string|null} o.token  the signed-in session's token
 * @returns {{refresh: () => Promise<void>, signedOut: () => Promise<void>}}
 */
export function pushAlerts({ container, token }) {
  const title = h('h2', { attrs: { id: 'push-title' } });
  const status = h('p', { class: 'push-status', attrs: { role: 'status' } });
  const button = h('button', { class: 'btn btn-secondary btn-wide', testid: 'push-toggle', attrs: { type: 'button' } });
  const card = h('section', { class: 'card push-alerts', testid: 'push-alerts', attrs: { 'aria-labelledby': 'push-title' } },
    title, status, button);
  container.append(card);
  let state = supported() ? 'off' : 'unsupported';

  function paint() {
    card.dataset.state = state;
    title.textContent = t('push.title');
    status.textContent = t(`push.state.${state}`);
    button.textContent = state === 'on' ? t('push.turnOff') : t('push.turnOn');
    button.hidden = state === 'unsupported' || state === 'denied';
    button.disabled = state === 'working';
    button.setAttribute('aria-pressed', String(state === 'on'));
  }

  async function registration() {
    await navigator.serviceWorker.register('/sw.js', { scope: '/' });
    return navigator.serviceWorker.ready;
  }

  function describe(sub) {
    return { ...sub.toJSON(), lang: getLang() };
  }

  async function turnOn() {
    state = 'working';
    paint();
    try {
      const reg = await registration();
      const permission = await Notification.requestPermission(); // asked on this press only
      if (permission !== 'granted') {
        state = permission === 'denied' ? 'denied' : 'off';
        return;
      }
      const { public_key: key } = await getJSON('/api/push/key');
      let sub = await reg.pushManager.getSubscription();
      if (sub && !sameKey(sub, keyBytes(key))) {
        await sub.unsubscribe(); // made with another server key: useless now
        sub = null;
      }
      if (!sub) sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) });
      await send('POST', describe(sub), token());
      state = 'on';
    } catch (e) {
      console.warn('push opt-in failed', e);
      state = 'failed';
    } finally {
      paint();
    }
  }

  async function turnOff() {
    state = 'working';
    paint();
    try {
      const reg = await navigator.serviceWorker.getRegistration('/');
      const sub = reg && (await reg.pushManager.getSubscription());
      if (sub) {
        await send('DELETE', { endpoint: sub.endpoint }, token());
        await sub.unsubscribe();
      }
      state = 'off';
    } catch (e) {
      console.warn('push opt-out failed', e);
      state = 'failed';
    } finally {
      paint();
    }
  }

  /** After each sign-in: an existing subscription is handed to the server again. */
  async function refresh() {
    if (state === 'unsupported' || state === 'working') return;
    try {
      if (Notification.permission === 'denied') {
        state = 'denied';
        return;
      }
      const reg = await navigator.serviceWorker.getRegistration('/');
      const sub = reg && (await reg.pushManager.getSubscription());
      if (sub && Notification.permission === 'granted' && token()) {
        await send('POST', describe(sub), token());
        state = 'on';
      } else {
        state = 'off';
      }
    } catch (e) {
      console.warn('push refresh failed', e);
      state = 'failed';
    } finally {
      paint();
    }
  }

  /** Signed out (the server already dropped the account's subscriptions): drop the browser's too. */
  async function signedOut() {
    if (state === 'unsupported') return;
    try {
      const reg = await navigator.serviceWorker.getRegistration('/');
      const sub = reg && (await reg.pushManager.getSubscription());
      if (sub) await sub.unsubscribe();
    } catch {
      /* nothing more to do */
    }
    state = Notification.permission === 'denied' ? 'denied' : 'off';
    paint();
  }

  button.addEventListener('click', () => (state === 'on' ? turnOff() : turnOn()));
  onLangChange(paint);
  paint();
  return { refresh, signedOut };
}
