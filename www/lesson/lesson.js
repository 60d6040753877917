// The guided path through the lab (issue 30): one step per screen, each with what happens now,
// the equation it is about, the live panel that shows it (the lab's own panel, lent to the step
// and given back when it ends), one thing to try, and a Next that runs the training the next
// step needs — through the lab's stage controllers, as "Run everything" does.
//
// The view is in the URL, with the settings (state.js): `?lesson=6` opens step 6, `?mode=lab`
// the full lab; without either, the mode last chosen in this browser (localStorage), and the
// lesson on a first visit.
import './lesson.css';
import { el } from '../dom.js';
import { MODES } from '../state.js';
import { renderEquation } from '../equations.js';
import { STEPS } from './steps.js';
import { summarizePpo } from './figures.js';
import { NEEDS, missing, runNeeds } from './needs.js';

const MODE_KEY = 'rlhf-lab-mode';
const STEP_KEY = 'rlhf-lab-lesson-step';
/** How many steps the lesson has (a link's `lesson=N` is checked against it). */
export const LESSON_STEPS = STEPS.length;

/** The step this browser was last on: a whole number from 1 to LESSON_STEPS, else null. */
function rememberedStep() {
  const text = remembered(STEP_KEY);
  const n = /^\d+$/.test(text ?? '') ? Number(text) : Number.NaN;
  return n >= 1 && n <= LESSON_STEPS ? n : null;
}

function remembered(key) {
  try { return localStorage.getItem(key); } catch { return null; }
}
function remember(key, value) {
  try { localStorage.setItem(key, value); } catch { /* private mode: the URL still carries it */ }
}

/**
 * Decides the mode before the lab mounts (so a first visit never lays out the full lab), puts
 * the Lesson / Full lab toggle in the header and an empty lesson frame before the lab.
 * @param {{mode: string|null, lesson: number|null}} fromUrl the view named by the link
 */
export function openView(fromUrl) {
  const stored = remembered(MODE_KEY);
  const view = {
    mode: fromUrl.mode ?? (MODES.includes(stored) ? stored : 'lesson'),
    lesson: fromUrl.lesson ?? rememberedStep() ?? 1,
  };
  const listeners = new Set();
  const toLesson = el('button', { type: 'button', text: 'Lesson', title: 'The guided path, one step at a time' });
  const toLab = el('button', { type: 'button', text: 'Full lab', title: 'Every panel and setting on one page' });
  const toggle = el('div', { class: 'mode-toggle', role: 'group', 'aria-label': 'View' }, toLesson, toLab);
  const header = document.querySelector('header.top');
  header.insertBefore(toggle, document.getElementById('backend'));
  const root = el('main', { id: 'lesson', class: 'lesson', 'aria-label': 'Lesson' },
    el('p', { class: 'lesson-loading', role: 'status', text: 'Starting the training worker…' }));
  document.getElementById('app').before(root);

  function show() {
    document.body.dataset.mode = view.mode;
    toLesson.setAttribute('aria-pressed', String(view.mode === 'lesson'));
    toLab.setAttribute('aria-pressed', String(view.mode === 'lab'));
  }
  function setMode(mode) {
    if (mode === view.mode) return;
    view.mode = mode;
    remember(MODE_KEY, mode);
    // The listeners first (they write the URL and give the panels back), then the switch: a
    // history.replaceState just after the full lab is shown costs ~60 ms of style work here.
    listeners.forEach((fn) => fn(mode));
    show();
  }
  toLesson.addEventListener('click', () => setMode('lesson'));
  toLab.addEventListener('click', () => setMode('lab'));
  show();
  return { view, root, setMode, onMode: (fn) => listeners.add(fn) };
}

// A phone shows one of a step's three views at a time (its idea and equation, the live panel,
// the thing to try), chosen by tabs, so that each fits the screen; a wider screen shows all
// three at once, laid out by lesson.css, and hides the tabs.
const NARROW = '(max-width: 600px)';

/**
 * Tabs over `views` ([id, label, panel]) on a narrow screen (the ARIA tabs pattern: arrow keys,
 * Home and End move between tabs); nothing but the panels, all shown, on a wide one.
 */
