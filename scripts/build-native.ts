// npm run build: compiles the native helpers (engine/sandbox/native/): kiln-nest, the
// non-root slot sandbox's per-action helper, and kiln-spawn, a slot agent's spawner.
import { SPAWN_BINARY, SPAWN_SOURCE, buildNestHelper } from '../engine/sandbox/nest-helper';

const why = buildNestHelper();
if (why) console.warn(`kiln-nest not built (${why}); a non-root Kiln will give each action a bubblewrap of its own`);
const whySpawn = buildNestHelper(SPAWN_SOURCE, SPAWN_BINARY);
if (whySpawn) console.warn(`kiln-spawn not built (${whySpawn.replace('its helper', 'it')}); a slot's agent will fork each action itself`);
