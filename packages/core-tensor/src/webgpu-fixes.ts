import { tf } from './tf';

/**
 * Kernels of tfjs-backend-webgpu 4.22 that fail or compute wrongly on inputs SkySense's models
 * make, replaced for the `webgpu` backend by the same kernel on lower-rank views:
 *
 * - `PadV2` of rank 5 and 6 (its WGSL indexes a `vec5`/`vec6` struct and does not compile; a
 *   slice's gradient is a pad, and window partitions are rank 6): one pad per padded axis, on a
 *   `[outer, axis, inner]` view;
 * - `Reverse` of rank 5 and 6 (refused): one reverse per axis on the same view;
 * - `Select` (`tf.where`) of rank 5 and 6 (refused; its operands have one shape): on flat views;
 * - `Cumsum` / `Cumprod` of rank 5 and 6 (refused), and in reverse (its shader bakes in the axis
 *   length but is cached without it: a scan of one length reuses another's): a forward scan along
 *   the last axis of a 2-D view, the axis moved last by a transpose and flipped for `reverse`;
 * - `AddN` of 8 tensors or more (one storage buffer per input: over WebGPU's default limit of 8 per
 *   shader stage, the pipeline is invalid and every later command fails): sums of at most 7;
 * - `BatchMatMul` / `_FusedMatMul` where tfjs splits K across workgroups (one product, K ≥ 2000,
 *   few output tiles — weight gradients over many pixels): the parts are added with float atomics
 *   in an order that changes from run to run, so training would not repeat itself; the small-tile
 *   program instead, which sums in a fixed order;
 * - `UnsortedSegmentSum` (the gradient of a gather, e.g. Swin's relative position bias): tfjs adds
 *   floats with atomics, in an order that changes from run to run, and returns wrong int32 sums; a
 *   thread per output element that sums its rows in order;
 * - `Cast` of int32 or bool to float32 on the GPU, which relabels the integer buffer instead of
 *   converting it — programs that copy elements (`Transpose`) then declare a float output and write
 *   integers: a conversion, so that a float32 tensor always has a float buffer.
 *
 * And, in {@link fixWebGPUPrograms}, two faults of tfjs's programs wherever they run (tfjs's kernels
 * call each other directly, not through the registry): the transpose program on int32 and bool
 * tensors (inside reductions along an inner axis too, e.g. `tf.all` of a mask) writes an integer
 * where it declares a float; and programs of rank 5–6 outputs that index their coordinates
 * (`coords[5]`, e.g. a binary op broadcasting a small operand) do not compile, those being structs.
 *
 * Everything else is tfjs's kernel, untouched. Each replacement calls tfjs's own kernel, so it
 * stays on the GPU; the tests run the suite's parity fixtures on webgpu.
 */

type Info = tf.TensorInfo;
interface Backend {
  disposeData(id: object): void;
  shouldExecuteOnCPU(inputs: Info[]): boolean;
  runWebGPUProgram(program: object, inputs: Info[], dtype: string): Info;
  /** Below this many 32×32 output tiles tfjs picks a matrix-product program with more workgroups. */
  thresholdToIncreaseWorkgroups: number;
}
type KernelArgs = { inputs: Record<string, Info>; backend: Backend; attrs?: Record<string, unknown> };
type Kernel = (args: KernelArgs) => Info;

const BACKEND = 'webgpu';
/** Inputs per AddN program: with its output, within WebGPU's default 8 storage buffers per stage. */
const ADDN_INPUTS = 7;
const product = (xs: readonly number[]) => xs.reduce((a, b) => a * b, 1);

/** The webgpu kernel registered under `name` (the fixed one where it was replaced). */
function kernel(name: string): Kernel {
  return tf.getKernel(name, BACKEND)!.kernelFunc as unknown as Kernel;
}

const fixed = new Set<string>();

