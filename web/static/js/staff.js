// Sign-in for staff pages (responder, dispatcher, mediator): the login form, the saved
// token, the socket, sign-out. The page supplies what happens after each welcome.
import { t, applyI18n } from './i18n.js';
import { Socket } from './ws.js';
import { postJSON, store } from './api.js';
import { tid, setupChrome, notify } from './ui.js';

/**
 * @param {object} o
 * @param {string} o.page       storage namespace, e.g. 'responder'
 * @param {string[]} o.roles    roles allowed on this page
 * @param {(welcome) => void} o.onWelcome   after every successful hello
 * @param {() => Promise<void>} [o.beforeLogout]
 * @param {(proceed: () => void) => boolean} [o.holdLogout]  true: the page asks first, and calls proceed if confirmed
 * @param {() => void} [o.onLogout]
 * @param {string} [o.wrongRoleKey]  the message for an account of another role (default login.wrongRole)
 * @returns {{sock: Socket, account: () => object|null, token: () => string|null}}
 */
export function staffSession({ page, roles, onWelcome, beforeLogout, onLogout, holdLogout, wrongRoleKey }) {
  const key = `helpline.${page}.session`;
  const loginView = document.getElementById('login');
  const appView = document.getElementById('app');
  const form = document.getElementById('login-form');
  const msg = document.getElementById('login-msg');
  const who = document.querySelector('.whoami');
  const logoutBtn = document.getElementById('logout');
  let session = store.get(key); // {token, account}

  const sock = new Socket({ getToken: async () => (session ? session.token : null) });

  function showLogin(reason) {
    loginView.hidden = false;
    appView.hidden = true;
    logoutBtn.hidden = true;
    who.textContent = '';
    notify(msg, reason || '', 'error');
    tid('login').disabled = false;
  }

  function showApp() {
    loginView.hidden = true;
    appView.hidden = false;
    logoutBtn.hidden = false;
    const a = session.account || {};
    who.textContent = a.name || a.username || '';
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const username = tid('username').value.trim();
    const password = tid('password').value;
    if (!username || !password) {
      notify(msg, t('login.missing'), 'error');
      return;
    }
    tid('login').disabled = true;
    notify(msg, t('login.signingIn'), 'info');
    try {
      const r = await postJSON('/api/auth/login', { username, password });
      if (!roles.includes(r.account.role)) {
        showLogin(t(wrongRoleKey || 'login.wrongRole'));
        return;
      }
      session = { token: r.token, account: r.account };
      store.set(key, session);
      tid('password').value = '';
      notify(msg, '');
      showApp();
      sock.restart();
    } catch (e) {
      showLogin(e.status === 401 ? t('login.bad') : t('login.failed'));
    }
  });

  async function logout() {
    if (beforeLogout) {
      try {
        await beforeLogout();
      } catch {
        /* sign out anyway */
      }
    }
    // the server revokes the token and drops the account's push subscriptions (best effort: offline, the
    // token still ends with its expiry and a dropped browser subscription is refused by its push service)
    if (session) postJSON('/api/auth/logout', {}, session.token).catch(() => {});
    session = null;
    store.del(key);
    sock.stop();
    if (onLogout) onLogout();
    showLogin('');
  }

  logoutBtn.addEventListener('click', () => {
    if (holdLogout && holdLogout(logout)) return;
    logout();
  });

  sock.on('welcome', (w) => {
    if (session && w.account) {
      session.account = w.account;
      store.set(key, session);
      showApp();
    }
    onWelcome(w);
  });

  sock.on('unauthorized', () => {
    const had = !!session;
    session = null;
    store.del(key);
    sock.stop();
    if (onLogout) onLogout();
    showLogin(had ? t('login.expired') : '');
  });

  applyI18n();
  setupChrome(sock);
  if (session) {
    showApp();
    sock.start();
  } else {
    showLogin('');
  }
  return {
    sock,
    account: () => (session ? session.account : null),
    token: () => (session ? session.token : null),
  };
}