function viewTabs(views) {
  const narrow = window.matchMedia(NARROW);
  let selected = views[0][0];
  const tabs = views.map(([id, label, panel]) => {
    const tab = el('button', { type: 'button', id: `lesson-tab-${id}`, text: label, 'aria-controls': `lesson-view-${id}` });
    panel.id = `lesson-view-${id}`;
    tab.addEventListener('click', () => select(id));
    return { id, tab, panel };
  });
  const tablist = el('div', { class: 'lesson-tabs', 'aria-label': 'What this step shows' }, ...tabs.map((t) => t.tab));
  tablist.addEventListener('keydown', (e) => {
    const at = tabs.findIndex((t) => t.id === selected);
    const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 }[e.key];
    if (to == null) return;
    e.preventDefault();
    const next = tabs[(to + tabs.length) % tabs.length];
    select(next.id);
    next.tab.focus();
  });
  function apply() {
    const asTabs = narrow.matches;
    tablist.hidden = !asTabs;
    tablist.toggleAttribute('role', asTabs);
    if (asTabs) tablist.setAttribute('role', 'tablist');
    for (const { id, tab, panel } of tabs) {
      const on = id === selected;
      tab.setAttribute('role', 'tab');
      tab.setAttribute('aria-selected', String(on));
      tab.tabIndex = on ? 0 : -1;
      panel.hidden = asTabs && !on;
      if (asTabs) { panel.setAttribute('role', 'tabpanel'); panel.setAttribute('aria-labelledby', tab.id); } else { panel.removeAttribute('role'); panel.removeAttribute('aria-labelledby'); }
    }
  }
  function select(id) {
    selected = id;
    apply();
  }
  narrow.addEventListener('change', apply);
  apply();
  return { tablist, select };
}

/** Lends panel parts to a step: each goes back to its place in the lab when the step ends. */
function lender() {
  const lent = [];
  return {
    borrow(node) {
      if (!node) return null;
      const placeholder = document.createComment('lent to the lesson');
      node.replaceWith(placeholder);
      lent.push({ node, placeholder });
      return node;
    },
    giveBack() {
      for (const { node, placeholder } of lent.splice(0).reverse()) placeholder.replaceWith(node);
    },
  };
}

