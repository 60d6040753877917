// Stage 2a panel: preference labels. One pair from π_ref at a time, judged with buttons or keys
// (← left, → right, ↓ tie, space skip, u undo), each label stored at once; a simulated
// Bradley–Terry labeler for many labels; export and import as JSON lines.
//
// The stage is 'done' when there are at least reward.simulated_labels labels, or when the learner
// clicks "Use these labels" (remembered across reloads until the labels are deleted).
import './labeling.css';
import { el, progressBar, settingsFor, whenPageReady } from './common.js';
import { equationLink } from '../equations.js';
import { mountLabelFiles } from './labeling-files.js';

const QUEUE_SIZE = 16;
const REFILL_BELOW = 6;
const SIM_BATCH = 64;
const LABELER_KEYS = ['reward.simulated_labels', 'reward.labeler_temperature', 'reward.sample_temperature'];
const KEYS = { ArrowLeft: 'first', ArrowRight: 'second', ArrowDown: 'tie', ' ': 'skip', u: 'undo', U: 'undo' };
const SAID = { first: 'left is better', second: 'right is better', tie: 'tie' };
const pct = (v) => `${(100 * v).toFixed(1)}%`;

/** A completion's words, with its <eos> (or its absence) marked. */
function completion(text) {
  const ended = /\s*<eos>\s*$/.test(text);
  return [
    el('span', { class: 'words', text: text.replace(/\s*<eos>\s*$/, '') }),
    ended ? el('span', { class: 'eos', title: 'the completion ended here', text: '<eos>' })
      : el('span', { class: 'cut', text: '… no <eos>: cut at the length limit' }),
  ];
}