/** A reshaped view of `x` (shares its data). */
function view(args: KernelArgs, x: Info, shape: number[]): Info {
  return kernel('Reshape')({ inputs: { x }, backend: args.backend, attrs: { shape } });
}

/**
 * Applies `perAxis` for each axis in `axes` to a `[outer, axis, inner]` view of the running
 * result; intermediate results are released. Returns a new tensor even when `axes` is empty.
 */
function axisByAxis(args: KernelArgs, x: Info, axes: number[], perAxis: (v: Info, axis: number) => Info): Info {
  let cur = view(args, x, x.shape);
  for (const axis of axes) {
    const shape = cur.shape;
    const v = view(args, cur, [product(shape.slice(0, axis)), shape[axis]!, product(shape.slice(axis + 1))]);
    const out = perAxis(v, axis);
    const next = view(args, out, [...shape.slice(0, axis), out.shape[1]!, ...shape.slice(axis + 1)]);
    for (const t of [v, out, cur]) args.backend.disposeData(t.dataId);
    cur = next;
  }
  return cur;
}

const fixes: Record<string, (args: KernelArgs, original: Kernel) => Info> = {
  PadV2: (args, original) => {
    const x = args.inputs.x!;
    if (x.shape.length <= 4) return original(args);
    const paddings = args.attrs!.paddings as [number, number][];
    const axes = paddings.flatMap(([lo, hi], i) => (lo || hi ? [i] : []));
    return axisByAxis(args, x, axes, (v, axis) =>
      original({ ...args, inputs: { x: v }, attrs: { ...args.attrs, paddings: [[0, 0], paddings[axis]!, [0, 0]] } }),
    );
  },
  Reverse: (args, original) => {
    const x = args.inputs.x!;
    if (x.shape.length <= 4) return original(args);
    const rank = x.shape.length;
    const dims = [...new Set([args.attrs!.dims as number | number[]].flat().map((d) => (d < 0 ? d + rank : d)))];
    return axisByAxis(args, x, dims, (v) => original({ ...args, inputs: { x: v }, attrs: { dims: [1] } }));
  },
  Select: (args, original) => {
    const { condition, t, e } = args.inputs as { condition: Info; t: Info; e: Info };
    if (t.shape.length <= 4) return original(args);
    const flat = [condition, t, e].map((i) => view(args, i, [product(i.shape)]));
    const out = original({ ...args, inputs: { condition: flat[0]!, t: flat[1]!, e: flat[2]! } });
    const result = view(args, out, t.shape);
    for (const i of [...flat, out]) args.backend.disposeData(i.dataId);
    return result;
  },
  Cast: (args, original) => {
    const x = args.inputs.x!;
    const toFloat = args.attrs!.dtype === 'float32' && (x.dtype === 'int32' || x.dtype === 'bool');
    if (!toFloat || args.backend.shouldExecuteOnCPU([x])) return original(args);
    return args.backend.runWebGPUProgram(
      elementProgram(x.shape, 'int_to_float', 'setOutputAtIndex(index, f32(A[index]));'),
      [x],
      'float32',
    );
  },
  AddN: (args, original) => {
    const inputs = args.inputs as unknown as Info[];
    let xs = inputs;
    while (xs.length > ADDN_INPUTS) {
      const partial: Info[] = [];
      for (let i = 0; i < xs.length; i += ADDN_INPUTS) {
        const chunk = xs.slice(i, i + ADDN_INPUTS);
        partial.push(chunk.length === 1 ? view(args, chunk[0]!, chunk[0]!.shape) : original({ ...args, inputs: chunk as never }));
      }
      if (xs !== inputs) for (const t of xs) args.backend.disposeData(t.dataId);
      xs = partial;
    }
    const result = original({ ...args, inputs: xs as never });
    if (xs !== inputs) for (const t of xs) args.backend.disposeData(t.dataId);
    return result;
  },
  UnsortedSegmentSum: (args, original) => {
    const { x, segmentIds } = args.inputs as { x: Info; segmentIds: Info };
    if (x.dtype !== 'float32' && x.dtype !== 'int32') return original(args);
    const int = x.dtype === 'int32';
    const rows = product(segmentIds.shape);
    const cols = product(x.shape) / Math.max(rows, 1);
    const segments = args.attrs!.numSegments as number;
    const flatX = view(args, x, [rows, cols]);
    const flatIds = view(args, segmentIds, [rows]);
    const body = `let s = index / uniforms.xShape.y;
    let c = index % uniforms.xShape.y;
    var acc = ${int ? '0' : '0.0'};
    for (var r = 0; r < uniforms.xShape.x; r = r + 1) {
      if (ids[r] == s) { acc = acc + x[r * uniforms.xShape.y + c]; }
    }
    ${int ? 'setOutputAtIndexI32' : 'setOutputAtIndex'}(index, acc);`;
    const program = elementProgram([segments, cols], `segment_sum_${x.dtype}`, body, ['x', 'ids']);
    const out = args.backend.runWebGPUProgram(program, [flatX, flatIds], x.dtype);
    const result = view(args, out, [segments, ...x.shape.slice(segmentIds.shape.length)]);
    for (const t of [flatX, flatIds, out]) args.backend.disposeData(t.dataId);
    return result;
  },
  BatchMatMul: deterministicMatMul,
  _FusedMatMul: deterministicMatMul,
  Cumsum: cumulative,
  Cumprod: cumulative,
};

