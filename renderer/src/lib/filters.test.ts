import { describe, expect, it } from 'vitest';
import type { ActionSummary } from '../../../engine/common/api-types';
import { actionLabel, EMPTY_FILTER, filterQuery, isEmptyFilter, matchesFilter } from './filters';

const base: ActionSummary = {
  id: 'op-1',
  state: 'finished',
  outcome: 'success',
  cached: false,
  mnemonic: 'CppCompile',
  target: '//src/app:main',
  argv0: '/usr/bin/gcc',
  stage: 'finished',
  queuedAt: 1,
  instance: '',
  actionDigest: 'abcdef/10',
};

describe('matchesFilter', () => {
  it('matches everything with the empty filter', () => {
    expect(matchesFilter(base, EMPTY_FILTER)).toBe(true);
    expect(isEmptyFilter(EMPTY_FILTER)).toBe(true);
    expect(isEmptyFilter({ ...EMPTY_FILTER, q: ' x ' })).toBe(false);
  });
  it('filters by state and outcome', () => {
    expect(matchesFilter(base, { ...EMPTY_FILTER, state: 'running' })).toBe(false);
    expect(matchesFilter(base, { ...EMPTY_FILTER, state: 'finished', outcome: 'success' })).toBe(true);
    expect(matchesFilter(base, { ...EMPTY_FILTER, outcome: 'failure' })).toBe(false);
  });
  it('treats cache hits as the cached outcome', () => {
    const hit = { ...base, cached: true };
    expect(matchesFilter(hit, { ...EMPTY_FILTER, outcome: 'cached' })).toBe(true);
    expect(matchesFilter({ ...base, outcome: 'cached' }, { ...EMPTY_FILTER, outcome: 'cached' })).toBe(true);
  });
  it('searches case-insensitively across label fields, all terms required', () => {
    expect(matchesFilter(base, { ...EMPTY_FILTER, q: 'cppcompile' })).toBe(true);
    expect(matchesFilter(base, { ...EMPTY_FILTER, q: 'app:main gcc' })).toBe(true);
    expect(matchesFilter(base, { ...EMPTY_FILTER, q: 'app:main javac' })).toBe(false);
    expect(matchesFilter(base, { ...EMPTY_FILTER, q: 'ABCDEF' })).toBe(true);
  });
});

describe('filterQuery', () => {
  it('sends only what is set', () => {
    expect(filterQuery(EMPTY_FILTER)).toBe('');
    expect(filterQuery({ state: 'running', outcome: 'all', q: ' //a b ' }, { limit: 200 })).toBe('?state=running&q=%2F%2Fa+b&limit=200');
    expect(filterQuery(EMPTY_FILTER, { cursor: 'c1' })).toBe('?cursor=c1');
  });
});

describe('actionLabel', () => {
  it('prefers Bazel metadata, then argv[0]', () => {
    expect(actionLabel(base)).toEqual({ title: 'CppCompile', subtitle: '//src/app:main' });
    expect(actionLabel({ id: 'x', argv0: '/bin/sh' })).toEqual({ title: 'sh', subtitle: '/bin/sh' });
    expect(actionLabel({ id: 'x' })).toEqual({ title: 'Action', subtitle: 'x' });
  });
});

describe('actionLabel for a test\'s steps', () => {
  it('tells the test run from its test.xml step, which share mnemonic and label', () => {
    const run = actionLabel({ id: '1', mnemonic: 'TestRunner', target: '//pkg:t', role: 'test' });
    const xml = actionLabel({ id: '2', mnemonic: 'TestRunner', target: '//pkg:t', role: 'test-xml' });
    expect(run.title).toBe('TestRunner · test run');
    expect(xml.title).toBe('TestRunner · test.xml report');
    expect(run.subtitle).toBe(xml.subtitle);
  });
});
