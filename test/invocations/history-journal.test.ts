// The history journal alone: what survives a crash mid-write, and how the
// file stays within the history's own bounds.
import { mkdirSync, readFileSync, writeFileSync, appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../engine/clock';
import { EventBus } from '../../engine/events/event-bus';
import { cachedActionEvents } from '../../engine/events/cached-action';
import { ActionHistory } from '../../engine/history/action-history';
import { HistoryJournal, JOURNAL_FILE } from '../../engine/invocations/history-journal';
import { InvocationIndex } from '../../engine/invocations/invocation-index';

let dir: string;
let clock: ManualClock;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kiln-journal-'));
  clock = new ManualClock();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A fresh engine-like trio on `dir`: history, invocations, journal, started in the engine's order. */
function open(maxActions = 100, invocationLimits: ConstructorParameters<typeof InvocationIndex>[0] = {}, rewriteAfterBytes?: number) {
  const bus = new EventBus();
  const history = new ActionHistory({ maxActions }, clock);
  const index = new InvocationIndex(invocationLimits, clock);
  const journal = new HistoryJournal({ dataDir: dir, flushMs: 60_000, rewriteAfterBytes });
  journal.start(history, index);
  history.attach(bus);
  index.attach(bus);
  const hit = (id: string, invocation: string) => {
    clock.advance(10);
    for (const e of cachedActionEvents({ id, at: clock.now(), actionDigest: `${id}/1`, instance: '', origin: { toolInvocationId: invocation, targetId: `//:${id}` } })) bus.emit(e);
  };
  return { bus, history, index, journal, hit };
}

const lines = () => readFileSync(join(dir, JOURNAL_FILE), 'utf8').split('\n').filter(Boolean);

describe('HistoryJournal', () => {
  it('gets back every whole line after a crash that tore the last one', () => {
    const a = open();
    a.hit('a1', 'inv-1');
    a.hit('a2', 'inv-1');
    a.journal.flush();
    // The process dies mid-append: half a line, no newline.
    appendFileSync(join(dir, JOURNAL_FILE), '{"action":{"id":"a3","sta');
    const b = open();
    expect(b.history.list().items.map((i) => i.id)).toEqual(['a2', 'a1']);
    expect(b.index.get('inv-1')?.actions.cached).toBe(2);
    // The torn line is gone from the file after the start-up rewrite.
    expect(lines().every((l) => JSON.parse(l))).toBeTruthy();
  });

  it('keeps the file within the history bound: older actions leave it at the next start', () => {
    const a = open(3);
    for (let i = 1; i <= 6; i++) a.hit(`a${i}`, 'inv-1');
    a.journal.stop();
    const b = open(3);
    expect(b.history.list().items.map((i) => i.id)).toEqual(['a6', 'a5', 'a4']);
    expect(lines().filter((l) => l.startsWith('{"action"'))).toHaveLength(3);
    // The invocation's counts are its own and stay true even for actions the history let go.
    expect(b.index.get('inv-1')?.actions.cached).toBe(6);
  });

  it('starts empty, without failing, when the file holds garbage', () => {
    mkdirSync(join(dir, 'history'), { recursive: true });
    writeFileSync(join(dir, JOURNAL_FILE), 'not json\n{"neither": 1}\n');
    const a = open();
    expect(a.history.list().total).toBe(0);
    expect(a.index.list().total).toBe(0);
  });

  it('keeps invocations within the configured count and age, with their build events, across a restart', () => {
    const a = open();
    for (let i = 1; i <= 5; i++) {
      a.hit(`a${i}`, `inv-${i}`);
      a.index.applyBuildEvent(`inv-${i}`, [{ kind: 'started', command: 'test' }, { kind: 'finished', at: clock.now(), exitCode: { name: 'SUCCESS', code: 0 } }], clock.now());
    }
    a.journal.stop();
    // invocation-history 3: the two oldest leave the index and the file at the next start.
    const b = open(100, { maxInvocations: 3 });
    expect(b.index.list().items.map((i) => i.id)).toEqual(['inv-5', 'inv-4', 'inv-3']);
    expect(b.index.get('inv-5')?.build).toMatchObject({ command: 'test', exitCode: { name: 'SUCCESS', code: 0 } });
    b.journal.stop();
    expect(lines().filter((l) => 'invocation' in JSON.parse(l))).toHaveLength(3);
    // invocation-history-days: a week later with a one-day bound, none is left.
    clock.advance(7 * 24 * 60 * 60_000);
    const c = open(100, { maxAgeMs: 24 * 60 * 60_000 });
    expect(c.index.list().total).toBe(0);
  });

  it('rewrites the file once a running build has re-saved its invocation for many bytes', () => {
    const a = open(100, {}, 50_000);
    // One invocation whose target list grows: every flush appends it whole again.
    for (let i = 0; i < 200; i++) {
      a.index.applyBuildEvent('inv-big', [{ kind: 'configured', label: `//pkg:target_with_a_long_name_${i}` }], clock.now());
      a.journal.flush();
    }
    const size = readFileSync(join(dir, JOURNAL_FILE)).length;
    // Without the byte bound the 200 lines would hold ~200 × 100 targets' worth; with it, a few copies at most.
    expect(size).toBeLessThan(200_000);
    expect(lines().filter((l) => JSON.parse(l).invocation?.id === 'inv-big').length).toBeLessThan(50);
    a.journal.stop();
    expect(open().index.get('inv-big')?.build?.targets).toHaveLength(200);
  });
});
