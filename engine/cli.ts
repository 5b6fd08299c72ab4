#!/usr/bin/env -S node --min-semi-space-size=16 --initial-old-space-size=128
// `kiln` entry point. The commands (cli-commands.ts) are loaded only in the
// process that runs them: `kiln serve` started in a Node without the engine's
// V8 flags hands over to a Node with them (util/relaunch.ts) and stays a small
// process that passes signals on and exits with the engine's exit code.
import { relaunchWithFlags } from './util/relaunch';
import { missingV8Flags } from './util/v8-flags';

const argv = process.argv.slice(2);
const missing = argv[0] === 'serve' ? missingV8Flags(process.execArgv) : [];
const run = missing.length > 0 ? relaunchWithFlags(missing) : import('./cli-commands').then((commands) => commands.main(argv));
run.then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`kiln: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
