import { describe, expect, it } from 'vitest';
import type { ActionSummary } from '../../../engine/common/api-types';
import { ActionIndex } from './action-index';

function act(id: string, queuedAt: number, state: ActionSummary['state'] = 'queued'): ActionSummary {
  return { id, queuedAt, state, cached: false, stage: state === 'finished' ? 'finished' : state, instance: '', actionDigest: `${id}/1` };
}

describe('ActionIndex', () => {
  it('keeps actions newest first regardless of arrival order', () => {
    const idx = new ActionIndex();
    idx.upsert([act('b', 20), act('a', 10)]);
    idx.upsert([act('c', 30)]);
    idx.upsert([act('old', 5)]);
    expect(idx.list().map((a) => a.id)).toEqual(['c', 'b', 'a', 'old']);
  });

  it('replaces an action in place on a lifecycle event', () => {
    const idx = new ActionIndex();
    idx.upsert([act('a', 10), act('b', 20)]);
    const before = idx.list();
    idx.upsert([act('a', 10, 'running')]);
    expect(idx.list().map((a) => `${a.id}:${a.state}`)).toEqual(['b:queued', 'a:running']);
    expect(idx.list()).not.toBe(before);
    expect(idx.get('a')?.state).toBe('running');
  });

  it('ignores a stale update that would move an action backwards', () => {
    const idx = new ActionIndex();
    idx.upsert([act('a', 10, 'finished')]);
    idx.upsert([act('a', 10, 'running')]);
    expect(idx.get('a')?.state).toBe('finished');
  });

  it('evicts the oldest beyond capacity', () => {
    const idx = new ActionIndex(3);
    idx.upsert([act('a', 1), act('b', 2), act('c', 3), act('d', 4)]);
    expect(idx.list().map((a) => a.id)).toEqual(['d', 'c', 'b']);
    expect(idx.get('a')).toBeUndefined();
  });

  it('handles equal timestamps with a stable order', () => {
    const idx = new ActionIndex();
    idx.upsert([act('x', 1), act('z', 1), act('y', 1)]);
    idx.upsert([act('y', 1, 'running')]);
    expect(idx.list().map((a) => a.id)).toEqual(['z', 'y', 'x']);
    expect(idx.size).toBe(3);
  });

  it('counts by state', () => {
    const idx = new ActionIndex();
    idx.upsert([act('a', 1), act('b', 2, 'running'), act('c', 3, 'finished'), act('d', 4, 'finished')]);
    expect(idx.counts()).toEqual({ queued: 1, running: 1, finished: 2 });
  });

  it('holds 10,000 actions arriving one by one, in order', () => {
    const idx = new ActionIndex();
    for (let i = 0; i < 10_000; i++) idx.upsert([act(`a${i}`, i)]);
    for (let i = 0; i < 10_000; i += 7) idx.upsert([act(`a${i}`, i, 'finished')]);
    expect(idx.size).toBe(10_000);
    expect(idx.list()[0].id).toBe('a9999');
    expect(idx.get('a7')?.state).toBe('finished');
  });
});
