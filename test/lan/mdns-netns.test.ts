// mDNS advertisement seen by a browser on "another machine": a second network
// namespace of the test's own. Nothing leaves the namespaces, which are removed after.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { createNetnsPair, netnsAvailable, waitForLine, type NetnsPair } from './netns';

const canRun = netnsAvailable();
const tsx = ['--import', 'tsx'];
const fixture = (name: string) => join(__dirname, 'fixtures', name);

describe.skipIf(!canRun)('mDNS discovery across network namespaces (needs root and iproute2)', () => {
  let pair: NetnsPair;
  let advertiser: ChildProcess | undefined;

  beforeAll(() => {
    pair = createNetnsPair();
  });
  afterAll(() => {
    advertiser?.kill('SIGKILL');
    pair?.destroy();
  });

  it('a Kiln advertised in LAN mode is found from the other namespace, with its ports and TLS flag', async () => {
    advertiser = pair.spawnIn(pair.server.ns, [process.execPath, ...tsx, fixture('mdns-advertise.ts'), pair.server.address, '18980']);
    await waitForLine(advertiser, /advertising/);
    const out = pair.execIn(pair.client.ns, [process.execPath, ...tsx, fixture('mdns-discover.ts'), pair.client.address, '5000']);
    const found = JSON.parse(out.trim().split('\n').pop()!) as { name: string; grpcPort: number; httpPort?: number; tls: boolean; endpoint: string }[];
    const kiln = found.find((k) => k.name === 'kiln-netns-test');
    expect(kiln).toBeDefined();
    expect(kiln).toMatchObject({ grpcPort: 18980, httpPort: 8981, tls: true, endpoint: `grpcs://${pair.server.address}:18980` });
  });
});
