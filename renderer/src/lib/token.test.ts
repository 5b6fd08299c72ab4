import { describe, expect, it } from 'vitest';
import { fragmentWithoutToken, TokenKeeper, tokenFromFragment } from './token';

function memoryStorage() {
  const m = new Map<string, string>();
  return { getItem: (k: string) => m.get(k) ?? null, setItem: (k: string, v: string) => void m.set(k, v), removeItem: (k: string) => void m.delete(k) };
}

describe('token fragment', () => {
  it('reads the token from the fragment', () => {
    expect(tokenFromFragment('#token=s3cr%2Bt')).toBe('s3cr+t');
    expect(tokenFromFragment('#view=actions&token=abc')).toBe('abc');
    expect(tokenFromFragment('')).toBeUndefined();
    expect(tokenFromFragment('#token=')).toBeUndefined();
  });
  it('strips only the token', () => {
    expect(fragmentWithoutToken('#token=abc')).toBe('');
    expect(fragmentWithoutToken('#view=actions&token=abc')).toBe('#view=actions');
  });
});

describe('TokenKeeper', () => {
  it('stores an adopted token and clears it', () => {
    const k = new TokenKeeper(memoryStorage());
    expect(k.adoptFromFragment('#token=t1')).toBe('');
    expect(k.get()).toBe('t1');
    k.adoptFromFragment('#other=1');
    expect(k.get()).toBe('t1');
    k.set(undefined);
    expect(k.get()).toBeUndefined();
  });
  it('survives storage that throws', () => {
    const broken = { getItem: () => { throw new Error('denied'); }, setItem: () => { throw new Error('denied'); }, removeItem: () => {} };
    const k = new TokenKeeper(broken);
    expect(() => k.set('x')).not.toThrow();
    expect(k.get()).toBeUndefined();
  });
});

describe('fragmentWithoutToken and routes', () => {
  it('leaves a route fragment untouched, so deep links survive the token check', () => {
    expect(fragmentWithoutToken('#/invocations/5b0c-1/actions/op-2')).toBe('#/invocations/5b0c-1/actions/op-2');
    expect(fragmentWithoutToken('#token=abc')).toBe('');
  });
});
