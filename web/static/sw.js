// The resident page's offline shell. When the service cannot be reached at load, the page
// still opens (from the last copy seen) with the emergency number to call and a link that
// texts HELP; a request pressed then waits on the page and expires with a plain message.
//
// Network first, always: a working server is never answered from the cache, so a new
// deploy is seen at once. Only the resident page's own files are kept; every other request
// (the staff pages, /ws, /api/*) goes to the network untouched.
const CACHE = 'helpline-shell-v2';
const SHELL = [
  '/',
  '/api/config',
  '/static/app.css',
  '/static/js/resident.js',
  '/static/js/resident-position.js',
  '/static/js/resident-note.js',
  '/static/js/job-facts.js',
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
