// Scaffold: the reward panel is being built (see views/README.md for the controller contract).
import { el } from './common.js';

export async function mountReward(root, store) {
  root.append(el('section', { class: 'panel', id: 'reward' }, el('h2', { text: 'reward' })));
  const state = 'blocked';
  store.events.emit('stage-state', { stage: 'reward', state });
  return { name: 'reward', title: 'reward', state: () => state, start: async () => {}, pause: () => {}, step: async () => {}, reset: async () => {} };
}
