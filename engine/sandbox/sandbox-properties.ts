// The platform properties the sandbox honours: network, memory, cpus, sandbox.
// A malformed value is the client's mistake and says which property and what
// it accepts; properties of other names are not the sandbox's business.
import { declarePlatformProperties } from '../common/platform-properties';
import { ConfigError, parseSize } from '../config-load';
import { GrpcError, Status, invalidArgument } from '../grpc/status';

export interface SandboxProperties {
  /** network=on: the action keeps the host's network. Off unless asked for. */
  network?: boolean;
  memoryBytes?: number;
  cpus?: number;
  /** sandbox=none (or off): the action asks to run unsandboxed; allowed only where the configuration says so. */
  optOut: boolean;
}

/** The property names the sandbox reads (advertised, and not "unknown" in an action's detail). */
export const SANDBOX_PROPERTY_NAMES = ['network', 'memory', 'cpus', 'sandbox'] as const;
declarePlatformProperties(SANDBOX_PROPERTY_NAMES);

const MAX_CPUS = 1024;

export function readSandboxProperties(platform: Record<string, string> | undefined): SandboxProperties {
  const p = platform ?? {};
  const out: SandboxProperties = { optOut: false };
  if (p.network !== undefined && p.network !== '') out.network = onOff('network', p.network);
  if (p.memory !== undefined && p.memory !== '') {
    try {
      out.memoryBytes = parseSize(p.memory);
    } catch (err) {
      if (err instanceof ConfigError) throw invalidArgument(`platform property memory: ${err.message}`, 'platform');
      throw err;
    }
  }
  if (p.cpus !== undefined && p.cpus !== '') {
    const n = Number(p.cpus);
    if (!/^\d+(\.\d+)?$/.test(p.cpus.trim()) || !(n > 0) || n > MAX_CPUS) {
      throw invalidArgument(`platform property cpus: "${p.cpus}" is not a number of cores from 0.01 to ${MAX_CPUS} (e.g. 2 or 0.5)`, 'platform');
    }
    out.cpus = n;
  }
  if (p.sandbox !== undefined && p.sandbox !== '') {
    const v = p.sandbox.trim().toLowerCase();
    if (v === 'none' || v === 'off') out.optOut = true;
    else if (v !== 'on' && v !== 'bubblewrap') {
      throw invalidArgument(`platform property sandbox: "${p.sandbox}" is not a sandbox; use on or none`, 'platform');
    }
  }
  return out;
}

function onOff(name: string, value: string): boolean {
  const v = value.trim().toLowerCase();
  if (['on', 'true', 'yes', '1'].includes(v)) return true;
  if (['off', 'false', 'no', '0'].includes(v)) return false;
  throw invalidArgument(`platform property ${name}: "${value}" is not a switch; use on or off`, 'platform');
}

/** An action asking to run unsandboxed (sandbox=none) where the configuration sandboxes every action. */
export function optOutRefused(): GrpcError {
  return new GrpcError(
    Status.FAILED_PRECONDITION,
    'platform property sandbox=none is not allowed here: this Kiln sandboxes every action (sandbox: on, or LAN mode); drop the property',
  );
}
