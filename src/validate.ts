/**
 * The one validator module: every public function checks its arguments here, so messages
 * share one shape — "Expected <what> for <name> but received <value>". Wrong kind of value
 * → `TypeError`; right kind, bad value → `RangeError`.
 * @module
 */
import { availableParallelism } from 'node:os';

const DEFAULT_THREADS = availableParallelism();

/** Describes a received value for an error message: `1.5 of type number`, `Float64Array of length 3`. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  switch (typeof value) {
    case 'number':
    case 'bigint':
    case 'boolean':
      return `${String(value)} of type ${typeof value}`;
    case 'string': {
      const s = value.length > 40 ? `${value.slice(0, 40)}…` : value;
      return `'${s}' of type string`;
    }
    case 'function':
      return 'a function';
    case 'symbol':
      return `${String(value)} of type symbol`;
    default:
      break;
  }
  if (ArrayBuffer.isView(value)) {
    const n = value instanceof DataView ? value.byteLength : viewLength(value);
    return `${value.constructor.name} of length ${n}`;
  }
  if (Array.isArray(value)) return `Array of length ${value.length}`;
  const ctor = (value as { constructor?: { name?: string } }).constructor?.name;
  return ctor && ctor !== 'Object' ? `${ctor} object` : 'object';
}

export function typeError(name: string, expected: string, value: unknown): TypeError {
  return new TypeError(`Expected ${expected} for ${name} but received ${describe(value)}`);
}

export function rangeError(name: string, expected: string, value: unknown): RangeError {
  return new RangeError(`Expected ${expected} for ${name} but received ${describe(value)}`);
}

/** An integer in [min, max]. */
export function integer(name: string, value: unknown, min: number, max: number = Number.MAX_SAFE_INTEGER): number {
  const expected = max === Number.MAX_SAFE_INTEGER ? `integer >= ${min}` : `integer in [${min}, ${max}]`;
  if (typeof value !== 'number') throw typeError(name, expected, value);
  if (!Number.isInteger(value) || value < min || value > max) throw rangeError(name, expected, value);
  return value;
}

/** A finite number, optionally bounded (inclusive) or strictly positive. */
export function finite(name: string, value: unknown, opts: { min?: number; positive?: boolean } = {}): number {
  const expected = opts.positive ? 'finite number > 0' : opts.min !== undefined ? `finite number >= ${opts.min}` : 'finite number';
  if (typeof value !== 'number') throw typeError(name, expected, value);
  if (!Number.isFinite(value) || (opts.positive && value <= 0) || (opts.min !== undefined && value < opts.min)) {
    throw rangeError(name, expected, value);
  }
  return value;
}

export function boolean(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw typeError(name, 'boolean', value);
  return value;
}

/** A string (any, including empty). */
export function string(name: string, value: unknown): string {
  if (typeof value !== 'string') throw typeError(name, 'string', value);
  return value;
}

/** A non-empty string: wrong kind → TypeError, empty → RangeError. */
export function nonEmptyString(name: string, value: unknown): string {
  if (typeof value !== 'string') throw typeError(name, 'non-empty string', value);
  if (value === '') throw rangeError(name, 'non-empty string', value);
  return value;
}

/** An optional function. */
export function optionalFunction<T>(name: string, value: unknown): T | undefined {
  if (value !== undefined && typeof value !== 'function') throw typeError(name, 'function', value);
  return value as T | undefined;
}

/** One of a fixed set of string values. */
export function oneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T {
  const expected = `one of ${allowed.map((a) => `'${a}'`).join(', ')}`;
  if (typeof value !== 'string') throw typeError(name, expected, value);
  if (!(allowed as readonly string[]).includes(value)) throw rangeError(name, expected, value);
  return value as T;
}

/** A plain options object (or undefined → {}), with no keys outside `allowed` (catches typos). */
export function options<T extends object>(name: string, value: unknown, allowed: readonly string[]): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value) || ArrayBuffer.isView(value)) {
    throw typeError(name, 'an options object', value);
  }
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw new TypeError(`Unknown option '${key}' in ${name} (expected one of: ${allowed.join(', ')})`);
    }
  }
  return value as Partial<T>;
}

