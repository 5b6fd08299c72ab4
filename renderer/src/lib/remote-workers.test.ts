import { describe, expect, it } from 'vitest';
import { ranOnText, remoteRows } from './remote-workers';

describe('remoteRows', () => {
  it('lists the upstream first, then each peer, with what a person needs to act on', () => {
    const rows = remoteRows({
      upstream: { url: 'grpcs://cluster:443', placement: 'local-first', reachable: false, problem: 'connection refused', slots: 16, running: 0 },
      peers: [
        { name: 'peer:desk-2', url: 'grpcs://10.0.0.2:8980', source: 'mdns', reachable: true, slots: 3, running: 2, roundTripMs: 4, mode: 'normal' },
        { name: 'peer:desk-3', url: 'grpcs://10.0.0.3:8980', source: 'config', reachable: true, slots: 0, running: 0, problem: 'it is paused' },
        { name: 'peer:desk-4', url: 'grpcs://10.0.0.4:8980', source: 'config', slots: 0, running: 0 },
      ],
    });
    expect(rows.map((r) => [r.name, r.state, r.ok])).toEqual([
      ['Upstream', 'unreachable — connection refused', false],
      ['desk-2', 'reachable', true],
      ['desk-3', 'takes nothing now — it is paused', false],
      ['desk-4', 'not contacted yet', false],
    ]);
    expect(rows[1]).toMatchObject({ slots: 3, running: 2, roundTripMs: 4, mode: 'normal' });
  });

  it('is empty without an upstream or peers', () => {
    expect(remoteRows({})).toEqual([]);
    expect(remoteRows(undefined)).toEqual([]);
  });
});

describe('ranOnText', () => {
  it('names the place an action ran', () => {
    expect(ranOnText('local')).toBe('on this machine');
    expect(ranOnText('upstream')).toBe('on the upstream cluster');
    expect(ranOnText('peer:desk-2')).toBe('on peer desk-2');
  });
});
