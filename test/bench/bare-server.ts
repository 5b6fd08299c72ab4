// The bare grpc-js baseline in a process of its own, so that it pays the same
// process and loopback costs as `kiln serve`. Prints "bare listening HOST:PORT".
import { startBaselineServer } from './lib';

startBaselineServer().then(
  (s) => process.stdout.write(`bare listening ${s.address}\n`),
  (err: Error) => {
    console.error(`bare server: ${err.message}`);
    process.exit(1);
  },
);
