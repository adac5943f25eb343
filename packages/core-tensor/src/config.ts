import { SkySenseError } from './errors';

/** `drop_path_rate` → `dropPathRate`. */
export function camelCase(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Reads a reference config's keyword arguments (mmcv/mmseg/mmcls snake_case): refuses names not in
 * `known` (a typo is an error, not a silent default), drops the `ignored` ones (those that do not
 * change the computation, such as `with_cp` or `init_cfg`), and returns the rest under camelCase
 * names, values untouched.
 * @param what the class name, for messages.
 */
export function readConfig(
  what: string,
  kwargs: Record<string, unknown>,
  known: readonly string[],
  ignored: readonly string[] = [],
): Record<string, unknown> {
  const unknown = Object.keys(kwargs).filter((k) => !known.includes(k) && !ignored.includes(k));
  if (unknown.length) throw new SkySenseError('E_ARG', `${what} config: unknown argument(s) ${unknown.join(', ')}`);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(kwargs)) if (!ignored.includes(k) && v !== undefined) out[camelCase(k)] = v;
  return out;
}
