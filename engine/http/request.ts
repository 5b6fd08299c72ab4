// Errors that become JSON ApiError responses, and bounded request bodies.
import type { IncomingMessage } from 'node:http';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export const MAX_BODY_BYTES = 4 * 1024;

export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The body as a JSON object; `example` shows the caller what was expected; `emptyIsObject`: no body reads as {}. */
export async function readJsonObject(req: IncomingMessage, example: string, emptyIsObject = false): Promise<Record<string, unknown>> {
  const text = await readBody(req);
  if (emptyIsObject && text.trim() === '') return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HttpError(400, `body must be JSON like ${example}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, `body must be a JSON object like ${example}`);
  return body as Record<string, unknown>;
}