export async function mountLabeling(root, store) {
  const { client, events, storage } = store;
  const vote = (label, key, kbd, cls = '') => el('button', { class: `vote ${cls}`, 'aria-label': label, 'aria-keyshortcuts': key, title: `${label} (${kbd})` }, el('kbd', { text: kbd }), ` ${label}`);
  const left = vote('Left is better', 'ArrowLeft', '←');
  const tie = vote('Tie', 'ArrowDown', '↓');
  const right = vote('Right is better', 'ArrowRight', '→');
  const skip = vote('Skip', 'Space', 'space', 'minor');
  const undo = vote('Undo', 'U', 'u', 'minor');
  const waiting = el('p', { class: 'waiting', role: 'status' });
  const countText = el('p', { class: 'label-count', 'aria-live': 'polite' });
  const said = el('p', { class: 'said muted', 'aria-live': 'polite' });
  const promptText = el('p', { class: 'pair-prompt' });
  const leftText = el('p', { class: 'completion' });
  const rightText = el('p', { class: 'completion' });
  const pairNote = el('p', { class: 'pair-note muted' });
  const card = el('div', { class: 'pair-card', tabindex: '0', role: 'group', 'aria-label': 'Pair to judge. Keys: left arrow, left is better; right arrow, right is better; down arrow, tie; space, skip; u, undo.' },
    pairNote, promptText,
    el('div', { class: 'sides' },
      el('div', { class: 'side' }, el('h4', { text: 'Left' }), leftText),
      el('div', { class: 'side' }, el('h4', { text: 'Right' }), rightText)),
    el('div', { class: 'controls votes' }, left, tie, right, skip, undo));
  const useThese = el('button', { text: 'Use these labels', title: 'Mark this stage done with the labels there are now (at least 2)' });
  const removeAll = el('button', { class: 'danger', text: 'Delete all labels…' });

  const simulate = el('button', { class: 'primary', text: 'Simulate labels' });
  const simPause = el('button', { text: 'Pause', disabled: true, 'aria-label': 'Pause the simulated labeler' });
  const simProgress = progressBar('Simulated labeling', 'labels');
  const agreement = el('p', { class: 'agreement', 'aria-live': 'polite' });
  const form = settingsFor(store, LABELER_KEYS, onSetting);
  const files = mountLabelFiles(store, { added: (records, n) => { addCounts(records); count = n; update(); } });

  const section = el('section', { class: 'panel', id: 'labeling', 'aria-labelledby': 'labeling-title' },
    el('h2', { id: 'labeling-title', text: 'Stage 2a · Preference labels → labels' }),
    el('p', { class: 'objective' }, 'Judge pairs of completions that π_ref wrote for the same prompt. Each judgment is one Bradley–Terry datum: the reward model will learn a score r_φ with p(left ≻ right) = σ(r_φ(left) − r_φ(right)). ', equationLink('bt-model')),
    waiting,
    countText,
    card,
    said,
    el('div', { class: 'controls' }, useThese, removeAll),
    el('h3', { text: 'Simulated labeler' }),
    el('p', { class: 'muted' }, 'It judges each pair by the hidden gold utility u, with noise: it prefers a over b with probability σ((u_a − u_b)/τ). "Simulate labels" asks it for the number of labels set below, in batches of 64, each batch stored as it arrives.'),
    form,
    el('div', { class: 'controls' }, simulate, simPause),
    simProgress,
    agreement,
    files);
  root.append(section);

  let sftDone = store.stages.get('sft')?.state() === 'done';
  let count = await storage.countLabels().catch(() => 0);
  const bySource = { human: 0, simulated: 0 };
  const addCounts = (records, sign = 1) => records.forEach((r) => { bySource[r.source === 'human' ? 'human' : 'simulated'] += sign; });
  addCounts(await storage.labels().catch(() => []));
  let accepted = !!(await storage.getState('labels-accepted').catch(() => false));
  let state = null;
  let emitted = '';
  let sim = null; // {paused} while the simulated labeler runs
  let simPaused = false;
  const agree = { n: 0, agreed: 0, expected: 0, even: 0 };

  const target = () => store.config.reward.simulated_labels;
  function computeState() {
    if (sim) return 'running';
    if (count > 0 && (count >= target() || accepted)) return 'done';
    if (!sftDone && count === 0) return 'blocked';
    return simPaused ? 'paused' : 'ready';
  }

  function update() {
    state = computeState();
    const voting = sftDone && !!current;
    [left, right, tie, skip].forEach((b) => { b.disabled = !voting; });
    undo.disabled = count === 0 || !!sim;
    simulate.disabled = !sftDone || !!sim;
    simPause.disabled = !sim;
    useThese.disabled = count < 2 || state === 'done' || !!sim;
    removeAll.disabled = count === 0 || !!sim;
    form.setDisabled(!!sim);
    files.setCount(count);
    countText.textContent = `${count} label${count === 1 ? '' : 's'} · ${bySource.human} human · ${bySource.simulated} simulated`
      + (state !== 'done' ? ` · the stage is done at ${target()} (or with "Use these labels")` : count >= target() ? ' · enough for the reward model' : ' · marked as enough ("Use these labels")');
    waiting.textContent = !sftDone
      ? (count > 0 ? 'Your labels are stored. New pairs are sampled from π_ref: run SFT (stage 1) to label more or to simulate labels.' : 'Waiting for SFT to finish: the pairs to judge are sampled from π_ref.')
      : '';
    waiting.hidden = !waiting.textContent;
    const key = `${state}/${count}`;
    if (key !== emitted) {
      emitted = key;
      events.emit('stage-state', { stage: 'labels', state, produced: state === 'done' ? `${count} labels` : null });
    }
  }

  // ---- the pair on show and the queue behind it ----
  let queue = [];
  let current = null;
  let fetching = false;
  let generation = 0; // bumped when π_ref or the sampling temperature changes: older pairs are dropped

  function refill() {
    if (fetching || !sftDone || queue.length >= REFILL_BELOW) return;
    fetching = true;
    const gen = generation;
    client.call('samplePairs', QUEUE_SIZE).then((pairs) => {
      fetching = false;
      if (gen !== generation) { refill(); return; }
      queue.push(...pairs);
      if (!current) showNext();
    }, (e) => {
      fetching = false;
      if (gen === generation) { pairNote.textContent = `Pairs could not be sampled: ${e.message}`; }
    });
  }

  // A new pair takes the focus only from inside this panel (not from a field): arrow keys pressed
  // elsewhere keep scrolling the page instead of labeling by accident.
  function focusCard() {
    const active = document.activeElement;
    if (current && active && section.contains(active) && !active.matches('input, select, textarea')) card.focus({ preventScroll: true });
  }

  function render() {
    card.classList.toggle('empty', !current);
    promptText.textContent = current ? current.prompt : '';
    leftText.replaceChildren(...(current ? completion(current.first) : []));
    rightText.replaceChildren(...(current ? completion(current.second) : []));
    pairNote.textContent = current ? 'Which completion is better for this prompt?'
      : sftDone ? 'Sampling pairs from π_ref…' : 'No pair to judge until SFT has made π_ref.';
    update();
  }

  function showNext() {
    current = queue.shift() ?? null;
    render();
    refill();
    focusCard();
  }

  function dropPairs() {
    generation += 1;
    queue = [];
    current = null;
    render();
  }

  // ---- judging: every action waits for the one before, so quick keys land on the right pair ----
  let chain = Promise.resolve();
  const act = (what) => {
    chain = chain.then(() => perform(what)).catch((e) => store.notify(`The label could not be stored: ${e.message}`, 'error'));
    return chain;
  };

  async function perform(what) {
    if (what === 'undo') return undoLast();
    if (!current) { said.textContent = sftDone ? 'No pair yet: one is being sampled.' : 'No pair to judge: SFT must finish first.'; return; }
    if (what === 'skip') { said.textContent = 'Skipped: that pair was not labeled.'; showNext(); return; }
    const record = { vocab: store.vocabulary, prompt: current.prompt, first: current.first, second: current.second, preference: what, source: 'human', time: Date.now() };
    count = await storage.addLabels([record]);
    addCounts([record]);
    said.textContent = `Stored: ${SAID[what]}.`;
    showNext();
  }

  async function undoLast() {
    if (sim) { said.textContent = 'Undo waits until the simulated labeler stops.'; return; }
    const record = await storage.removeLastLabel();
    if (!record) { said.textContent = 'Nothing to undo.'; return; }
    addCounts([record], -1);
    count = await storage.countLabels();
    if (record.source === 'human' && record.vocab === store.vocabulary) {
      if (current) queue.unshift(current);
      current = { prompt: record.prompt, first: record.first, second: record.second };
      said.textContent = `Undone: "${SAID[record.preference]}" on this pair; judge it again.`;
      render();
      focusCard();
    } else {
      said.textContent = `Removed the last label (${record.source}).`;
      update();
    }
  }

  [['first', left], ['second', right], ['tie', tie], ['skip', skip], ['undo', undo]].forEach(([what, button]) => button.addEventListener('click', () => act(what)));

  // The keys work anywhere in the panel, and on the pair card where the lesson shows it outside
  // the panel; a key handled on the card is not handled again by the panel (defaultPrevented).
  const onKey = (e) => {
    const what = KEYS[e.key];
    if (!what || e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || e.target.closest('input, select, textarea')) return;
    if (what === 'skip' && e.target.closest('button, a, summary')) return; // space presses the focused control
    e.preventDefault();
    if (!e.repeat && state !== 'blocked') act(what);
  };
  card.addEventListener('keydown', onKey);
  section.addEventListener('keydown', onKey);
  section.addEventListener('click', (e) => {
    if (!e.target.closest('button, input, select, textarea, a, label, summary')) card.focus({ preventScroll: true });
  });

  // ---- the simulated labeler ----
  function showAgreement() {
    if (agree.n === 0) { agreement.textContent = ''; return; }
    agreement.textContent = `Agreement with the gold order: the simulated labeler preferred the completion with the higher gold utility in ${agree.agreed} of ${agree.n} pairs (${pct(agree.agreed / agree.n)}) this session; at its τ it was expected to in ${pct(agree.expected / agree.n)}.`
      + (agree.even ? ` ${agree.even} pair${agree.even === 1 ? '' : 's'} of equal gold utility left out.` : '');
  }

  async function simulateLabels(n) {
    if (sim || n <= 0) { update(); return; }
    if (!sftDone) { store.notify('The simulated labeler judges pairs from π_ref: finish SFT first.'); return; }
    const run = { paused: false };
    sim = run;
    let made = 0;
    simProgress.update(0, n);
    update();
    try {
      while (made < n && !run.paused) {
        const batch = await client.call('simulateLabels', Math.min(SIM_BATCH, n - made));
        const records = batch.map((b) => b.label);
        count = await storage.addLabels(records);
        addCounts(records);
        for (const b of batch) {
          const gold = Math.sign(b.gold_first - b.gold_second);
          if (gold === 0) { agree.even += 1; continue; }
          agree.n += 1;
          agree.expected += gold > 0 ? b.p_first : 1 - b.p_first;
          if (b.label.preference === (gold > 0 ? 'first' : 'second')) agree.agreed += 1;
        }
        made += batch.length;
        simProgress.update(made, n);
        showAgreement();
        update();
      }
    } catch (e) {
      store.notify(`The simulated labeler stopped: ${e.message}`, 'error');
    } finally {
      simProgress.pause();
      sim = null;
      simPaused = made < n;
      update();
    }
  }

  simulate.addEventListener('click', () => simulateLabels(target()));
  simPause.addEventListener('click', () => { if (sim) sim.paused = true; });

  function onSetting(key) {
    if (key === 'reward.sample_temperature' && sftDone) { dropPairs(); refill(); }
    update();
  }

  useThese.addEventListener('click', async () => {
    accepted = true;
    update();
    await storage.putState('labels-accepted', true).catch(() => {});
  });

  async function deleteAll() {
    if (sim || count === 0) return;
    if (!window.confirm(`Delete all ${count} labels from this browser? Download them first to keep a copy.`)) return;
    await storage.clearLabels();
    await storage.putState('labels-accepted', false).catch(() => {});
    accepted = false;
    simPaused = false;
    bySource.human = 0;
    bySource.simulated = 0;
    count = 0;
    said.textContent = 'All labels were deleted.';
    update();
  }
  removeAll.addEventListener('click', deleteAll);

  events.on('stage-state', ({ stage, state: s }) => {
    if (stage !== 'sft') return;
    const was = sftDone;
    sftDone = s === 'done';
    // A new π_ref (or none while SFT runs again): the pairs sampled from the old one are dropped.
    if (sftDone !== was) dropPairs();
    if (!sftDone && sim) sim.paused = true;
    if (sftDone) refill();
    update();
  });

  render();
  if (sftDone) refill();
  whenPageReady(() => { emitted = ''; update(); });

  return {
    name: 'labels',
    title: 'Preference labels',
    state: () => state,
    start: () => (state === 'done' ? Promise.resolve() : simulateLabels(target() - count)),
    pause: () => { if (sim) sim.paused = true; },
    step: () => simulateLabels(SIM_BATCH),
    reset: deleteAll,
  };
}
