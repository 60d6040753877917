// The pipeline at a glance: the stages as connected cards (what each needs, what it produced,
// where it stands) and the controls that drive them — run everything, pause, step one phase,
// speed, reset — with keyboard shortcuts for all of them.
import { el } from './common.js';

const CARDS = [
  { stage: 'sft', title: '1 · SFT', produces: 'π_ref', needs: 'base model' },
  { stage: 'labels', title: '2a · Preferences', produces: 'labels', needs: 'π_ref' },
  { stage: 'reward', title: '2b · Reward model', produces: 'r_φ', needs: 'π_ref + labels' },
  { stage: 'ppo', title: '3a · PPO', produces: 'π_θ, V_ψ', needs: 'π_ref + r_φ' },
  { stage: 'grpo', title: '3b · GRPO / RLOO', produces: 'π_grpo', needs: 'π_ref + r_φ' },
  { stage: 'dpo', title: '3c · DPO', produces: 'π_dpo', needs: 'π_ref + labels, no r_φ' },
];

const STATE_TEXT = { blocked: 'waiting', ready: 'not started', running: 'running', paused: 'paused', done: 'done' };
const SPEEDS = [{ label: 'full speed', delay: 0 }, { label: 'slow motion', delay: 400 }, { label: 'very slow', delay: 1500 }];

export function mountPipeline(root, store) {
  const cards = new Map();
  const row = el('ol', { class: 'pipeline', 'aria-label': 'pipeline stages' });
  for (const card of CARDS) {
    const state = el('span', { class: 'state', text: 'waiting' });
    const item = el('li', { class: 'stage-card', 'data-stage': card.stage, 'data-state': 'blocked' },
      el('button', { class: 'stage-select', 'aria-label': `select ${card.title}`, onclick: () => select(card.stage) }, el('strong', { text: card.title })),
      el('span', { class: 'needs', text: `needs ${card.needs}` }),
      el('span', { class: 'produces', text: `→ ${card.produces}` }),
      state);
    cards.set(card.stage, { item, state });
    row.append(item);
  }
  const runAll = el('button', { class: 'primary', text: 'Run everything', title: 'Run every stage with the current settings (shortcut: a)' });
  const play = el('button', { text: 'Play', title: 'Play / pause the selected stage (shortcut: p)' });
  const pause = el('button', { text: 'Pause', title: 'Pause (shortcut: p)' });
  const step = el('button', { text: 'Step one phase', title: 'One step of the selected stage (shortcut: s)' });
  const speed = el('select', { id: 'speed', 'aria-label': 'speed' }, ...SPEEDS.map((s, i) => el('option', { value: String(i), text: s.label })));
  const reset = el('button', { text: 'Reset stage', title: 'Reset the selected stage (shortcut: shift+R)' });
  const selected = el('span', { class: 'muted', 'aria-live': 'polite' });
  const help = el('p', { class: 'muted shortcuts', text: 'Keys: 1–6 select a stage · p play/pause · s step · a run everything · + / − speed · shift+R reset · in labeling: ← left, → right, ↓ tie, space skip, u undo.' });
  root.append(el('section', { class: 'panel', id: 'pipeline', 'aria-labelledby': 'pipeline-title' },
    el('h2', { id: 'pipeline-title', text: 'The pipeline' }),
    row,
    el('div', { class: 'controls' }, runAll, play, pause, step, el('label', { for: 'speed', text: 'Speed' }), speed, reset, selected),
    help));

  let current = 'sft';
  let runningAll = false;
  // `follow`: scroll the stage's panel into view. "Run everything" selects without scrolling: a
  // panel brought into view is laid out and painted whole, a long task while training runs.
  function select(stage, follow = true) {
    current = stage;
    for (const [name, { item }] of cards) item.classList.toggle('selected', name === stage);
    selected.textContent = `selected: ${CARDS.find((c) => c.stage === stage).title}`;
    if (follow) document.getElementById(stage === 'labels' ? 'labeling' : stage)?.scrollIntoView({ block: 'start' });
  }
  const controller = () => store.stages.get(current);

  store.events.on('stage-state', ({ stage, state, produced }) => {
    const card = cards.get(stage);
    if (!card) return;
    card.item.dataset.state = state;
    card.state.textContent = STATE_TEXT[state] ?? state;
    const spec = CARDS.find((c) => c.stage === stage);
    card.item.querySelector('.produces').textContent = produced ? `→ ${produced} ✓` : `→ ${spec.produces}`;
  });

  async function runEverything() {
    if (runningAll) return;
    runningAll = true;
    runAll.disabled = true;
    try {
      for (const card of CARDS) {
        const c = store.stages.get(card.stage);
        if (!c || c.state() === 'done') continue;
        current = card.stage;
        select(card.stage, false);
        await c.start();
        if (c.state() !== 'done') break; // paused or stopped: leave the rest for later
      }
    } catch (e) {
      store.notify(`The run stopped: ${e.message}`, 'error');
    } finally {
      runningAll = false;
      runAll.disabled = false;
    }
  }

  runAll.addEventListener('click', runEverything);
  play.addEventListener('click', () => { const c = controller(); if (c?.state() === 'running') c.pause(); else c?.start(); });
  pause.addEventListener('click', () => controller()?.pause());
  step.addEventListener('click', () => controller()?.step());
  reset.addEventListener('click', () => controller()?.reset());
  speed.addEventListener('change', () => store.client.speed(SPEEDS[Number(speed.value)].delay));

  document.addEventListener('keydown', (e) => {
    if (e.target.closest?.('input, select, textarea') || e.ctrlKey || e.metaKey || e.altKey) return;
    // The lesson shows one step at a time and has its own buttons: the lab's shortcuts rest there.
    if (document.body.dataset.mode === 'lesson') return;
    if (e.target.closest?.('#labeling') && ['ArrowLeft', 'ArrowRight', 'ArrowDown', ' ', 'u'].includes(e.key)) return;
    const digit = Number(e.key);
    if (digit >= 1 && digit <= CARDS.length) { select(CARDS[digit - 1].stage); return; }
    if (e.key === 'p') play.click();
    else if (e.key === 's') step.click();
    else if (e.key === 'a') runAll.click();
    else if (e.key === 'R' && e.shiftKey) reset.click();
    else if (e.key === '+' || e.key === '-') {
      speed.value = String(Math.max(0, Math.min(SPEEDS.length - 1, Number(speed.value) + (e.key === '+' ? -1 : 1))));
      speed.dispatchEvent(new Event('change'));
    } else return;
    e.preventDefault();
  });
  current = 'sft';
  for (const [name, { item }] of cards) item.classList.toggle('selected', name === 'sft');
  selected.textContent = `selected: ${CARDS[0].title}`;
  return { runEverything, select };
}
