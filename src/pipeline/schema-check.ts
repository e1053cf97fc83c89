/**
 * A checker for the JSON Schema subset {@link PIPELINE_CONFIG_SCHEMA} uses (type, const, enum,
 * properties, required, additionalProperties, minProperties, items, minItems, minimum, maximum,
 * exclusiveMinimum, minLength, oneOf with a discriminator), whose errors read as the validator's
 * do and name the path of the bad key: `Expected integer in [1, 256] for config.experts.tiny.threads
 * but received 0 of type number`. Wrong kind → TypeError, bad value → RangeError.
 * @module
 */
import * as v from '../validate';

/** A node of the schema, as far as this checker reads it. */
export interface SchemaNode {
  readonly $schema?: string;
  readonly $id?: string;
  readonly title?: string;
  readonly description?: string;
  readonly type?: string;
  readonly const?: unknown;
  readonly enum?: readonly unknown[];
  readonly properties?: Readonly<Record<string, SchemaNode>>;
  readonly required?: readonly string[];
  readonly additionalProperties?: boolean | SchemaNode;
  readonly minProperties?: number;
  readonly items?: SchemaNode;
  readonly minItems?: number;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly exclusiveMinimum?: number;
  readonly minLength?: number;
  readonly oneOf?: readonly SchemaNode[];
  readonly discriminator?: { readonly propertyName: string };
  readonly 'x-secret-keys'?: boolean;
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** `name.key`, or `name['key']` for a key that is not an identifier. */
export function child(name: string, key: string, secret = false): string {
  const shown = secret ? `${key.slice(0, 4)}…` : key;
  return IDENTIFIER.test(shown) ? `${name}.${shown}` : `${name}['${shown.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}']`;
}

/** What a node expects, in the validator's words. */
export function expected(node: SchemaNode): string {
  if (node.const !== undefined) return JSON.stringify(node.const).replace(/^"|"$/g, "'");
  if (node.enum !== undefined) return `one of ${node.enum.map((x) => (typeof x === 'string' ? `'${x}'` : String(x))).join(', ')}`;
  switch (node.type) {
    case 'integer':
      if (node.minimum !== undefined && node.maximum !== undefined) return `integer in [${node.minimum}, ${node.maximum}]`;
      return node.minimum !== undefined ? `integer >= ${node.minimum}` : 'integer';
    case 'number': {
      const lo = node.exclusiveMinimum ?? node.minimum;
      if (lo !== undefined && node.maximum !== undefined) return `number in ${node.exclusiveMinimum !== undefined ? '(' : '['}${lo}, ${node.maximum}]`;
      if (node.exclusiveMinimum !== undefined) return `finite number > ${node.exclusiveMinimum}`;
      return node.minimum !== undefined ? `finite number >= ${node.minimum}` : 'finite number';
    }
    case 'string':
      return (node.minLength ?? 0) >= 1 ? 'non-empty string' : 'string';
    case 'boolean':
      return 'boolean';
    case 'array':
      return (node.minItems ?? 0) >= 1 ? 'a non-empty array' : 'an array';
    case 'object':
      return 'an object';
    default:
      return 'a value';
  }
}

/** Checks `value` against `node`; throws TypeError / RangeError naming `name`. */
export function check(node: SchemaNode, value: unknown, name: string): void {
  if (node.oneOf !== undefined) return checkOneOf(node, value, name);
  if (node.const !== undefined) {
    if (value !== node.const) throw (typeof value === typeof node.const ? v.rangeError : v.typeError)(name, expected(node), value);
    return;
  }
  if (node.enum !== undefined) {
    if (!node.enum.includes(value)) {
      const kinds = new Set(node.enum.map((x) => typeof x));
      throw (kinds.has(typeof value) ? v.rangeError : v.typeError)(name, expected(node), value);
    }
    return;
  }
  switch (node.type) {
    case 'integer':
    case 'number': {
      if (typeof value !== 'number') throw v.typeError(name, expected(node), value);
      const bad =
        !Number.isFinite(value) ||
        (node.type === 'integer' && !Number.isInteger(value)) ||
        (node.minimum !== undefined && value < node.minimum) ||
        (node.maximum !== undefined && value > node.maximum) ||
        (node.exclusiveMinimum !== undefined && value <= node.exclusiveMinimum);
      if (bad) throw v.rangeError(name, expected(node), value);
      return;
    }
    case 'string':
      if (typeof value !== 'string') throw v.typeError(name, expected(node), value);
      if (value.length < (node.minLength ?? 0)) throw v.rangeError(name, expected(node), value);
      return;
    case 'boolean':
      if (typeof value !== 'boolean') throw v.typeError(name, expected(node), value);
      return;
    case 'array':
      if (!Array.isArray(value)) throw v.typeError(name, expected(node), value);
      if (value.length < (node.minItems ?? 0)) throw v.rangeError(name, expected(node), value);
      if (node.items !== undefined) value.forEach((x: unknown, i) => check(node.items!, x, `${name}[${i}]`));
      return;
    case 'object':
      return checkObject(node, value, name);
    default:
      return;
  }
}

function checkObject(node: SchemaNode, value: unknown, name: string): void {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw v.typeError(name, 'an object', value);
  const obj = value as Record<string, unknown>;
  const props = node.properties ?? {};
  const keys = Object.keys(obj);
  if (node.additionalProperties === false) {
    for (const key of keys) {
      if (!Object.hasOwn(props, key)) throw new TypeError(`Unknown option '${key}' in ${name} (expected one of: ${Object.keys(props).join(', ')})`);
    }
  }
  for (const key of node.required ?? []) {
    if (obj[key] === undefined) throw v.typeError(child(name, key), expected(props[key] ?? {}), undefined);
  }
  if (node.minProperties !== undefined && keys.length < node.minProperties) throw v.rangeError(name, `an object with at least ${node.minProperties} ${node.minProperties === 1 ? 'entry' : 'entries'}`, value);
  const secret = node['x-secret-keys'] === true;
  for (const key of keys) {
    const sub = Object.hasOwn(props, key) ? props[key] : typeof node.additionalProperties === 'object' ? node.additionalProperties : undefined;
    if (sub !== undefined && obj[key] !== undefined) check(sub, obj[key], child(name, key, secret));
  }
}

/** oneOf with a discriminator: the branch is chosen by the discriminating property's const. */
function checkOneOf(node: SchemaNode, value: unknown, name: string): void {
  const prop = node.discriminator?.propertyName;
  if (prop === undefined) throw new Error(`schema: oneOf at ${name} needs a discriminator`);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw v.typeError(name, 'an object', value);
  const branches = node.oneOf!;
  const tag = (value as Record<string, unknown>)[prop];
  const branch = branches.find((b) => b.properties?.[prop]?.const === tag);
  if (branch === undefined) {
    const allowed = branches.map((b) => b.properties![prop]!.const);
    throw (typeof tag === 'string' ? v.rangeError : v.typeError)(child(name, prop), `one of ${allowed.map((a) => `'${String(a)}'`).join(', ')}`, tag);
  }
  check(branch, value, name);
}
