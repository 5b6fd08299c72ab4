// On loopback Kiln must never create an mDNS responder (no multicast at all).
// bonjour-service is replaced by a counting fake, so nothing is sent either way.
import { afterEach, describe, expect, it, vi } from 'vitest';

const constructed = vi.hoisted(() => ({ count: 0 }));
vi.mock('bonjour-service', () => ({
  Bonjour: class {
    constructor() {
      constructed.count++;
    }
    publish() {}
    unpublishAll(cb: () => void) {
      cb();
    }
    destroy(cb: () => void) {
      cb();
    }
  },
}));

import { defaultConfig } from '../../engine/config';
import { advertiseInLanMode } from '../../engine/lan/wiring';
import { startTestEngine, type TestEngine } from '../helpers';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
  constructed.count = 0;
});

describe('mDNS only in LAN mode', () => {
  it('a loopback engine never constructs Bonjour, even with mdns on', async () => {
    t = await startTestEngine({ config: { mdns: true } });
    expect(constructed.count).toBe(0);
  });

  it('LAN mode advertises unless mdns is off (the decision, with the fake)', async () => {
    const lan = { ...defaultConfig(), host: '10.213.0.1' };
    expect(advertiseInLanMode({ ...lan, mdns: false }, { grpcPort: 1, httpPort: 2, tls: true })).toBeUndefined();
    expect(constructed.count).toBe(0);
    const ad = advertiseInLanMode(lan, { grpcPort: 1, httpPort: 2, tls: true });
    expect(constructed.count).toBe(1);
    await ad!.stop();
    expect(advertiseInLanMode({ ...lan, host: '127.0.0.1' }, { grpcPort: 1, httpPort: 2, tls: false })).toBeUndefined();
    expect(constructed.count).toBe(1);
  });
});