// The %TypedArray%.prototype.length getter: an array's own `length` can be redefined to lie,
// and native code and `set()` go by the real one.
const TYPED_LENGTH = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype), 'length')!.get!;

/** The real element count of a typed array (0 once its buffer is detached), whatever its `length` property says. */
export function viewLength(value: Exclude<ArrayBufferView, DataView>): number {
  return TYPED_LENGTH.call(value) as number;
}

// Node 20 has no ArrayBuffer.prototype.detached: a detached buffer refuses to be viewed.
function detached(value: ArrayBufferView): boolean {
  if (value.buffer.byteLength > 0) return false;
  try {
    new Uint8Array(value.buffer, 0, 0);
    return false;
  } catch {
    return true;
  }
}

type TypedArrayClass<T> = { new (n: number): T; readonly name: string };

/**
 * A typed array of class `Ctor` (read in place), optionally of an exact length; a detached one
 * (its buffer transferred) is a TypeError, since nothing can be read from or written to it.
 */
export function typedArray<T extends Exclude<ArrayBufferView, DataView>>(name: string, value: unknown, Ctor: TypedArrayClass<T>, length?: number): T {
  if (!(value instanceof (Ctor as unknown as new () => T))) throw typeError(name, Ctor.name, value);
  const n = viewLength(value);
  if (n === 0 && detached(value)) throw new TypeError(`Expected ${Ctor.name} for ${name} but received a ${Ctor.name} whose buffer is detached`);
  if (length !== undefined && n !== length) throw rangeError(name, `${Ctor.name} of length ${length}`, value);
  return value;
}

/** A Float32Array (read in place), optionally of an exact length. */
export function float32Array(name: string, value: unknown, length?: number): Float32Array {
  return typedArray(name, value, Float32Array, length);
}

/** An Int32Array (read in place), optionally of an exact length. */
export function int32Array(name: string, value: unknown, length?: number): Int32Array {
  return typedArray(name, value, Int32Array, length);
}

/** An Int8Array (read in place), optionally of an exact length. */
export function int8Array(name: string, value: unknown, length?: number): Int8Array {
  return typedArray(name, value, Int8Array, length);
}

/**
 * A vector of finite numbers as a Float32Array: a Float32Array is used in place, a number
 * array or other numeric typed array is converted.
 */
export function finiteVector(name: string, value: unknown, length: number): Float32Array {
  let v: Float32Array;
  if (value instanceof Float32Array) v = value;
  else if (Array.isArray(value) || value instanceof Float64Array) v = Float32Array.from(value as ArrayLike<number>);
  else throw typeError(name, `Float32Array or number[] of length ${length}`, value);
  if (v.length !== length) throw rangeError(name, `length ${length}`, value);
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i])) throw new RangeError(`Expected finite numbers for ${name} but ${name}[${i}] is ${v[i]}`);
  }
  return v;
}

/** A number in [0, 1] (a rate, a weight, a share); NaN is out of range. */
export function unitInterval(name: string, value: unknown): number {
  if (typeof value !== 'number') throw typeError(name, 'number in [0, 1]', value);
  if (!(value >= 0 && value <= 1)) throw rangeError(name, 'number in [0, 1]', value);
  return value;
}

/**
 * A kernel thread count in [1, 256]; undefined means the machine's available parallelism
 * (read once: the call is a syscall, and small kernel calls take well under a microsecond).
 */
export function threads(name: string, value: unknown): number {
  return value === undefined ? DEFAULT_THREADS : integer(name, value, 1, 256);
}

/**
 * Moves the message and kind of an error thrown in native async code onto an error created
 * at the caller's site, so the stack shows the user's call rather than the event loop.
 */
export function rebase(err: unknown, site: Error): Error {
  if (!(err instanceof Error)) return new Error(String(err));
  const Ctor = err instanceof RangeError ? RangeError : err instanceof TypeError ? TypeError : Error;
  const out = new Ctor(err.message, { cause: err.cause });
  out.stack = `${Ctor.name}: ${err.message}\n${(site.stack ?? '').split('\n').slice(1).join('\n')}`;
  return out;
}

/** Runs native async work; what it throws or rejects with is {@link rebase}d onto `site`. */
export async function atSite<T>(site: Error, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (err) {
    throw rebase(err, site);
  }
}
