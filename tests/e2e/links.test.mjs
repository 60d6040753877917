// Hostile links (issue: every part of a link the page does not take is named once, correctly):
// unknown names (a section, a field, view keys), values of the wrong type, out of range, not
// finite, negative counts, `__proto__` / `constructor` names, script text in names and values,
// names given twice, parts with no name, percent-encoded junk, a very long query, an unknown
// backend, lesson steps that do not exist. For each link: the page starts (no uncaught exception,
// no console error); one notice lists the parts not taken, each named exactly once and nothing
// else; the valid parts of the same link are applied beside them; no prototype is polluted and
// no markup from the link is rendered. One browser, a fresh context per link.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { serve, launch, openPage, OUT } from './harness.mjs';
import { readUrl, validated } from '../../www/link.js';

const LONG = 64;
/** How the notice shows a name: plain names as they are; others quoted as JSON, cut when long. */
const quoted = (key) => JSON.stringify(key.length > LONG ? `${key.slice(0, LONG - 1)}…` : key);
const many = Array.from({ length: 150 }, (_, i) => `x${i}`);
const longKey = `k${'z'.repeat(2999)}`;
// Percent-encoded junk: a cut UTF-8 sequence, a NUL and a lone byte, an overlong '/', '%' itself.
const JUNK = '%E0%A4%A=1&%00%ff=2&sft.%C0%AF=3&%25%25=4&seed=3';

/**
 * Each link: its query (after `?backend=cpu&`, unless `bare`), the names of the parts not taken
 * (as the notice's items begin), text each item must say, and settings that must be applied.
 */
