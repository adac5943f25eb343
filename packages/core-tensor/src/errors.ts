/**
 * Error codes used across SkySense. Packages may add their own codes; these are the shared ones.
 *
 * - `E_ARG`: an option or argument has a wrong value.
 * - `E_SHAPE` / `E_DTYPE`: a tensor has the wrong shape or dtype.
 * - `E_BACKEND`: a requested tensor backend could not be loaded.
 * - `E_SAFETENSORS`: a safetensors file is corrupt, hostile or unsupported.
 * - `E_STATE_DICT`: a state dict does not fit a module (missing / unexpected / mismatched keys).
 * - `E_SHAPE_ONLY`: a tensor value was asked of a module built in shape-only mode.
 * - `E_UNSUPPORTED`: a valid request that this implementation does not support.
 * - `E_IO`: a file could not be read or written.
 * - `E_FORMAT`: an image or data file is corrupt or not of the expected format.
 */
export type SkySenseErrorCode =
  | 'E_ARG'
  | 'E_SHAPE'
  | 'E_DTYPE'
  | 'E_BACKEND'
  | 'E_SAFETENSORS'
  | 'E_STATE_DICT'
  | 'E_SHAPE_ONLY'
  | 'E_UNSUPPORTED'
  | 'E_IO'
  | 'E_FORMAT'
  | (string & {});

/**
 * The one error class of SkySense. `code` is stable and meant for programs; `message` names the
 * argument, the expected and the actual value; `details` carries structured data where useful
 * (for instance the load report of a failed `loadStateDict`).
 * @example
 * ```ts
 * import { initBackend, Linear, loadCheckpoint, SkySenseError } from '@skysense/core-tensor';
 * await initBackend();
 * try {
 *   loadCheckpoint(new Linear(4, 2), 'no-such-file.pth');
 * } catch (e) {
 *   if (e instanceof SkySenseError) console.log(e.code, e.message); // 'E_IO' and a message naming the file
 *   else throw e;
 * }
 * ```
 */
export class SkySenseError extends Error {
  /** Stable machine-readable code, e.g. `E_SHAPE`. */
  readonly code: SkySenseErrorCode;
  /** Structured context (report, offending values), if any. */
  readonly details?: unknown;

  constructor(code: SkySenseErrorCode, message: string, options: { cause?: unknown; details?: unknown } = {}) {
    super(`${code}: ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SkySenseError';
    this.code = code;
    this.details = options.details;
  }
}
