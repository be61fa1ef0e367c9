// Closing an incident from the console: an outcome must be chosen (there is no default), and
// the close is confirmed with the incident, its status and the outcome spelled out, because
// it is final for the resident and the responder.
import { t, onLangChange } from './i18n.js';
import { notify, errorText } from './ui.js';

/**
 * @param {object} o
 * @param {HTMLFormElement} o.form  holds #disposition, [data-testid=close], the confirm box, #close-msg
 * @param {() => object|null} o.selected  the incident on screen
 * @param {(id: string, disposition: string) => Promise<{incident: object}>} o.close
 * @param {(incident: object) => void} o.done
 */
export function closeControl({ form, selected, close, done }) {
  const select = form.querySelector('#disposition');
  const button = form.querySelector('[data-testid=close]');
  const box = form.querySelector('#close-confirm-box');
  const question = form.querySelector('#close-q');
  const keep = form.querySelector('#close-keep');
  const yes = form.querySelector('#close-yes');
  const msg = form.querySelector('#close-msg');
  let shownFor = null; // the incident the form was last filled for

  function ask() {
    const inc = selected();
    question.textContent = inc ? t('dispatch.closeQuestion', {
      ref: inc.ref_no, status: t(`status.${inc.status}`), d: t(`disposition.${select.value}`),
    }) : '';
  }

  function reset() {
    select.value = '';
    box.hidden = true;
    button.hidden = false;
    notify(msg, '');
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!selected()) return;
    if (!select.value) {
      notify(msg, t('dispatch.closeNeedsOutcome'), 'error');
      select.focus();
      return;
    }
    notify(msg, '');
    ask();
    box.hidden = false;
    button.hidden = true;
    keep.focus();
  });
  select.addEventListener('change', () => {
    if (!box.hidden) ask();
    if (select.value) notify(msg, '');
  });
  keep.addEventListener('click', () => {
    box.hidden = true;
    button.hidden = false;
    button.focus();
  });
  yes.addEventListener('click', async () => {
    const inc = selected();
    if (!inc || !select.value) return;
    yes.disabled = true;
    try {
      const r = await close(inc.id, select.value);
      reset();
      done(r.incident);
    } catch (e) {
      notify(msg, `${t('dispatch.closeFailed')} ${errorText(e)}`, 'error'); // beside the control
    } finally {
      yes.disabled = false;
    }
  });
  onLangChange(() => {
    if (!box.hidden) ask();
  });

  return {
    /** A different incident on screen starts from no outcome chosen. */
    paint(inc) {
      const id = inc ? inc.id : null;
      if (id !== shownFor) {
        shownFor = id;
        reset();
      } else if (!box.hidden) {
        ask(); // its status may have moved meanwhile
      }
    },
  };
}
