/**
 * The error every answer other than 2xx is built from, and the helpers that turn a validator's
 * TypeError / RangeError into a 400 naming the body field.
 * @module
 */

/** An answer other than 2xx, sent as OpenAI's `{ error: { message, type, param, code } }`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Record<string, string> = {},
    readonly errorType?: string,
  ) {
    super(message);
  }

  /** OpenAI's error types: the client's fault, or the server's, unless a type was given. */
  get type(): string {
    return this.errorType ?? (this.status >= 500 ? 'server_error' : 'invalid_request_error');
  }

  get body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** Runs a check, turning its TypeError/RangeError into a 400 naming `param`. */
export function field<T>(param: string, check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (err instanceof TypeError || err instanceof RangeError) throw new HttpError(400, err.message, param);
    throw err;
  }
}

export function knownFields(body: Record<string, unknown>, allowed: readonly string[]): void {
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) throw new HttpError(400, `Unknown field '${key}' in the request body (supported: ${allowed.join(', ')})`, key);
  }
}

