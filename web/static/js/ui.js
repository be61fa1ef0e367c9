// DOM helpers shared by the pages. Text always goes in as text nodes, never as HTML.
import { t, getLang, setLang, onLangChange } from './i18n.js';

/** The element with this data-testid (or null). */
export function tid(id, root = document) {
  return root.querySelector(`[data-testid="${id}"]`);
}

/**
 * h('button', {class: 'x', testid: 'accept', data: {id: 1}, attrs: {type: 'button'}, on: {click}}, 'text', child)
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  if (props.class) el.className = props.class;
  if (props.testid) el.dataset.testid = props.testid;
  if (props.text !== undefined) el.textContent = props.text;
  for (const [k, v] of Object.entries(props.data || {})) el.dataset[k] = v;
  for (const [k, v] of Object.entries(props.attrs || {})) {
    if (v !== false && v !== null && v !== undefined) el.setAttribute(k, v === true ? '' : v);
  }
  for (const [k, v] of Object.entries(props.on || {})) el.addEventListener(k, v);
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function show(el, visible) {
  el.hidden = !visible;
}

/** Wire the language switch buttons (.lang-switch) and the connection indicator (.conn). */
export function setupChrome(socket) {
  for (const btn of document.querySelectorAll('.lang-switch')) {
    const paint = () => {
      // the button names the other language, in that language
      btn.textContent = getLang() === 'zh-CN' ? 'English' : '中文';
      btn.setAttribute('lang', getLang() === 'zh-CN' ? 'en' : 'zh-CN');
      btn.title = t('common.switchLanguage');
    };
    btn.addEventListener('click', () => setLang(getLang() === 'zh-CN' ? 'en' : 'zh-CN'));
    onLangChange(paint);
    paint();
  }
  if (socket) bindConn(socket);
}

let unbindConn = null;
/** Show this socket's state in the connection indicator (.conn); replaces an earlier binding. */
export function bindConn(socket) {
  const conn = document.querySelector('.conn');
  if (!conn) return;
  if (unbindConn) unbindConn();
  const paint = () => {
    conn.dataset.state = socket.state;
    conn.textContent = t(`conn.${socket.state}`);
  };
  const offState = socket.onState(paint);
  const offLang = onLangChange(paint);
  unbindConn = () => {
    offState();
    offLang();
  };
}

/** "just now", "3 min", "1 h 05 min" */
export function fmtAge(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return t('age.seconds', { n: s });
  const m = Math.floor(s / 60);
  if (m < 60) return t('age.minutes', { n: m });
  return t('age.hours', { h: Math.floor(m / 60), m: String(m % 60).padStart(2, '0') });
}

export function fmtTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString(getLang(), { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** Is `next` at least as new as `prev` (same object, by updated_at)? Pushes and answers may cross. */
export function notOlder(prev, next) {
  if (!prev || !next || prev.id !== next.id) return true;
  const a = Date.parse(prev.updated_at);
  const b = Date.parse(next.updated_at);
  return Number.isNaN(a) || Number.isNaN(b) || b >= a;
}

/** Great-circle distance in km. */
export function distanceKm(lat1, lon1, lat2, lon2) {
  const r = (x) => (x * Math.PI) / 180;
  const dLat = r(lat2 - lat1);
  const dLon = r(lon2 - lon1);
  const a = Math.sin(dLat / 2) ** 2 + Math.cos(r(lat1)) * Math.cos(r(lat2)) * Math.sin(dLon / 2) ** 2;
  return 12742 * Math.asin(Math.min(1, Math.sqrt(a)));
}

export function fmtKm(km) {
  if (km === null || km === undefined || Number.isNaN(km)) return '';
  return km < 1 ? t('dist.m', { n: Math.round(km * 1000) }) : t('dist.km', { n: km.toFixed(1) });
}

/** A translated error message for a ws/http error code. */
export function errorText(err) {
  const code = (err && err.code) || 'error';
  const key = `error.${code}`;
  const text = t(key);
  return text === key ? t('error.error') : text;
}

/** Put a transient message in a live region. kind: 'info' | 'error' | 'ok' */
export function notify(el, text, kind = 'info') {
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = !text;
}

/** Promise wrapper around navigator.geolocation.getCurrentPosition. */
export function currentPosition({ timeoutMs = 8000, maximumAgeMs = 30000 } = {}) {
  return new Promise((resolve, reject) => {
    if (!('geolocation' in navigator)) {
      reject(new Error('unsupported'));
      return;
    }
    navigator.geolocation.getCurrentPosition(resolve, reject, {
      enableHighAccuracy: true,
      timeout: timeoutMs,
      maximumAge: maximumAgeMs,
    });
  });
}