/** A program with a thread per output element (flat dispatch) over inputs `names`; `body` writes element `index`. */
function elementProgram(outputShape: number[], key: string, body: string, names = ['A']): object {
  return {
    variableNames: names,
    workgroupSize: [64, 1, 1],
    size: true,
    outputShape,
    dispatchLayout: { x: outputShape.map((_, i) => i) },
    dispatch: [Math.ceil(product(outputShape) / 64), 1, 1],
    shaderKey: `skysense_${key}`,
    getUserCode: () => `
fn main(index: i32) {
  if (index < uniforms.size) {
    ${body}
  }
}`,
  };
}

/** tfjs-backend-webgpu's `MatMulProgramType.MatMulSmallOutputSizeProgram`. */
const SMALL_OUTPUT_PROGRAM = 2;

/** A matrix product on any program but tfjs's split-K one (see above), chosen by tfjs's own rule. */
function deterministicMatMul(args: KernelArgs, original: Kernel): Info {
  const { a, b } = args.inputs as { a: Info; b: Info };
  const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
  const [ra, rb] = [a.shape.length, b.shape.length];
  const m = a.shape[transposeA ? ra - 1 : ra - 2]!;
  const k = a.shape[transposeA ? ra - 2 : ra - 1]!;
  const n = b.shape[transposeB ? rb - 2 : rb - 1]!;
  const batch = Math.max(product(a.shape.slice(0, -2)), product(b.shape.slice(0, -2)));
  const flags = tf.env();
  if (flags.getNumber('WEBGPU_MATMUL_PROGRAM_TYPE') >= 0 || batch !== 1 || k < 2000 || m * n <= 128) return original(args);
  const threshold = flags.getNumber('WEBGPU_THRESHOLD_TO_INCREASE_WORKGROUPS_FOR_MATMUL');
  const few = threshold > 0 ? threshold : args.backend.thresholdToIncreaseWorkgroups;
  const tiles = Math.ceil(m / 32) * Math.ceil(n / 32);
  if (!(tiles <= few || (m <= 8 && tiles <= few * 2))) return original(args);
  flags.set('WEBGPU_MATMUL_PROGRAM_TYPE', SMALL_OUTPUT_PROGRAM);
  try {
    return original(args);
  } finally {
    flags.set('WEBGPU_MATMUL_PROGRAM_TYPE', -1);
  }
}

