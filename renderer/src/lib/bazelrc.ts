// The .bazelrc lines that point Bazel at this Kiln.
import { tokenHeaderFlag } from '../../../engine/common/bazel-flags';

export interface BazelrcInput {
  /** e.g. "grpc://127.0.0.1:8980" from /api/status. */
  grpcUrl: string;
  /** Replace the URL's host, e.g. with a LAN address for other machines. */
  host?: string;
  instanceName?: string;
  /** Worker slots. */
  concurrency: number;
  tokenRequired?: boolean;
}

/**
 * Twice the slot count: with remote execution Bazel's jobs are mostly waiting on
 * the network (uploads, cache lookups), so a deeper pipeline keeps every slot fed
 * while the rest queue cheaply.
 */
export function suggestedJobs(concurrency: number): number {
  return Math.max(2, Math.floor(concurrency) * 2);
}

export function executorUrl(grpcUrl: string, host?: string): string {
  if (!host) return grpcUrl;
  const m = /^([a-z]+:\/\/)(\[[^\]]+\]|[^:/]+)(.*)$/i.exec(grpcUrl);
  if (!m) return grpcUrl;
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `${m[1]}${h}${m[3]}`;
}

export function bazelrcSnippet(input: BazelrcInput): string {
  const lines = [`build --remote_executor=${executorUrl(input.grpcUrl, input.host)}`];
  if (input.instanceName) lines.push(`build --remote_instance_name=${input.instanceName}`);
  lines.push(`build --jobs=${suggestedJobs(input.concurrency)}`);
  if (input.tokenRequired) lines.push(`build ${tokenHeaderFlag('YOUR_TOKEN')}`);
  return lines.join('\n') + '\n';
}
