// tsc does not copy the generated protobuf module; place it next to the compiled engine.
import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..');
mkdirSync(join(root, 'dist', 'engine', 'gen'), { recursive: true });
cpSync(join(root, 'engine', 'gen', 'protos.js'), join(root, 'dist', 'engine', 'gen', 'protos.js'));
