// npm run build: compiles kiln-nest, the non-root slot sandbox's per-action helper.
import { buildNestHelper } from '../engine/sandbox/nest-helper';

const why = buildNestHelper();
if (why) console.warn(`kiln-nest not built (${why}); a non-root Kiln will give each action a bubblewrap of its own`);
