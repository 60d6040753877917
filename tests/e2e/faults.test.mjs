// Faults in the page: a NaN in the SFT loss pauses training with a message naming the step and
// the quantity, and rolls the model back (CPU backend); a lost WebGPU device ends in a message
// and an offer to continue on the CPU backend, which resumes from the last snapshot
// (WebGPU through SwiftShader, micro preset: a step takes seconds there).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { serve, launch, openPage, OUT } from './harness.mjs';

const sftButton = (page, name) => page.locator('#sft .controls').getByRole('button', { name, exact: true });

test('a NaN in the loss pauses SFT, names the step and the quantity, and rolls back', { timeout: 600_000 }, async () => {
  const server = await serve();
  const browser = await launch();
  try {
    const { page, errors } = await openPage(browser, `${server.url}?backend=cpu&sft.steps=12`);
    for (let i = 1; i <= 3; i += 1) {
      await sftButton(page, 'Step').click();
      await page.waitForFunction((n) => document.querySelector('#sft .progress span').textContent.startsWith(`${n} / 12`), i, { timeout: 60_000 });
      await sftButton(page, 'Step').waitFor({ state: 'visible' });
      await page.waitForFunction(() => !document.querySelector('#sft .controls button:nth-child(3)').disabled);
    }
    const good = await page.evaluate(async () => Array.from(await window.__lab.client.call('snapshot', 'sft')));
    await page.evaluate(() => window.__lab.client.call('poison', 'sft', 4));
    await sftButton(page, 'Resume').click();

    const alert = page.getByRole('alert').filter({ hasText: 'not a finite number' });
    await alert.waitFor({ timeout: 60_000 });
    const message = await alert.textContent();
    console.log(`# the page said: ${message.replace('×', '').trim()}`);
    assert.match(message, /sft step 4: loss is not a finite number; training paused and the model rolled back to the last good step/);
    await sftButton(page, 'Resume').waitFor();
    assert.equal(await page.locator('.stage-card[data-stage="sft"]').getAttribute('data-state'), 'paused');
    const status = await page.evaluate(() => window.__lab.client.call('status'));
    assert.equal(status.sft.step, 3, 'the failed step is not counted');
    const after = await page.evaluate(async () => Array.from(await window.__lab.client.call('snapshot', 'sft')));
    assert.ok(after.length === good.length && after.every((b, i) => b === good[i]), 'the trainer is byte-for-byte the one after step 3');
    const stored = await page.evaluate(async () => (await window.__lab.storage.getSnapshot('sft')).progress.step);
    assert.equal(stored, 3, 'the stored snapshot is the last good step');

    // Training goes on from there.
    await sftButton(page, 'Resume').click();
    await sftButton(page, 'Done').waitFor({ timeout: 120_000 });
    assert.equal(await page.evaluate(async () => (await window.__lab.storage.metricsOf('sft')).length), 12, 'one metrics row per good step');
    await page.locator('#sft').screenshot({ path: path.join(OUT, 'fault-nan.png') });
    assert.deepEqual(errors.filter((e) => !/not a finite number/.test(e)), []);
  } finally {
    await browser.close();
    await server.close();
  }
});

test('a lost WebGPU device ends in a message and an offer to go on on the CPU backend', { timeout: 900_000 }, async () => {
  const server = await serve();
  const browser = await launch();
  try {
    const { page, errors } = await openPage(browser, `${server.url}?backend=webgpu&preset=micro&sft.steps=4`);
    const badge = await page.locator('#backend').textContent();
    console.log(`# backend: ${badge}`);
    assert.match(badge, /^WebGPU/, 'this test needs WebGPU (SwiftShader here)');
    await sftButton(page, 'Step').click();
    await page.waitForFunction(() => document.querySelector('#sft .progress span').textContent.startsWith('1 / 4'), null, { timeout: 300_000 });
    await sftButton(page, 'Resume').waitFor({ timeout: 60_000 });
    const snapshot = await page.evaluate(async () => (await window.__lab.storage.getSnapshot('sft'))?.progress.step);
    assert.equal(snapshot, 1);

    await page.evaluate(() => window.__lab.client.loseDevice());
    const alert = page.getByRole('alert').filter({ hasText: 'GPU device was lost' });
    await alert.waitFor({ timeout: 60_000 });
    console.log(`# the page said: ${(await alert.textContent()).replace('×', '').trim()}`);
    await page.screenshot({ path: path.join(OUT, 'fault-device-lost.png') });
    // Training on the lost device is refused with the reason, not a panic.
    const refused = await page.evaluate(() => window.__lab.client.call('status').then(() => 'accepted', (e) => e.message));
    assert.match(refused, /GPU device was lost/);

    await Promise.all([
      page.waitForNavigation({ timeout: 60_000 }),
      alert.getByRole('button', { name: 'Continue on the CPU backend' }).click(),
    ]);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
    assert.match(page.url(), /backend=cpu/);
    assert.match(await page.locator('#backend').textContent(), /^CPU backend/);
    await sftButton(page, 'Resume').waitFor({ timeout: 60_000 });
    const status = await page.evaluate(() => window.__lab.client.call('status'));
    assert.equal(status.sft.step, 1, 'SFT resumed on the CPU backend at its last snapshot');
    await sftButton(page, 'Resume').click();
    await sftButton(page, 'Done').waitFor({ timeout: 120_000 });
    assert.equal(await page.evaluate(async () => (await window.__lab.storage.metricsOf('sft')).length), 4);
    assert.deepEqual(errors.filter((e) => !/device|GPU|destroyed|lost/i.test(e)), []);
  } finally {
    await browser.close();
    await server.close();
  }
});

test('the page lets nothing in that does not belong: CSP without other origins or inline script', { timeout: 300_000 }, async () => {
  const server = await serve();
  const browser = await launch();
  try {
    const { page, errors } = await openPage(browser, `${server.url}?backend=cpu`);
    const csp = await page.locator('meta[http-equiv="Content-Security-Policy"]').getAttribute('content');
    console.log(`# CSP: ${csp}`);
    assert.doesNotMatch(csp, /https?:|\*/, 'no other origins');
    assert.match(csp, /script-src 'self' 'wasm-unsafe-eval'(;|$)/, "scripts only from the page's origin, no 'unsafe-inline'");
    // An injected inline script and a script from another origin are both blocked.
    const outcome = await page.evaluate(() => new Promise((resolve) => {
      const violations = [];
      document.addEventListener('securitypolicyviolation', (e) => violations.push(`${e.violatedDirective} ${e.blockedURI}`));
      const inline = document.createElement('script');
      inline.textContent = 'window.__inlineRan = true;';
      document.body.append(inline);
      const remote = document.createElement('script');
      remote.src = 'https://example.com/x.js';
      document.body.append(remote);
      setTimeout(() => resolve({ ran: !!window.__inlineRan, violations }), 500);
    }));
    console.log(`# blocked: ${outcome.violations.join(' | ')}`);
    assert.equal(outcome.ran, false, 'the inline script did not run');
    assert.ok(outcome.violations.some((v) => v.startsWith('script-src') && v.includes('inline')), outcome.violations.join());
    assert.ok(outcome.violations.some((v) => v.includes('example.com')), outcome.violations.join());
    assert.deepEqual(errors.filter((e) => !/Content Security Policy|example\.com/.test(e)), []);
  } finally {
    await browser.close();
    await server.close();
  }
});
