// What the admin console's panels share: how a refusal reads, and the confirmation dialog.
import { t } from './i18n.js';
import { tid } from './ui.js';

/** A refusal as the console shows it: the translated kind, then the server's words (they name the field). */
export function refusal(e) {
  const kind = t(`error.${(e && e.code) || 'error'}`);
  const lead = ['bad_request', 'conflict', 'not_found'].includes(e && e.code) ? t('admin.refused') : kind;
  return e && e.message && e.message !== e.code ? `${lead}${t('punct.colon')}${e.message}` : lead;
}

/** Ask before doing something hard to undo; resolves true when confirmed. */
export function confirmAction(text, yesText) {
  const dlg = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  const yes = tid('confirm-yes', dlg);
  const no = tid('confirm-no', dlg);
  yes.textContent = yesText;
  return new Promise((resolve) => {
    const done = (answer) => {
      yes.removeEventListener('click', onYes);
      no.removeEventListener('click', onNo);
      dlg.removeEventListener('cancel', onNo);
      if (dlg.open) dlg.close();
      resolve(answer);
    };
    const onYes = () => done(true);
    const onNo = () => done(false);
    yes.addEventListener('click', onYes);
    no.addEventListener('click', onNo);
    dlg.addEventListener('cancel', onNo);
    dlg.showModal();
    no.focus();
  });
}
