// Small DOM helpers shared by the stage panels: a settings form, a progress bar (and `el`, from
// ../dom.js, for them all).
import { SETTINGS, getPath, setPath, coerce } from '../state.js';
import { equationLink } from '../equations.js';
import { el } from '../dom.js';

export { el };

/**
 * A form for the settings whose key starts with `prefix`. Each change is validated by the core
 * before it is applied; a refused value shows its message under the field and changes nothing.
 */
export function settingsForm(store, prefix, onApplied = () => {}) {
  const form = el('div', { class: 'settings' });
  const inputs = [];
  // A setting with a view of its own (`own`) is not repeated in its section's form.
  const shown = SETTINGS.filter((s) => s.key.startsWith(prefix) && !s.own);
  for (const setting of shown) {
    const id = `setting-${setting.key.replace(/\./g, '-')}`;
    const value = getPath(store.config, setting.key);
    let input;
    if (setting.kind === 'select') {
      input = el('select', { id }, ...setting.options.map((o) => el('option', { value: o, text: o, selected: o === value })));
    } else if (setting.kind === 'bool') {
      input = el('input', { id, type: 'checkbox', checked: !!value });
    } else {
      input = el('input', { id, type: 'text', inputmode: setting.kind === 'text' ? 'text' : 'decimal', value: String(value) });
    }
    const error = el('p', { class: 'error', role: 'alert' });
    const help = el('p', { class: 'help', id: `${id}-help`, text: setting.help });
    input.setAttribute('aria-describedby', `${id}-help`);
    input.addEventListener('change', async () => {
      const raw = setting.kind === 'bool' ? input.checked : input.value;
      const candidate = structuredClone(store.config);
      const v = coerce(setting, raw);
      error.textContent = '';
      if (typeof v === 'number' && !Number.isFinite(v)) {
        error.textContent = `${setting.label}: must be a number (got "${raw}")`;
        input.setAttribute('aria-invalid', 'true');
        return;
      }
      setPath(candidate, setting.key, v);
      try {
        await store.client.call('setConfig', JSON.stringify(candidate));
        store.config = candidate;
        input.removeAttribute('aria-invalid');
        store.saveUrl();
        store.events.emit('config-changed', { key: setting.key, value: v });
        onApplied(setting.key, v);
      } catch (e) {
        error.textContent = e.message;
        input.setAttribute('aria-invalid', 'true');
      }
    });
    inputs.push(input);
    if (setting.equation) help.append(' ', equationLink(setting.equation));
    form.append(el('div', { class: 'setting' }, el('label', { for: id, text: setting.label }), input, help, error));
  }
  form.setDisabled = (disabled) => inputs.forEach((i) => { i.disabled = disabled; });
  /** Shows the values `store.config` holds now (after a change made elsewhere). */
  form.refresh = () => inputs.forEach((input, i) => {
    const value = getPath(store.config, shown[i].key);
    if (shown[i].kind === 'bool') input.checked = !!value; else input.value = String(value);
    input.removeAttribute('aria-invalid');
  });
  return form;
}

/**
 * A chart's frame: the host the chart draws into, a one-line explanation and a link to its
 * equation (`metric` names a catalog entry whose explanation is used when `text` is absent).
 */
export function chartBox(store, { metric, text, equation }) {
  const info = metric ? store.catalog.find((m) => m.name === metric) : null;
  const host = el('div', { class: 'chart-host' });
  const caption = el('p', { class: 'caption', text: text ?? info?.explanation ?? '' });
  const anchor = equation ?? info?.equation;
  if (anchor) caption.append(' ', equationLink(anchor));
  const box = el('div', { class: 'chart' }, host, caption);
  box.host = host;
  return box;
}

/** A progress bar with steps done, rate and time left (`unit`: what a step is called). */
export function progressBar(label, unit = 'steps') {
  const bar = el('progress', { max: 1, value: 0, 'aria-label': `${label} progress` });
  const text = el('span', { text: 'not started' });
  const node = el('div', { class: 'progress' }, bar, text);
  let started = null;
  let startStep = 0;
  node.update = (step, total) => {
    const now = performance.now();
    if (started == null || step < startStep) { started = now; startStep = step; }
    bar.max = total;
    bar.value = step;
    const rate = step > startStep ? (step - startStep) / ((now - started) / 1000) : 0;
    const left = rate > 0 ? (total - step) / rate : NaN;
    text.textContent = `${step} / ${total} ${unit}` + (rate > 0 ? ` · ${rate.toFixed(rate < 1 ? 2 : 1)} ${unit}/s · ${formatSeconds(left)} left` : '');
  };
  node.pause = () => { started = null; };
  return node;
}

export function formatSeconds(s) {
  if (!Number.isFinite(s)) return '—';
  if (s < 60) return `${Math.ceil(s)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

/**
 * One settings form for the listed keys only (`settingsForm` takes a prefix; a full key is a
 * prefix that names one setting). For panels that show some of a stage's settings.
 */
export function settingsFor(store, keys, onApplied) {
  const forms = keys.map((key) => settingsForm(store, key, onApplied));
  const form = el('div', { class: 'settings' }, ...forms.flatMap((f) => [...f.children]));
  form.setDisabled = (disabled) => forms.forEach((f) => f.setDisabled(disabled));
  return form;
}

/**
 * Runs `fn` once every panel and the pipeline are mounted (main.js marks the body ready then):
 * a panel re-announces its state there, since the pipeline is mounted after the panels and does
 * not hear what they announce while mounting.
 */
export function whenPageReady(fn) {
  const check = () => (document.body.dataset.ready === 'true' ? fn() : setTimeout(check, 50));
  setTimeout(check, 0);
}

/**
 * After a reload: begins a stage from its snapshot (`begin(snapshot)` returns the progress the
 * core resumed at), then finishes it if the snapshot was taken at its end, or leaves it paused.
 */
export async function resumeStage(snapshot, { begin, finish, setState, notify, title }) {
  const at = await begin(snapshot);
  if (!at?.done) { setState('paused'); return; }
  try { await finish(); } catch (e) { notify(`${title} finished, but ${e.message}`, 'error'); }
  setState('done');
}