/**
 * A cumulative op (`attrs.axis`, `exclusive`, `reverse`) as tfjs's forward scan along the last axis
 * of a `[rows, axis]` view: the axis moved last by a transpose, and flipped before and after for
 * `reverse`. (tfjs's reverse scan bakes the axis length into a shader cached without it.)
 */
function cumulative(args: KernelArgs, original: Kernel): Info {
  const x = args.inputs.x!;
  const rank = x.shape.length;
  const attrs = args.attrs as { axis: number; exclusive: boolean; reverse: boolean };
  const axis = attrs.axis < 0 ? attrs.axis + rank : attrs.axis;
  if (rank <= 2 && axis === rank - 1 && !attrs.reverse) return original(args);
  const call = (name: string, x: Info, attrs: Record<string, unknown>) => kernel(name)({ inputs: { x }, backend: args.backend, attrs });
  const perm = [...Array(rank).keys()].filter((i) => i !== axis).concat(axis);
  const moved = axis === rank - 1 ? view(args, x, x.shape) : call('Transpose', x, { perm });
  const d = x.shape[axis]!;
  const rows = view(args, moved, [product(moved.shape) / d, d]);
  const flip = (t: Info) => (attrs.reverse ? call('Reverse', t, { dims: [1] }) : view(args, t, t.shape));
  const source = flip(rows);
  const scanned = original({ ...args, inputs: { x: source }, attrs: { ...attrs, axis: 1, reverse: false } });
  const unflipped = flip(scanned);
  const back = view(args, unflipped, moved.shape);
  const result = axis === rank - 1 ? view(args, back, x.shape) : call('Transpose', back, { perm: perm.map((_, i) => perm.indexOf(i)) });
  for (const t of [moved, rows, source, scanned, unflipped, back]) args.backend.disposeData(t.dataId);
  return result;
}

/** Replaces the kernels above for the webgpu backend (once; after tfjs-backend-webgpu registered its own). */
export function fixWebGPUKernels(): void {
  for (const [name, fix] of Object.entries(fixes)) {
    const config = tf.getKernel(name, BACKEND);
    if (fixed.has(name) || !config) continue;
    const original = config.kernelFunc as unknown as Kernel;
    fixed.add(name);
    tf.unregisterKernel(name, BACKEND);
    tf.registerKernel({ ...config, kernelFunc: ((args: KernelArgs) => fix(args, original)) as unknown as tf.KernelFunc });
  }
}

interface ProgramLike {
  shaderKey: string;
  outputShape: number[];
  getUserCode(): string;
}

const FIELDS = 'xyzwuv';

/**
 * Makes tfjs's transpose program write integers when its output is int32 or bool. Programs are
 * patched where the backend runs them, because tfjs's kernels call the transpose directly, not
 * through the kernel registry.
 */
export function fixWebGPUPrograms(backend: {
  runWebGPUProgram(program: ProgramLike, inputs: Info[], dtype: string, ...rest: unknown[]): Info;
}): void {
  const run = backend.runWebGPUProgram.bind(backend);
  backend.runWebGPUProgram = (program, inputs, dtype, ...rest) => {
    const integer = (dtype === 'int32' || dtype === 'bool') && program.shaderKey.startsWith('transpose_');
    const rank56 = program.outputShape.length >= 5;
    if (integer || rank56) {
      const userCode = program.getUserCode.bind(program);
      program.getUserCode = () => {
        let code = userCode();
        if (integer) code = code.replace(/setOutputAtIndex\(flatIndex,/g, 'setOutputAtIndexI32(flatIndex,');
        // rank 5 and 6 coordinates are structs (fields x y z w u v), which WGSL cannot index
        if (rank56) code = code.replace(/\bcoords\[(\d)\]/g, (_, k: string) => `coords.${FIELDS[Number(k)]}`);
        return code;
      };
    }
    return run(program, inputs, dtype, ...rest);
  };
}
