import { describe, expect, it } from 'vitest';
import type { ActionSummary, ApiStatus } from '../../../engine/common/api-types';
import { metricsFixture } from './fixtures';
import { LiveModel } from './live-model';

const status: ApiStatus = {
  serving: true,
  executing: true,
  grpcUrl: 'grpc://127.0.0.1:8980',
  httpUrl: 'http://127.0.0.1:8981/',
  version: '0.1.0',
  uptimeMs: 1,
  host: '127.0.0.1',
  concurrency: 4,
  cacheBudgetBytes: 100,
};

function act(id: string, state: ActionSummary['state'], queuedAt = 1): ActionSummary {
  return { id, state, queuedAt, cached: false, stage: state, instance: '', actionDigest: 'd/1' };
}

describe('LiveModel', () => {
  it('keeps the latest metrics and their history', () => {
    const m = new LiveModel();
    m.handle({ event: 'metrics', data: metricsFixture({ at: 1000, queueDepth: 3 }) });
    m.handle({ event: 'metrics', data: metricsFixture({ at: 2000, queueDepth: 1 }) });
    expect(m.metrics?.queueDepth).toBe(1);
    expect(m.series.length).toBe(2);
  });

  it('tracks the execution switch from events and metrics', () => {
    const m = new LiveModel();
    m.applyStatus(status);
    m.handle({ event: 'execution', data: { executing: false, at: 1 } });
    expect(m.status?.executing).toBe(false);
    expect(m.executing).toBe(false);
    m.handle({ event: 'metrics', data: metricsFixture({ at: 1000 }) });
    expect(m.executing).toBe(true);
    expect(m.status?.executing).toBe(true);
  });

  it('merges action lifecycle events into the list and counts new ones', () => {
    const m = new LiveModel();
    m.applyPage({ items: [act('old', 'finished', 0)], total: 40 }, false);
    m.handle({ event: 'action', data: { kind: 'queued', action: act('a', 'queued', 5) } });
    m.handle({ event: 'action', data: { kind: 'started', action: act('a', 'running', 5) } });
    expect(m.actions.list().map((a) => `${a.id}:${a.state}`)).toEqual(['a:running', 'old:finished']);
    expect(m.serverTotal).toBe(41);
  });

  it('routes log chunks only to followed actions', () => {
    const m = new LiveModel();
    m.handle({ event: 'log', data: { id: 'x', stream: 'stdout', offset: 0, data: 'ignored' } });
    const logs = m.follow('x');
    m.handle({ event: 'log', data: { id: 'x', stream: 'stdout', offset: 0, data: 'line 1\n' } });
    m.handle({ event: 'log', data: { id: 'x', stream: 'stderr', offset: 0, data: 'warn\n' } });
    m.handle({ event: 'log-end', data: { id: 'x', stream: 'stdout', bytes: 7 } });
    expect(logs.stdout.pieces.map((p) => p.html).join('')).toBe('line 1\n');
    expect(logs.stdout.finished).toBe(true);
    expect(logs.stderr.end).toBe(5);
    expect(m.followed()).toEqual(['x']);
    m.unfollow('x');
    expect(m.logsOf('x', 'stdout')).toBeUndefined();
  });

  it('replaces the list on a fresh page and appends older pages', () => {
    const m = new LiveModel();
    m.applyPage({ items: [act('b', 'finished', 2)], total: 2, nextCursor: 'c' }, false);
    m.applyPage({ items: [act('a', 'finished', 1)], total: 2 }, true);
    expect(m.actions.list().map((a) => a.id)).toEqual(['b', 'a']);
    expect(m.nextCursor).toBeUndefined();
    m.applyPage({ items: [], total: 0 }, false);
    expect(m.actions.size).toBe(0);
  });
});