export async function mountLesson(shell, store) {
  const { view, root } = shell;
  const total = STEPS.length;
  // The link's step is checked as it is read (link.js), the stored one as it is recalled.
  let index = Math.min(Math.max(1, view.lesson), total) - 1;
  const lend = lender();
  let disposers = [];
  let running = null; // the needs being run now: {names, promise}
  let generation = 0;
  const stepTimes = []; // for the curious and the test: how long each run of needs took
  const lesson = {
    baseline: null,
    /** Before β = 0 replaces the PPO run: its rollout figures, for step 9's comparison. */
    async keepBaseline() {
      if (store.stages.get('ppo').state() !== 'done' || store.config.ppo.kl_coef === 0) return;
      lesson.baseline = summarizePpo(await store.storage.metricsOf('ppo'), store.config.ppo.kl_coef);
      await store.storage.putState('lesson-baseline', lesson.baseline).catch(() => {});
    },
  };
  lesson.baseline = await store.storage.getState('lesson-baseline').catch(() => null);

  const count = el('p', { class: 'lesson-count' });
  const heading = el('h2', { id: 'lesson-title', tabindex: '-1' });
  const now = el('p', { class: 'lesson-now' });
  const equation = el('div', { class: 'lesson-eq', role: 'img' });
  const needsText = el('p', { class: 'lesson-needs-text' });
  const runButton = el('button', { type: 'button', class: 'primary' });
  const progress = el('progress', { max: 1, value: 0, 'aria-label': 'Training progress' });
  const progressText = el('span', { class: 'lesson-progress-text' });
  const needsBox = el('div', { class: 'lesson-needs', role: 'status', 'aria-live': 'polite' },
    needsText, el('div', { class: 'lesson-progress' }, progress, progressText), el('div', { class: 'controls' }, runButton));
  const live = el('div', { class: 'lesson-live' });
  const tryBox = el('div', { class: 'lesson-try', role: 'group', 'aria-labelledby': 'lesson-try-title' });
  const back = el('button', { type: 'button', text: '← Back' });
  const next = el('button', { type: 'button', class: 'primary', 'aria-describedby': 'lesson-next-why' });
  const jump = el('select', { id: 'lesson-jump', 'aria-label': 'Go to step' },
    ...STEPS.map((s, i) => el('option', { value: String(i + 1), text: `${i + 1} · ${s.short}` })));
  const idea = el('div', { class: 'lesson-idea' }, now, equation);
  const tryPanel = el('div', { class: 'lesson-try-panel' }, tryBox);
  const views = viewTabs([['idea', 'Idea', idea], ['live', 'Live panel', live], ['try', 'Try this', tryPanel]]);
  const step = el('section', { class: 'lesson-step', 'aria-labelledby': 'lesson-title' }, count, heading, needsBox, views.tablist, idea, live, tryPanel);
  const nextWhy = el('span', { id: 'lesson-next-why', class: 'lesson-next-why', 'aria-live': 'polite' });
  const nav = el('nav', { class: 'lesson-nav', 'aria-label': 'Lesson steps' }, back, jump, nextWhy, next);
  root.replaceChildren(step, nav);

  // Progress of whatever the lesson is running, from the worker's step events and the stages.
  let progressStage = null;
  store.client.on((e) => {
    if (!running || e.event !== 'step' || e.tag || e.stage !== progressStage) return;
    const p = e.status?.[e.stage];
    if (!p) return;
    progress.max = p.total;
    progress.value = p.step;
    progressText.textContent = `${STAGE_TITLE[e.stage]}: ${p.step} / ${p.total} ${e.stage === 'ppo' || e.stage === 'grpo' ? 'iterations' : 'steps'}`;
  });
  let labelTimer = null;
  function watchLabels(on) {
    clearInterval(labelTimer);
    if (!on) return;
    const target = store.config.reward.simulated_labels;
    labelTimer = setInterval(async () => {
      const n = await store.storage.countLabels().catch(() => 0);
      progress.max = target;
      progress.value = Math.min(n, target);
      progressText.textContent = `Simulated labeler: ${n} / ${target} labels`;
    }, 400);
  }

  const ctx = {
    store,
    lesson,
    borrow: (node) => lend.borrow(node),
    /** Runs `fn` on every stage-state event while this step is shown. */
    onStage(fn) { disposers.push(store.events.on('stage-state', fn)); },
    onDispose(fn) { disposers.push(fn); },
    /** Runs needs from inside a step (its "try" buttons), with the step's progress display. */
    run: (names) => runWith(names),
    refresh: () => refreshNeeds(),
  };

  async function refreshNeeds() {
    const gen = generation;
    const spec = STEPS[index];
    const unmet = await missing(store, spec.needs);
    if (gen !== generation) return unmet;
    const busy = running != null;
    needsBox.dataset.state = busy ? 'running' : unmet.length ? 'missing' : 'met';
    progress.hidden = progressText.hidden = !busy;
    runButton.hidden = busy || unmet.length === 0;
    if (busy) {
      needsText.textContent = `Training what this step needs: ${running.names.map((n) => NEEDS[n].label).join('; ')}. The numbers below are your run's, as they come.`;
    } else if (unmet.length) {
      needsText.textContent = `This step needs ${unmet.map((n) => NEEDS[n].label).join('; ')} — not trained yet in this browser.`;
      // A run stopped half-way (a reload in the middle of it) goes on from where it was.
      const paused = unmet.length === 1 && store.stages.get(NEEDS[unmet[0]].stage)?.state() === 'paused'
        && (GO_ON.has(unmet[0]) || (unmet[0] === 'zeroBeta' && store.config.ppo.kl_coef === 0));
      runButton.textContent = paused ? `Go on: ${SHORT[unmet[0]]}` : unmet.length === 1 ? `Run it: ${SHORT[unmet[0]]}` : `Run what is missing (${unmet.map((n) => SHORT[n]).join(', ')})`;
    } else {
      needsText.textContent = spec.needs.length ? `Trained in this browser: ${spec.needs.map((n) => SHORT[n]).join(', ')}.` : '';
    }
    const gate = unmet.length || busy ? null : (await spec.gate?.(ctx)) ?? null;
    if (gen !== generation) return unmet;
    next.disabled = busy || unmet.length > 0 || gate != null;
    next.title = busy ? 'Wait for the training to finish' : unmet.length ? 'Run what this step needs first' : gate ?? '';
    nextWhy.textContent = busy ? 'Training…' : unmet.length ? 'First run what this step needs.' : gate ?? '';
    return unmet;
  }

  async function runWith(names) {
    if (running) return running.promise;
    const started = performance.now();
    running = { names, promise: null };
    const spec = STEPS[index];
    running.promise = (async () => {
      try {
        await refreshNeeds();
        const unmet = await runNeeds(store, names, lesson, (name) => {
          progressStage = NEEDS[name].stage;
          progress.removeAttribute('value');
          progressText.textContent = `${SHORT[name]}: starting…`;
          watchLabels(name === 'labels');
        });
        if (unmet.length) store.notify(`The lesson's training stopped before ${unmet.map((n) => SHORT[n]).join(', ')} finished; press Run to go on.`);
      } catch (e) {
        store.notify(`The lesson's training stopped: ${e.message}`, 'error');
      } finally {
        watchLabels(false);
        stepTimes.push({ step: STEPS.indexOf(spec) + 1, needs: names, seconds: (performance.now() - started) / 1000 });
        running = null;
        await refreshNeeds();
        refreshLive();
      }
    })();
    return running.promise;
  }

  let liveRefresh = () => {};
  function refreshLive() { try { liveRefresh(); } catch (e) { console.error(e); } }

  function render(focus) {
    generation += 1;
    disposers.splice(0).forEach((fn) => fn());
    lend.giveBack();
    const spec = STEPS[index];
    view.lesson = index + 1;
    remember(STEP_KEY, String(index + 1));
    saveUrlSoon();
    count.textContent = `Step ${index + 1} of ${total}`;
    heading.textContent = spec.title;
    now.textContent = spec.now;
    renderEquation(equation, spec.equation, { wrap: true });
    equation.setAttribute('aria-label', `Equation: ${spec.equationName}`);
    const built = spec.live(ctx);
    live.replaceChildren(...built.nodes);
    liveRefresh = built.refresh ?? (() => {});
    // `aside`: the panel parts the thing to try is about, beside it (or in its tab on a phone).
    tryBox.replaceChildren(el('h3', { id: 'lesson-try-title', text: 'Try this' }), ...spec.tryThis(ctx), ...(built.aside ?? []));
    views.select('idea');
    back.disabled = index === 0;
    jump.value = String(index + 1);
    next.textContent = spec.next;
    ctx.onStage(() => { refreshNeeds(); });
    refreshNeeds().then(() => refreshLive());
    // The heading takes focus (a screen reader reads the new step) once the step is drawn: in
    // the next frame, not in the click's own task (its layout would be forced there, ~20 ms).
    if (focus) {
      const gen = generation;
      requestAnimationFrame(() => { if (gen === generation) heading.focus({ preventScroll: true }); });
    }
    window.scrollTo(0, 0);
  }

  // The link follows the step (history.replaceState and the stored settings: 10–40 ms on a
  // loaded machine) in a task of its own, just after the click's; steps passed quickly write once.
  let urlTimer = null;
  function saveUrlSoon() {
    clearTimeout(urlTimer);
    urlTimer = setTimeout(() => { urlTimer = null; store.saveUrl(); }, 0);
  }

  async function go(to, { runNext = false } = {}) {
    if (to < 0 || to >= total) return;
    index = to;
    render(true);
    if (runNext) {
      const unmet = await missing(store, STEPS[index].needs);
      if (unmet.length) runWith(STEPS[index].needs);
    }
  }

  back.addEventListener('click', () => go(index - 1));
  next.addEventListener('click', () => {
    if (index === total - 1) { shell.setMode('lab'); return; }
    go(index + 1, { runNext: true });
  });
  jump.addEventListener('change', () => go(Number(jump.value) - 1));
  runButton.addEventListener('click', () => runWith(STEPS[index].needs));

  shell.onMode((mode) => {
    store.saveUrl();
    if (mode === 'lesson') render(false);
    else { disposers.splice(0).forEach((fn) => fn()); lend.giveBack(); }
  });
  if (view.mode === 'lesson') render(false);
  // For the end-to-end test: how long each of the lesson's training runs took.
  lesson.stepTimes = stepTimes;
  return lesson;
}

const STAGE_TITLE = { sft: 'SFT', labels: 'Simulated labeler', reward: 'Reward model', ppo: 'PPO', grpo: 'GRPO', dpo: 'DPO' };
const SHORT = { sft: 'SFT', labels: 'simulated labels', reward: 'reward model', rollout: 'one rollout', update: 'one PPO iteration', ppo: 'PPO', zeroBeta: 'PPO at β = 0', grpo: 'GRPO', dpo: 'DPO' };
/** The needs that a paused run of their stage finishes by going on (the others start a run of their own). */
const GO_ON = new Set(['sft', 'reward', 'ppo', 'grpo', 'dpo']);
