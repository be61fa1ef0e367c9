// Language choice and lookup. The strings themselves, English and Simplified Chinese
// side by side, are in strings.js.
//
// t('key', {name: 'x'}) fills {name}; a missing key falls back to its parent key
// ('a.b.noname' -> 'a.b'), then to English, then to the key itself.
// Static markup uses data-i18n="key" (text), data-i18n-placeholder, data-i18n-aria-label,
// data-i18n-title; applyI18n() fills them, and again after every language switch.
import STRINGS from './strings.js';

const en = {};
const zh = {};
for (const [key, [e, z]] of Object.entries(STRINGS)) {
  en[key] = e;
  zh[key] = z;
}
const DICTS = { en, 'zh-CN': zh };
const KEY = 'helpline.lang';
const listeners = new Set();

function initialLang() {
  try {
    const saved = localStorage.getItem(KEY);
    if (saved && DICTS[saved]) return saved;
  } catch {
    /* no storage */
  }
  const langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || 'en'];
  for (const l of langs) {
    const low = String(l).toLowerCase();
    if (low.startsWith('zh')) return 'zh-CN';
    if (low.startsWith('en')) return 'en';
  }
  return 'en';
}

let lang = initialLang();

export function getLang() {
  return lang;
}

function lookup(dict, key) {
  let k = key;
  while (k) {
    if (Object.prototype.hasOwnProperty.call(dict, k)) return dict[k];
    const i = k.lastIndexOf('.');
    if (i <= 0 || !k.endsWith('.noname')) break;
    k = k.slice(0, i);
  }
  return undefined;
}

export function has(key) {
  return lookup(DICTS[lang], key) !== undefined || lookup(en, key) !== undefined;
}

export function t(key, vars = {}) {
  let s = lookup(DICTS[lang], key);
  if (s === undefined) s = lookup(en, key);
  if (s === undefined) return key;
  return s.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

export function applyI18n(root = document) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll('[data-i18n-aria-label]')) el.setAttribute('aria-label', t(el.dataset.i18nAriaLabel));
  for (const el of root.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
  const title = document.querySelector('title[data-i18n]');
  if (title) document.title = t(title.dataset.i18n);
}

export function setLang(next) {
  if (!DICTS[next] || next === lang) return;
  lang = next;
  try {
    localStorage.setItem(KEY, next);
  } catch {
    /* the switch still works for this visit */
  }
  applyI18n();
  for (const cb of [...listeners]) cb(lang);
}

export function onLangChange(cb) {
  listeners.add(cb);
  return () => listeners.delete(cb);
}
