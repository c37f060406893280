// Slots: the one bound on async work in flight; `start`/`settled` are the read window of check and verify.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Slots } from '../src/store/slots.js';

const tick = () => new Promise<void>((r) => setTimeout(r, 1));

test('Slots.start keeps at most its limit in flight, returns while the window has room, and settled waits for all', async () => {
  const slots = new Slots(3);
  let running = 0;
  let most = 0;
  let finished = 0;
  const work = async () => {
    running++;
    most = Math.max(most, running);
    await tick();
    running--;
    finished++;
  };
  for (let i = 0; i < 10; i++) await slots.start(work);
  assert.ok(finished < 10, 'start does not wait for the work itself');
  await slots.settled();
  assert.equal(finished, 10);
  assert.equal(most, 3);
});

test('Slots.start keeps the first failure: settled and any later start throw it, after the rest has ended', async () => {
  const slots = new Slots(2);
  let finished = 0;
  await slots.start(async () => {
    await tick();
    throw new Error('first');
  });
  await slots.start(async () => {
    await tick();
    await tick();
    finished++;
  });
  await assert.rejects(slots.settled(), /first/);
  assert.equal(finished, 1, 'settled waited for the work still running');
  await assert.rejects(slots.start(async () => { finished++; }), /first/);
  assert.equal(finished, 1, 'nothing starts after a failure');
});
