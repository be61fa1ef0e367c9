// The admin console (/admin, issue 21): sign-in (admins only), the accounts panel, the audit log,
// and the other end of a reset code (set a new password with it) on the sign-in view.
import { t } from './i18n.js';
import { postJSON } from './api.js';
import { tid, notify } from './ui.js';
import { staffSession } from './staff.js';
import { accountsPanel } from './admin-accounts.js';
import { auditPanel } from './admin-audit.js';
import { refusal } from './admin-ui.js';

let started = false;
const session = staffSession({
  page: 'admin',
  roles: ['admin'],
  wrongRoleKey: 'admin.adminsOnly',
  onWelcome: () => {
    if (started) return;
    started = true;
    const token = () => session.token();
    accountsPanel({ token });
    auditPanel({ token });
  },
});

// a reset code: the person sets their own password (POST /api/auth/reset), then signs in above
const useCode = document.getElementById('use-code-form');
useCode.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const msg = tid('rc-msg');
  const body = { username: tid('rc-username').value.trim(), code: tid('rc-code').value.trim(),
    password: tid('rc-password').value };
  if (!body.username || !body.code || !body.password) {
    notify(msg, t('admin.useCodeMissing'), 'error');
    return;
  }
  try {
    await postJSON('/api/auth/reset', body);
    tid('rc-password').value = '';
    tid('rc-code').value = '';
    tid('username').value = body.username;
    notify(msg, t('admin.passwordSet'), 'ok');
  } catch (e) {
    notify(msg, e.status === 401 ? t('admin.codeRefused') : refusal(e), 'error');
  }
});