const LINKS = [
  { q: 'lesson=999&seed=3', ignored: ['lesson'], says: [/no such step \(got "999"\); the lesson's steps are 1 to \d+/], kept: { seed: 3 }, mode: 'lesson' },
  { q: 'lesson=-1&seed=3', ignored: ['lesson'], says: [/"-1"/], kept: { seed: 3 }, mode: 'lesson' },
  { q: 'lesson=abc&ppo.iterations=7', ignored: ['lesson'], says: [/"abc"/], kept: { 'ppo.iterations': 7 } },
  { q: 'lesson=0&lesson=2.5&seed=3', ignored: ['lesson="0"', 'lesson'], says: [/given again later/, /"2\.5"/], kept: { seed: 3 } },
  { q: 'evil.field=1&seed=3', ignored: ['evil.field'], says: [/no such setting/], kept: { seed: 3 } },
  { q: 'ppo.evil=1&ppo.iterations=7', ignored: ['ppo.evil'], says: [/no such setting/], kept: { 'ppo.iterations': 7 } },
  { q: 'ppo.evil.deeper=1&ppo=3&ppo..iterations=2&.=1', ignored: ['ppo.evil.deeper', 'ppo', 'ppo..iterations', '.'], kept: {} },
  { q: 'sft.steps=1e309&sft.batch_size=8', ignored: ['sft.steps'], says: [/not a finite number.*"1e309"/], kept: { 'sft.batch_size': 8 } },
  { q: `sft.steps=${'9'.repeat(30)}&seed=3`, ignored: ['sft.steps'], says: [/out of range/], kept: { seed: 3 } },
  { q: 'sft.steps=-5&ppo.batch_size=0&seed=3', ignored: ['sft.steps', 'ppo.batch_size'], says: [/must not be negative \(got "-5"\)/, /"0"|\b0\b/], kept: { seed: 3 } },
  { q: 'sft.steps=99999999&reward.epochs=2', ignored: ['sft.steps'], says: [/99999999/], kept: { 'reward.epochs': 2 } },
  { q: 'sft.steps=2.5&ppo.kl_coef=0x10&ppo.gamma=abc&ppo.lam=0.9', ignored: ['sft.steps', 'ppo.kl_coef', 'ppo.gamma'], says: [/whole number/, /"0x10"/, /"abc"/], kept: { 'ppo.lam': 0.9 } },
  { q: 'ppo.learning_rate=5&ppo.kl_coef=0.2', ignored: ['ppo.learning_rate'], kept: { 'ppo.kl_coef': 0.2 } },
  { q: 'sft.completion_only=maybe&ppo.adaptive_kl=true', ignored: ['sft.completion_only'], says: [/true or false \(got "maybe"\)/], kept: { 'ppo.adaptive_kl': true } },
  { q: 'preset=huge&ppo.kl_estimator=k3', ignored: ['preset'], says: [/huge/], kept: { 'ppo.kl_estimator': 'k3' } },
  { q: '__proto__.polluted=1&__proto__=2&seed=3', ignored: ['__proto__.polluted', '__proto__'], kept: { seed: 3 } },
  { q: 'constructor=1&toString=2&hasOwnProperty=3&ppo.__proto__=4&ppo.constructor.name=5&seed=3', ignored: ['constructor', 'toString', 'hasOwnProperty', 'ppo.__proto__', 'ppo.constructor.name'], kept: { seed: 3 } },
  { q: `seed=${encodeURIComponent('<script>alert(1)</script>')}&ppo.iterations=7`, ignored: ['seed'], says: [/"<script>alert\(1\)<\/script>"/], kept: { 'ppo.iterations': 7 } },
  { q: `${encodeURIComponent('<img src=x onerror=alert(1)>')}=1&seed=3`, ignored: [quoted('<img src=x onerror=alert(1)>')], kept: { seed: 3 } },
  { q: 'seed=1&seed=2', ignored: ['seed="1"'], says: [/given again later/], kept: { seed: 2 } },
  { q: 'backend=evil&seed=3', ignored: ['backend="evil"'], kept: { seed: 3, backend: 'cpu' } }, // then backend=cpu
  { q: '=5&foo&&seed=3', ignored: ['(a part with no name)', 'foo'], kept: { seed: 3 } },
  { q: JUNK, ignored: [...new URLSearchParams(JUNK)].map(([k]) => k).filter((k) => k !== 'seed').map(quoted), kept: { seed: 3 } },
  { q: `${many.map((k) => `${k}=1`).join('&')}&seed=3`, ignored: many, kept: { seed: 3 } },
  { q: `${longKey}=1&seed=${'7'.repeat(5000)}&ppo.iterations=7`, ignored: [quoted(longKey), 'seed'], says: [/…/], kept: { 'ppo.iterations': 7 } },
  { q: 'mode=evil&workers=0&seed=3', ignored: ['mode', 'workers'], says: [/"evil"/, /"0"/], kept: { seed: 3 } },
  { q: 'workers=999&ppo.iterations=7', ignored: ['workers'], kept: { 'ppo.iterations': 7 } },
  { q: 'backend=quantum&seed=3', bare: true, ignored: ['backend'], says: [/must be auto, webgpu or cpu \(got "quantum"\); using auto/], kept: { seed: 3 } },
];

// The settings the test reads back: a path of the page's config, or the backend in use.
const kept = (page, keys) => page.evaluate((paths) => {
  const lab = window.__lab;
  return Object.fromEntries(paths.map((p) => [p, p === 'backend' ? lab.backend : p.split('.').reduce((o, k) => o?.[k], lab.config)]));
}, keys);

test('hostile links: each part not taken is named once, the rest is applied, nothing breaks', { timeout: 600_000 }, async () => {
  assert.ok(LINKS.length >= 25);
  const server = await serve();
  const browser = await launch();
  const t0 = Date.now();
  try {
    // A link with nothing wrong: no notice at all.
    {
      const { page, context, errors } = await openPage(browser, `${server.url}?backend=cpu&seed=3&ppo.iterations=7`, { mode: null });
      assert.equal(await page.locator('.link-problems').count(), 0, 'a good link shows no notice');
      assert.deepEqual(await kept(page, ['seed', 'ppo.iterations']), { seed: 3, 'ppo.iterations': 7 });
      assert.deepEqual(errors, []);
      await context.close();
    }
    for (const link of LINKS) {
      const from = Date.now();
      const query = link.bare ? `?${link.q}` : link.q.startsWith('backend=') ? `?${link.q}&backend=cpu` : `?backend=cpu&${link.q}`;
      const { page, context, errors } = await openPage(browser, `${server.url}${query}`, { mode: null });
      const what = `link ${query.slice(0, 120)}`;
      let dialogs = 0;
      page.on('dialog', (d) => { dialogs += 1; d.dismiss(); });
      const notice = page.getByRole('status', { name: 'Link parts not taken' });
      assert.ok(await notice.isVisible(), `${what}: the notice is shown`);
      const items = await notice.getByRole('listitem').allTextContents();
      const text = await notice.textContent();
      // Exactly one item per part not taken, each beginning with that part's name.
      assert.equal(items.length, link.ignored.length, `${what}: ${items.length} items for ${link.ignored.length} parts:\n${items.join('\n')}`);
      for (const name of link.ignored) {
        const starting = items.filter((i) => i.startsWith(`${name}:`));
        assert.equal(starting.length, 1, `${what}: "${name}" begins ${starting.length} items:\n${items.join('\n')}`);
        const times = text.split(`${name}:`).length - 1;
        assert.equal(times, 1, `${what}: "${name}:" is in the notice ${times} times`);
      }
      for (const re of link.says ?? []) assert.match(text, re, `${what}: the notice says ${re}`);
      assert.doesNotMatch(text, /NaN|undefined|\[object/, `${what}: ${text}`);
      // The rest of the link is applied.
      const expected = link.kept;
      assert.deepEqual(await kept(page, Object.keys(expected)), expected, `${what}: the valid parts are applied`);
      if (link.mode) assert.equal(await page.evaluate(() => document.body.dataset.mode), link.mode);
      // Nothing leaks: no prototype polluted, no markup from the link rendered, no page wider than the screen.
      const leaks = await page.evaluate(() => ({
        polluted: Object.keys(Object.prototype).length + ('polluted' in {} ? 1 : 0),
        markup: document.querySelectorAll('#notices script, #notices img').length,
        wide: document.documentElement.scrollWidth > window.innerWidth,
      }));
      assert.deepEqual(leaks, { polluted: 0, markup: 0, wide: false }, what);
      assert.equal(dialogs, 0, `${what}: no dialog opened`);
      assert.deepEqual(errors, [], `${what}: no page error`);
      if (link.q.startsWith(longKey)) await page.screenshot({ path: path.join(OUT, 'links-long.png') });
      console.log(`# ${((Date.now() - from) / 1000).toFixed(1)} s · ${query.slice(0, 90)}${query.length > 90 ? '…' : ''} · ${link.ignored.length} named`);
      await context.close();
    }
    console.log(`# ${LINKS.length + 1} links in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  } finally {
    await browser.close();
    await server.close();
  }
});

// The same rules without a browser, against a stand-in for the core's validation: settings valid
// only together are taken together; one refused beside another is named by its own name; no name
// reaches a prototype.
test('link.js: settings valid together, refusals by name, no prototype reached', async () => {
  const defaults = { seed: 1, sft: { steps: 300, completion_only: true }, ppo: { batch_size: 8, mini_batches: 4, kl_coef: 0.05 } };
  const validate = async (json) => {
    const c = JSON.parse(json);
    if (c.ppo.mini_batches > c.ppo.batch_size) throw new Error('ppo.mini_batches: must be at most ppo.batch_size');
    if (c.sft.steps < 1) throw new Error('sft.steps: must be a whole number from 1 to 100000');
  };
  const read = async (query) => {
    const url = readUrl(query, { lessonSteps: 11 });
    const out = await validated(defaults, url.overrides, validate);
    return { ...out, problems: [...url.problems, ...out.problems], view: url.view };
  };
  // Valid only together: batch 2 alone would leave 4 minibatches for 2 completions.
  let r = await read('?ppo.batch_size=2&ppo.mini_batches=2');
  assert.deepEqual([r.config.ppo, r.problems], [{ batch_size: 2, mini_batches: 2, kl_coef: 0.05 }, []]);
  // Not valid together: the one refused is named, with the core's reason; the other is taken.
  r = await read('?ppo.batch_size=2&ppo.mini_batches=3&seed=5');
  assert.deepEqual([r.config.ppo.batch_size, r.config.ppo.mini_batches, r.config.seed], [8, 3, 5]);
  assert.deepEqual(r.problems, ['ppo.batch_size: ppo.mini_batches: must be at most ppo.batch_size (got "2"); using the default 8']);
  r = await read('?sft.steps=0&sft.completion_only=off&__proto__.x=1&constructor.prototype.y=2&lesson=12&lesson=3');
  assert.deepEqual([r.config.sft, r.view.lesson], [{ steps: 300, completion_only: false }, 3]);
  assert.deepEqual(r.problems, [
    'lesson="12": ignored (lesson is given again later in the link; the last one is read)',
    '__proto__.x: no such setting; ignored',
    'constructor.prototype.y: no such setting; ignored',
    'sft.steps: must be a whole number from 1 to 100000 (got "0"); using the default 300',
  ]);
  assert.equal(({}).x, undefined);
  assert.equal(({}).y, undefined);
});
