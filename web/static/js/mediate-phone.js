// The /mediate page's phone forms (issue 19): "Back to my cases" on the landing and "Link my
// mobile number" in a resident's case. Both ask POST /api/auth/otp/request for a code, then send it
// to POST /api/auth/otp/verify with this browser's device token. Linking sends keep: true, so the
// server refuses (409) rather than switch this browser to another account; getting back in does not
// (the phone's account, with its cases, opens here). docs/mediation.md, "Back into a case".
import { t } from './i18n.js';
import { postJSON } from './api.js';
import { tid, notify, errorText } from './ui.js';
import { deviceToken } from './device.js';

function phoneError(e, step) {
  if (e.status === 429) return t('mediate.phoneRateLimited');
  if (e.status === 400) return t(step === 'verify' ? 'mediate.codeWrong' : 'mediate.phoneBad');
  if (e.status === 401) return t('mediate.codeWrong');
  if (e.status === 403) return t('mediate.phoneStaff');
  if (e.status === 409) return t('mediate.phoneTaken');
  return `${t('mediate.phoneFailed')} ${errorText(e)}`;
}

const digits = (v) => v.replace(/[\s().-]/g, '');

/**
 * Wire the form [data-phone-form=kind] (hooks `<kind>-phone`, `<kind>-send`, `<kind>-code`,
 * `<kind>-verify`). onVerified(answer) gets the verify answer {token, account}; its result (a
 * string) is said beside the form.
 */
export function wirePhoneForm(kind, { keep = false, onVerified }) {
  const form = document.querySelector(`[data-phone-form="${kind}"]`);
  const phone = tid(`${kind}-phone`, form);
  const code = tid(`${kind}-code`, form);
  const step = form.querySelector('.code-step');
  const msg = form.querySelector('.local-msg');

  async function askCode() {
    const number = digits(phone.value);
    if (!number) {
      notify(msg, t('mediate.phoneMissing'), 'error');
      phone.focus();
      return;
    }
    const btn = tid(`${kind}-send`, form);
    btn.disabled = true;
    notify(msg, t('mediate.codeSending'), 'info');
    try {
      await postJSON('/api/auth/otp/request', { phone: number });
      step.hidden = false;
      notify(msg, t('mediate.codeSent'), 'ok');
      code.focus();
    } catch (e) {
      notify(msg, phoneError(e, 'request'), 'error');
    } finally {
      btn.disabled = false;
    }
  }

  async function verify() {
    const number = digits(phone.value);
    const given = code.value.replace(/\s/g, '');
    if (!/^\d{6}$/.test(given)) {
      notify(msg, t('mediate.otpMissing'), 'error');
      code.focus();
      return;
    }
    const btn = tid(`${kind}-verify`, form);
    btn.disabled = true;
    notify(msg, t('mediate.codeChecking'), 'info');
    try {
      const body = { phone: number, code: given };
      if (keep) body.keep = true;
      const r = await postJSON('/api/auth/otp/verify', body, await deviceToken());
      code.value = '';
      step.hidden = true;
      notify(msg, (await onVerified(r)) || '', 'ok');
    } catch (e) {
      notify(msg, phoneError(e, 'verify'), 'error');
    } finally {
      btn.disabled = false;
    }
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    // Enter in the code box confirms the code; anywhere else it (re)sends one
    if (!step.hidden && document.activeElement === code) verify();
    else askCode();
  });
  tid(`${kind}-verify`, form).addEventListener('click', verify);
  return {
    reset() {
      step.hidden = true;
      code.value = '';
      notify(msg, '');
    },
  };
}
