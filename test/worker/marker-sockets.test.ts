// The launcher's markers: fd 3 of an action, whose other end tells whether any
// process still holds it, so the /proc sweep runs only when something escaped.
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { SocketMarkers } from '../../engine/worker/marker-sockets';
import { findProcessesHolding } from '../../engine/worker/process-markers';

const markers = new SocketMarkers();
afterAll(() => markers.close());

function run(script: string, fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', script], { stdio: ['ignore', 'ignore', 'inherit', fd] });
    child.once('error', reject);
    child.once('exit', () => resolve());
  });
}

describe.skipIf(!SocketMarkers.supported())('socket markers (skipped: Linux only, where the /proc sweep exists)', () => {
  it('reads as released once the only holder exited, and as held while an escaped process keeps it', async () => {
    const quiet = (await markers.take())!;
    await run('exit 0', quiet.childFd);
    quiet.releaseChildEnd();
    expect(quiet.stillHeld()).toBe(false);
    quiet.close();

    const escaped = (await markers.take())!;
    let pid = 0;
    try {
      const out = await new Promise<string>((resolve, reject) => {
        const child = spawn('sh', ['-c', 'sleep 30 >/dev/null & echo $!'], { stdio: ['ignore', 'pipe', 'inherit', escaped.childFd] });
        let text = '';
        child.stdout!.on('data', (b: Buffer) => (text += b.toString()));
        child.once('error', reject);
        child.once('close', () => resolve(text));
      });
      pid = Number(out.trim());
      escaped.releaseChildEnd();
      expect(escaped.stillHeld()).toBe(true);
      // The sweep finds it by the marker's identity, and nothing else.
      expect(findProcessesHolding([escaped.id])).toEqual([pid]);
      process.kill(pid, 'SIGKILL');
      pid = 0;
      for (let i = 0; i < 200 && escaped.stillHeld(); i++) await new Promise((r) => setTimeout(r, 25));
      expect(escaped.stillHeld()).toBe(false);
    } finally {
      if (pid) process.kill(pid, 'SIGKILL');
      escaped.close();
    }
  });

  it('drops what an action writes to fd 3 and still sees the end', async () => {
    const m = (await markers.take())!;
    await run('head -c 100000 /dev/zero >&3 2>/dev/null; exit 0', m.childFd);
    m.releaseChildEnd();
    expect(m.stillHeld()).toBe(false);
    m.close();
  });

  it('gives every action a marker of its own', async () => {
    const taken = await Promise.all(Array.from({ length: 10 }, () => markers.take()));
    expect(new Set(taken.map((m) => `${m!.id.dev}:${m!.id.ino}`)).size).toBe(10);
    for (const m of taken) m!.close();
  });
});
