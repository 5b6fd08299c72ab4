// Access tokens for LAN mode. Only a SHA-256 of each token is stored; the
// plaintext is shown once, when the token is made. The file is shared by the
// running engine and the `kiln token` commands, so the engine re-reads it when
// it changes (checked at most once a second) and a revoke takes effect at once.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { writeFileAtomicSync } from '../util/atomic-file';

export interface TokenRecord {
  name: string;
  /** hex SHA-256 of the token */
  hash: string;
  createdAt: string;
}

export interface TokenInfo {
  name: string;
  createdAt: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

export class TokenError extends Error {}

export class TokenStore {
  private records: TokenRecord[] = [];
  private loadedMtimeMs = -1;
  private checkedAt = 0;

  constructor(
    private readonly file: string,
    private readonly now: () => number = Date.now,
  ) {
    this.reload();
  }

  /** Makes a token named `name` and returns its plaintext (the only time it exists outside the client). */
  add(name: string): string {
    this.reload();
    if (!NAME.test(name)) {
      throw new TokenError(`token name "${name}" is not allowed: use 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit`);
    }
    if (this.records.some((r) => r.name === name)) {
      throw new TokenError(`a token named "${name}" exists already; revoke it first or pick another name`);
    }
    const token = `kiln_${randomBytes(32).toString('base64url')}`;
    this.records.push({ name, hash: hashToken(token), createdAt: new Date(this.now()).toISOString() });
    this.save();
    return token;
  }

  /** Removes the token; returns false when there was none by that name. */
  revoke(name: string): boolean {
    this.reload();
    const before = this.records.length;
    this.records = this.records.filter((r) => r.name !== name);
    if (this.records.length === before) return false;
    this.save();
    return true;
  }

  list(): TokenInfo[] {
    this.reload();
    return this.records.map(({ name, createdAt }) => ({ name, createdAt }));
  }

  /** The name of the token that matches, or undefined. Constant-time per record. */
  verify(token: string | undefined): string | undefined {
    if (!token) return undefined;
    this.maybeReload();
    const presented = Buffer.from(hashToken(token), 'hex');
    let match: string | undefined;
    for (const r of this.records) {
      const stored = Buffer.from(r.hash, 'hex');
      if (stored.length === presented.length && timingSafeEqual(stored, presented)) match = r.name;
    }
    return match;
  }

  get size(): number {
    this.maybeReload();
    return this.records.length;
  }

  private maybeReload(): void {
    const t = this.now();
    if (t - this.checkedAt < 1000) return;
    this.checkedAt = t;
    this.reload();
  }

  private reload(): void {
    let mtime: number;
    try {
      mtime = statSync(this.file).mtimeMs;
    } catch {
      this.records = [];
      this.loadedMtimeMs = -1;
      return;
    }
    if (mtime === this.loadedMtimeMs) return;
    const parsed = JSON.parse(readFileSync(this.file, 'utf8')) as { tokens?: TokenRecord[] };
    this.records = (parsed.tokens ?? []).filter((r) => typeof r.name === 'string' && /^[0-9a-f]{64}$/.test(r.hash));
    this.loadedMtimeMs = mtime;
  }

  private save(): void {
    writeFileAtomicSync(this.file, JSON.stringify({ tokens: this.records }, null, 2) + '\n', 0o600);
    this.loadedMtimeMs = statSync(this.file).mtimeMs;
  }
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** The token in an `authorization: Bearer …` value, if any. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return m?.[1];
}
