// Getting a responder's attention: a short two-tone sound, and the screen kept awake while
// on duty. Browsers let a page make sound only after the person touched it, so the first tap
// (signing in, going on duty) unlocks it; before that chime() returns false.

let ctx = null;

/** Call from a user gesture: creates (or wakes) the audio context the chime plays through. */
export function primeAudio() {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) return;
  if (!ctx) ctx = new Ctx();
  if (ctx.state === 'suspended') ctx.resume().catch(() => {});
}

/** Short tones on a running AudioContext: `notes` are [start s, Hz]; each rises to `peak` and fades by
 * `fade` s and stops at `stop` s. True when they were played (false while the browser keeps the context suspended). */
export function playTones(audio, notes, { type = 'sine', peak = 0.4, fade = 0.2, stop = 0.22 } = {}) {
  if (!audio || audio.state !== 'running') return false;
  const now = audio.currentTime;
  for (const [at, freq] of notes) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = type;
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, now + at);
    gain.gain.exponentialRampToValueAtTime(peak, now + at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + at + fade);
    osc.connect(gain).connect(audio.destination);
    osc.start(now + at);
    osc.stop(now + at + stop);
  }
  return true;
}

/** Two short beeps; true when they were played. */
export function chime() {
  return playTones(ctx, [[0, 880], [0.25, 660]]);
}

let lock = null;
let wanted = false;

async function acquire() {
  if (!wanted || lock || !('wakeLock' in navigator) || document.visibilityState !== 'visible') return;
  try {
    lock = await navigator.wakeLock.request('screen');
    lock.addEventListener('release', () => {
      lock = null;
    });
  } catch {
    lock = null; // refused (battery saver, not visible): the page still works
  }
}

/** Keep the screen on while `on` (on duty): an offer must not arrive to a dark phone. */
export function holdScreen(on) {
  if (on === wanted) return;
  wanted = on;
  if (on) acquire();
  else if (lock) {
    lock.release().catch(() => {});
    lock = null;
  }
}

// the browser drops the lock when the page is hidden; take it again on return
document.addEventListener('visibilitychange', acquire);
