// The Execute side of the load run, as a process of its own so the client work of
// thousands of calls does not distort the latencies the test measures:
//   node --import tsx test/fault/load-generator.ts ADDRESS CALLS CONNECTIONS HOLD_SECONDS
// Uploads CALLS distinct `sleep 0.3` actions, prints "prepared", waits for "go" on
// stdin, fires every Execute at once over CONNECTIONS connections, keeps them for
// HOLD_SECONDS, cancels every operation still going, and prints "result <json>".
import { createInterface } from 'node:readline';
import { connectClients } from '../helpers';
import { executeRaw, ownConnection, prepareActions, type ExecuteOutcome } from './load-driver';

export interface LoadResult {
  outcomes: Pick<ExecuteOutcome, 'code' | 'details' | 'firstMessageMs' | 'totalMs'>[];
}

async function main(): Promise<void> {
  const [address, calls, connections, hold] = process.argv.slice(2);
  if (!address || !calls || !connections || !hold) throw new Error('usage: load-generator ADDRESS CALLS CONNECTIONS HOLD_SECONDS');
  const clients = connectClients(address);
  const requests = await prepareActions(clients, Number(calls), ['sleep', '0.3']);
  process.stdout.write('prepared\n');
  const lines = createInterface({ input: process.stdin });
  await new Promise<void>((resolve) => lines.on('line', (l) => l.trim() === 'go' && resolve()));

  const conns = Array.from({ length: Number(connections) }, () => ownConnection(address));
  const running = requests.map((request, i) => executeRaw(conns[i % conns.length]!, request));
  await new Promise((r) => setTimeout(r, Number(hold) * 1000));
  const going = running.map((call) => call.operation()).filter((name): name is string => !!name);
  await Promise.all(going.map((name) => clients.operations.cancel({ name }).catch(() => undefined)));
  const outcomes = (await Promise.all(running.map((call) => call.done))).map(({ code, details, firstMessageMs, totalMs }) => ({
    code,
    details: details.slice(0, 300),
    firstMessageMs,
    totalMs,
  }));
  for (const c of conns) c.close();
  clients.close();
  process.stdout.write(`result ${JSON.stringify({ outcomes } satisfies LoadResult)}\n`);
  lines.close();
}

main().catch((err: unknown) => {
  process.stderr.write(`load-generator: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
