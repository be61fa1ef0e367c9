// A responder leaving with a job in hand (signing out, or going off duty): asked first; if they leave
// anyway, the server hands the job back to dispatch (duty.end with hand_back): another responder is
// asked, or a dispatcher is. If that fails, the job is still theirs and the page says so.
import { t } from './i18n.js';
import { tid, notify, errorText } from './ui.js';

const els = {
  box: tid('logout-warning'),
  text: document.getElementById('logout-warning-text'),
  stay: tid('logout-stay'),
  anyway: tid('logout-anyway'),
  msg: document.getElementById('msg'),
};

/**
 * @param {object} o
 * @param {import('./ws.js').Socket} o.sock
 * @param {() => boolean} o.onJob            whether a job is in hand now
 * @param {(responder) => void} o.handedBack  after the server took the job back (the responder is off duty)
 * @param {() => void} o.paint
 */
export function leaveGuard({ sock, onJob, handedBack, paint }) {
  let leaving = null; // {mode: 'signout' | 'offduty', proceed}

  function paintBox() {
    const mode = leaving ? leaving.mode : 'signout';
    els.text.textContent = t(`responder.leaveWarn.${mode}`);
    els.stay.textContent = t(`responder.leaveStay.${mode}`);
    els.anyway.textContent = t(`responder.leaveAnyway.${mode}`);
  }

  function close() {
    leaving = null;
    els.box.hidden = true;
  }

  /** True when a job is in hand: the warning is up and `proceed` (if any) waits for the answer. */
  function ask(mode, proceed) {
    if (!onJob()) return false;
    leaving = { mode, proceed };
    paintBox();
    els.box.hidden = false;
    els.stay.focus();
    return true;
  }

  async function anyway() {
    const go = leaving;
    if (!go) return;
    els.anyway.disabled = els.stay.disabled = true;
    try {
      const r = await sock.request('duty.end', { hand_back: go.mode === 'signout' ? 'signed_out' : 'off_duty' });
      close();
      handedBack(r.responder);
      notify(els.msg, t('responder.handedBack'), 'info');
      if (go.proceed) go.proceed();
    } catch (e) {
      close(); // the job is still theirs: they stay signed in, to finish it or call the dispatcher
      notify(els.msg, `${t('responder.handBackFailed')} ${errorText(e)}`, 'error');
    } finally {
      els.anyway.disabled = els.stay.disabled = false;
      paint();
    }
  }

  els.stay.addEventListener('click', close);
  els.anyway.addEventListener('click', anyway);
  return { ask, close, paint: paintBox };
}
