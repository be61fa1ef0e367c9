// The resident page's offline shell. When the service cannot be reached at load, the page
// still opens (from the last copy seen) with the emergency number to call and a link that
// texts HELP; a request pressed then waits on the page and expires with a plain message.
//
// The staff pages (responder, dispatch) register it too, for Web Push: a `push` shows the
// notification the server wrote (title, body, in the subscriber's language); a tap on it opens
// or focuses the page it names (an offer, an incident).
//
// Network first, always: a working server is never answered from the cache, so a new
// deploy is seen at once. Only the resident page's own files are kept; every other request
// (the staff pages, /ws, /api/*) goes to the network untouched.
const CACHE = 'helpline-shell-v1';
const SHELL = [
  '/',
  '/api/config',
  '/static/app.css',
  '/static/js/resident.js',
  '/static/js/resident-position.js',
  '/static/js/i18n.js',
  '/static/js/strings.js',
  '/static/js/api.js',
  '/static/js/ui.js',
  '/static/js/device.js',
  '/static/js/ws.js',
  '/static/js/status.js',
];

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches.open(CACHE)
      .then((c) => c.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin || !SHELL.includes(url.pathname)) return;
  event.respondWith(
    fetch(req)
      .then((resp) => {
        if (resp.ok) {
          const copy = resp.clone();
          caches.open(CACHE).then((c) => c.put(url.pathname, copy));
        }
        return resp;
      })
      .catch(() => caches.match(url.pathname).then((hit) => hit || Response.error())),
  );
});

// ---- Web Push (issue 12) ------------------------------------------------------------------
self.addEventListener('push', (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = { body: event.data ? event.data.text() : '' };
  }
  const title = data.title || 'Helpline';
  event.waitUntil(
    self.registration.showNotification(title, {
      body: data.body || '',
      tag: data.tag || undefined, // a newer notice of the same offer or incident replaces the older
      renotify: !!data.tag,
      requireInteraction: true, // stays until the person acts on it
      lang: data.lang === 'zh' ? 'zh-CN' : 'en',
      vibrate: [300, 100, 300, 100, 300],
      data: { url: data.url || '/', type: data.type || '' },
    }),
  );
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const target = new URL((event.notification.data && event.notification.data.url) || '/', self.location.origin);
  if (target.origin !== self.location.origin) return;
  event.waitUntil(
    self.clients.matchAll({ type: 'window', includeUncontrolled: true }).then((open) => {
      const same = open.find((c) => new URL(c.url).pathname === target.pathname);
      if (same) return same.focus(); // the page is live: it shows the offer or incident itself
      return self.clients.openWindow(target.href);
    }),
  );
});
