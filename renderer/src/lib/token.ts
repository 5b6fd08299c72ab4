// The API token for write requests. Electron passes it in the URL fragment
// (#token=…), which never reaches a server log; a browser user pastes it in
// Settings. Either way it is kept in localStorage for the next visit.

const KEY = 'kiln.token';

/** Extracts the token from a fragment like "#token=abc&x=1"; undefined if absent. */
export function tokenFromFragment(hash: string): string | undefined {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  const t = params.get('token')?.trim();
  return t ? t : undefined;
}

/** The fragment with the token removed, so it doesn't linger in the address bar or history. */
export function fragmentWithoutToken(hash: string): string {
  // A route (#/invocations/ID) is not a parameter list: leave it exactly as it is.
  if (!/(^#?|&)token=/.test(hash)) return hash;
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  params.delete('token');
  const rest = params.toString();
  return rest ? `#${rest}` : '';
}

export interface TokenStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export class TokenKeeper {
  constructor(private readonly storage: TokenStorage | undefined) {}

  get(): string | undefined {
    try {
      return this.storage?.getItem(KEY) ?? undefined;
    } catch {
      return undefined; // storage disabled (privacy mode): just don't remember
    }
  }

  set(token: string | undefined): void {
    try {
      if (token) this.storage?.setItem(KEY, token);
      else this.storage?.removeItem(KEY);
    } catch {
      /* see get() */
    }
  }

  /** Adopts a token from the page's fragment if there is one; returns the fragment to keep. */
  adoptFromFragment(hash: string): string {
    const t = tokenFromFragment(hash);
    if (t) this.set(t);
    return fragmentWithoutToken(hash);
  }
}
