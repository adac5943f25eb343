import { SkySenseError } from '../errors';
import type { SafetensorsDType } from '../safetensors';

/**
 * A restricted unpickler for PyTorch checkpoints. It implements the pickle opcodes `torch.save`
 * writes (protocols 0–5) but resolves **only** an allow-list of globals (tensor and storage
 * rebuilding, `OrderedDict`, and the plain-data helpers mmcv `meta` dicts need). Any other global
 * (`os.system`, `builtins.eval`, `subprocess.Popen`, …) is refused with `E_UNSAFE_PICKLE` when it is
 * named; nothing from the file is ever executed. Every read is bounds-checked against the data, so
 * corrupt input ends in an `E_CHECKPOINT` error, never a hang or a huge allocation.
 */

/**
 * A Python tuple.
 * @example
 * ```ts
 * import { initBackend, PyTuple, unpickle } from '@skysense/core-tensor';
 * await initBackend();
 * // pickle.dumps((1, 2.5), protocol=2)
 * const value = unpickle(Uint8Array.from([0x80, 2, 0x4b, 1, 0x47, 0x40, 4, 0, 0, 0, 0, 0, 0, 0x86, 0x2e]), 'bytes');
 * if (value instanceof PyTuple) console.log(value.items); // [1, 2.5]
 * ```
 */
export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

/**
 * A Python dict (or OrderedDict); `attributes` holds state set by BUILD (e.g. `_metadata`).
 * @example
 * ```ts
 * import { fileSource, initBackend, PyDict, PyStorage, PyTuple, readZipDirectory, readZipEntry, unpickle } from '@skysense/core-tensor';
 * await initBackend();
 * // the low-level view of a .pth (PthFile does all this): unpickle its archive/data.pkl
 * const src = fileSource('skysense_model_backbone_s1.pth');
 * const pkl = [...readZipDirectory(src).values()].find((e) => e.name.endsWith('/data.pkl'))!;
 * const storage = (pid: unknown) => (pid instanceof PyTuple ? new PyStorage(String(pid.items[2]), 'F32', Number(pid.items[4])) : null);
 * const root = unpickle(readZipEntry(src, pkl), 'data.pkl', storage);
 * if (root instanceof PyDict) console.log(root.className, root.map.size); // 'collections.OrderedDict' and its tensors
 * src.close();
 * ```
 */
export class PyDict {
  readonly map = new Map<unknown, PyValue>();
  attributes: Record<string, PyValue> = {};
  constructor(readonly className = 'dict') {}
  /** Value under a string key. */
  get(key: string): PyValue | undefined {
    return this.map.get(key);
  }
}

/**
 * A `torch.*Storage` class named in a checkpoint.
 * @example
 * ```ts
 * import { initBackend, PyStorageType, STORAGE_DTYPES } from '@skysense/core-tensor';
 * await initBackend();
 * // the storage classes a checkpoint may name, and the dtype each becomes
 * const types = Object.entries(STORAGE_DTYPES).map(([name, dtype]) => new PyStorageType(name, dtype));
 * console.log(types.map((t) => `${t.name} → ${t.dtype}`)); // FloatStorage → F32, LongStorage → I64, …
 * ```
 */
export class PyStorageType {
  constructor(
    readonly name: string,
    readonly dtype: SafetensorsDType,
  ) {}
}

/**
 * A storage reference from a persistent id: which bytes back a tensor.
 * @example
 * ```ts
 * import { initBackend, PyStorage } from '@skysense/core-tensor';
 * await initBackend();
 * // persistent id ('storage', torch.FloatStorage, '7', 'cpu', 1024) → the bytes of the zip entry data/7
 * const storage = new PyStorage('7', 'F32', 1024);
 * console.log(storage.key, storage.dtype, storage.numel);
 * ```
 */
export class PyStorage {
  constructor(
    readonly key: string,
    readonly dtype: SafetensorsDType,
    readonly numel: number,
    /** Legacy view storages: element offset into the root storage. */
    readonly viewOffset = 0,
  ) {}
}

/**
 * A tensor as the checkpoint describes it: a strided view of a storage.
 * @example
 * ```ts
 * import { initBackend, PyStorage, PyTensor } from '@skysense/core-tensor';
 * await initBackend();
 * // what `_rebuild_tensor_v2(storage, 0, (2, 3), (3, 1), False, …)` in a checkpoint's pickle becomes
 * const t = new PyTensor(new PyStorage('0', 'F32', 6), 0, [2, 3], [3, 1], false);
 * console.log(t.shape, t.stride, t.storage.key); // [2, 3] [3, 1] '0'
 * ```
 */
export class PyTensor {
  constructor(
    readonly storage: PyStorage,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
    readonly requiresGrad: boolean,
  ) {}
}

/**
 * A numpy dtype descriptor (only its kind/size matters here).
 * @example
 * ```ts
 * import { initBackend, PyNumpyDtype, type PyValue } from '@skysense/core-tensor';
 * await initBackend();
 * // numpy scalars in mmcv's checkpoint meta arrive as their dtype code plus bytes
 * const describe = (v: PyValue) => (v instanceof PyNumpyDtype ? `numpy ${v.code}` : typeof v);
 * console.log(describe(new PyNumpyDtype('f8'))); // 'numpy f8'
 * ```
 */
export class PyNumpyDtype {
  constructor(readonly code: string) {}
}

/**
 * An allow-listed callable (only functions that rebuild tensors or plain data).
 * @example
 * ```ts
 * import { initBackend, PyCallable, unpickle } from '@skysense/core-tensor';
 * await initBackend();
 * // pickle.dumps(collections.OrderedDict, protocol=2): a global on the allow-list becomes a PyCallable
 * const value = unpickle(Uint8Array.from([0x80, 2, ...new TextEncoder().encode('ccollections\nOrderedDict\n'), 0x2e]), 'bytes');
 * if (value instanceof PyCallable) console.log(value.qualname); // 'collections.OrderedDict'
 * ```
 */
export class PyCallable {
  constructor(
    readonly qualname: string,
    readonly call: (args: PyValue[]) => PyValue,
  ) {}
}

/** Any value the unpickler produces. */
export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyValue[]
  | PyTuple
  | PyDict
  | PyTensor
  | PyStorage
  | PyStorageType
  | PyNumpyDtype
  | PyCallable;

/** Storage class name → dtype. */
export const STORAGE_DTYPES: Readonly<Record<string, SafetensorsDType>> = {
  FloatStorage: 'F32',
  DoubleStorage: 'F64',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

/** How persistent ids (`BINPERSID`) become storages; supplied by the container format. */
export type PersistentLoad = (pid: PyValue) => PyValue;

function fail(where: string, msg: string): never {
  throw new SkySenseError('E_CHECKPOINT', `${where}: corrupt pickle: ${msg}`);
}

function asInt(v: PyValue, what: string, where: string): number {
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) fail(where, `${what} must be a non-negative integer, got ${String(v)}`);
  return n as number;
}

function intList(v: PyValue, what: string, where: string): number[] {
  const items = v instanceof PyTuple ? v.items : Array.isArray(v) ? v : fail(where, `${what} must be a tuple`);
  return items.map((x) => asInt(x, what, where));
}

function rebuildTensor(where: string) {
  return (args: PyValue[]): PyValue => {
    const [storage, offset, size, stride, requiresGrad] = args;
    if (!(storage instanceof PyStorage)) fail(where, '_rebuild_tensor_v2 needs a storage');
    const shape = intList(size!, 'size', where);
    const strides = intList(stride!, 'stride', where);
    if (shape.length !== strides.length) fail(where, `size ${shape} and stride ${strides} differ in rank`);
    return new PyTensor(storage as PyStorage, asInt(offset!, 'storage offset', where), shape, strides, requiresGrad === true);
  };
}

const NUMPY_SCALARS: Record<string, (dv: DataView) => number | bigint | boolean> = {
  f8: (dv) => dv.getFloat64(0, true),
  f4: (dv) => dv.getFloat32(0, true),
  i8: (dv) => dv.getBigInt64(0, true),
  i4: (dv) => dv.getInt32(0, true),
  i2: (dv) => dv.getInt16(0, true),
  i1: (dv) => dv.getInt8(0),
  u8: (dv) => dv.getBigUint64(0, true),
  u4: (dv) => dv.getUint32(0, true),
  u2: (dv) => dv.getUint16(0, true),
  u1: (dv) => dv.getUint8(0),
  b1: (dv) => dv.getUint8(0) !== 0,
};

function makeGlobals(where: string): Map<string, PyValue> {
  const g = new Map<string, PyValue>();
  const dict = (className: string) => new PyCallable(className, () => new PyDict(className));
  g.set('collections.OrderedDict', dict('OrderedDict'));
  g.set('builtins.dict', dict('dict'));
  g.set('__builtin__.dict', dict('dict'));
  g.set('torch._utils._rebuild_tensor_v2', new PyCallable('torch._utils._rebuild_tensor_v2', rebuildTensor(where)));
  g.set('torch._utils._rebuild_tensor', new PyCallable('torch._utils._rebuild_tensor', rebuildTensor(where)));
  const param = new PyCallable('torch._utils._rebuild_parameter', (a) => a[0] ?? null);
  g.set('torch._utils._rebuild_parameter', param);
  g.set('torch._utils._rebuild_parameter_with_state', param);
  g.set('torch.nn.parameter.Parameter', param);
  g.set(
    'torch._tensor._rebuild_from_type_v2',
    new PyCallable('torch._tensor._rebuild_from_type_v2', ([fn, , args]) => {
      if (!(fn instanceof PyCallable) || !(args instanceof PyTuple))
        fail(where, '_rebuild_from_type_v2 needs an allowed function and arguments');
      return (fn as PyCallable).call((args as PyTuple).items);
    }),
  );
  g.set('torch.Tensor', new PyCallable('torch.Tensor', () => null));
  g.set(
    'torch.Size',
    new PyCallable('torch.Size', ([items]) => new PyTuple(items instanceof PyTuple ? items.items : Array.isArray(items) ? items : [])),
  );
  for (const [name, dtype] of Object.entries(STORAGE_DTYPES)) g.set(`torch.${name}`, new PyStorageType(name, dtype));
  const toBytes = ([s, enc]: PyValue[]) => {
    if (typeof s !== 'string' || (enc !== 'latin1' && enc !== 'latin-1')) fail(where, '_codecs.encode only supports latin1 text');
    return Uint8Array.from(s as string, (c) => c.charCodeAt(0) & 0xff);
  };
  g.set('_codecs.encode', new PyCallable('_codecs.encode', toBytes));
  const set = new PyCallable('set', ([items]) => (Array.isArray(items) ? items : items instanceof PyTuple ? items.items : []));
  for (const n of ['builtins.set', 'builtins.frozenset', '__builtin__.set', '__builtin__.frozenset']) g.set(n, set);
  g.set(
    'numpy.dtype',
    new PyCallable('numpy.dtype', ([code]) => {
      if (typeof code !== 'string' || !NUMPY_SCALARS[code]) fail(where, `unsupported numpy dtype ${String(code)}`);
      return new PyNumpyDtype(code as string);
    }),
  );
  const scalar = new PyCallable('numpy.core.multiarray.scalar', ([dtype, bytes]) => {
    if (!(dtype instanceof PyNumpyDtype) || !(bytes instanceof Uint8Array)) fail(where, 'numpy scalar needs a dtype and bytes');
    const size = Number((dtype as PyNumpyDtype).code.slice(1));
    if ((bytes as Uint8Array).length < size) fail(where, 'numpy scalar bytes too short');
    const b = bytes as Uint8Array;
    const v = NUMPY_SCALARS[(dtype as PyNumpyDtype).code]!(new DataView(b.buffer, b.byteOffset, size));
    return typeof v === 'bigint' && v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
  });
  g.set('numpy.core.multiarray.scalar', scalar);
  g.set('numpy._core.multiarray.scalar', scalar);
  return g;
}

const MAX_STACK = 10_000_000;

/**
 * Unpickles `data` with the allow-list. `persistentLoad` resolves `BINPERSID` ids (storages).
 * @param where file name for messages.
 * @throws SkySenseError `E_UNSAFE_PICKLE` for any global outside the allow-list, `E_CHECKPOINT`
 * for malformed data.
 */
export function unpickle(data: Uint8Array, where: string, persistentLoad?: PersistentLoad): PyValue {
  return unpickleAt(data, 0, where, persistentLoad).value;
}

/** Unpickles the pickle that starts at byte `start`; returns its value and the byte after its STOP. */
export function unpickleAt(
  data: Uint8Array,
  start: number,
  where: string,
  persistentLoad: PersistentLoad = () => fail(where, 'unexpected persistent id'),
): { value: PyValue; end: number } {
  const globals = makeGlobals(where);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const stack: PyValue[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PyValue>();
  let p = start;
  const need = (n: number) => {
    if (!Number.isSafeInteger(n) || n < 0) fail(where, `invalid length ${n} at byte ${p}`);
    if (p + n > data.length)
      throw new SkySenseError(
        'E_CHECKPOINT',
        `${where}: corrupt pickle: needs ${n} bytes at ${p}, only ${data.length - p} left (truncated?)`,
        { details: { truncated: true } },
      );
  };
  const u8 = () => (need(1), data[p++]!);
  const u16 = () => (need(2), (p += 2), dv.getUint16(p - 2, true));
  const u32 = () => (need(4), (p += 4), dv.getUint32(p - 4, true));
  const i32 = () => (need(4), (p += 4), dv.getInt32(p - 4, true));
  const u64 = () => {
    need(8);
    const v = dv.getBigUint64(p, true);
    p += 8;
    if (v > BigInt(data.length)) fail(where, `length ${v} exceeds the data`);
    return Number(v);
  };
  const bytes = (n: number) => (need(n), (p += n), data.subarray(p - n, p));
  const line = () => {
    const end = data.indexOf(0x0a, p);
    if (end < 0) need(data.length - p + 1);
    const s = new TextDecoder('latin1').decode(data.subarray(p, end));
    p = end + 1;
    return s;
  };
  const utf8 = (n: number) => new TextDecoder('utf-8', { fatal: false }).decode(bytes(n));
  const push = (v: PyValue) => {
    if (stack.length >= MAX_STACK) fail(where, 'stack overflow');
    stack.push(v);
  };
  const pop = (): PyValue => (stack.length ? stack.pop()! : fail(where, `stack underflow at byte ${p}`));
  const top = (): PyValue => (stack.length ? stack[stack.length - 1]! : fail(where, `empty stack at byte ${p}`));
  const popMark = (): PyValue[] => {
    const m = marks.pop();
    if (m === undefined || m > stack.length) fail(where, `no MARK at byte ${p}`);
    return stack.splice(m!);
  };
  const resolve = (module: string, name: string): PyValue => {
    const v = globals.get(`${module}.${name}`);
    if (v === undefined) {
      throw new SkySenseError(
        'E_UNSAFE_PICKLE',
        `${where}: refusing to load global '${module}.${name}': only PyTorch tensor-rebuilding and plain-data globals are allowed; nothing was executed`,
      );
    }
    return v;
  };
  const call = (fn: PyValue, args: PyValue): PyValue => {
    if (!(fn instanceof PyCallable)) fail(where, `object ${describe(fn)} is not callable`);
    if (!(args instanceof PyTuple)) fail(where, 'call arguments are not a tuple');
    return (fn as PyCallable).call((args as PyTuple).items);
  };
  const long = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const setItems = (target: PyValue, items: PyValue[]) => {
    if (!(target instanceof PyDict)) fail(where, `SETITEM(S) on ${describe(target)}`);
    if (items.length % 2) fail(where, 'odd number of items for SETITEMS');
    for (let i = 0; i < items.length; i += 2) (target as PyDict).map.set(dictKey(items[i]!), items[i + 1]!);
  };
  const append = (target: PyValue, items: PyValue[]) => {
    if (!Array.isArray(target)) fail(where, `APPEND(S) on ${describe(target)}`);
    (target as PyValue[]).push(...items);
  };

  for (;;) {
    const at = p;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail(where, 'unsupported pickle protocol');
        break;
      case 0x95: // FRAME
        (bytes(0), u64());
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) fail(where, `STOP with ${stack.length} values on the stack`);
        return { value: stack[0]!, end: p };
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        push(top());
        break;
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x4a: // BININT
        push(i32());
        break;
      case 0x4b: // BININT1
        push(u8());
        break;
      case 0x4d: // BININT2
        push(u16());
        break;
      case 0x8a: // LONG1
        push(long(bytes(u8())));
        break;
      case 0x8b: {
        // LONG4
        const n = i32();
        if (n < 0 || n > 1024) fail(where, `LONG4 of ${n} bytes`);
        push(long(bytes(n)));
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        push(dv.getFloat64(p, false));
        p += 8;
        break;
      case 0x49: {
        // INT (text)
        const s = line();
        push(s === '01' ? true : s === '00' ? false : parseTextInt(s, where));
        break;
      }
      case 0x4c: // LONG (text)
        push(parseTextInt(line().replace(/L$/, ''), where));
        break;
      case 0x46: {
        // FLOAT (text)
        const f = Number(line());
        if (Number.isNaN(f)) fail(where, 'bad FLOAT');
        push(f);
        break;
      }
      case 0x58: // BINUNICODE
        push(utf8(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        push(utf8(u8()));
        break;
      case 0x8d: // BINUNICODE8
        push(utf8(u64()));
        break;
      case 0x54: // BINSTRING
        push(new TextDecoder('latin1').decode(bytes(i32())));
        break;
      case 0x55: // SHORT_BINSTRING
        push(new TextDecoder('latin1').decode(bytes(u8())));
        break;
      case 0x42: // BINBYTES
        push(bytes(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        push(bytes(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
        push(bytes(u64()).slice());
        break;
      case 0x56: // UNICODE (text, raw-unicode-escape; ASCII in practice)
        push(line());
        break;
      case 0x53: // STRING (text, quoted)
        push(line().replace(/^['"]|['"]$/g, ''));
        break;
      case 0x29: // EMPTY_TUPLE
        push(new PyTuple([]));
        break;
      case 0x74: // TUPLE
        push(new PyTuple(popMark()));
        break;
      case 0x85: // TUPLE1
        push(new PyTuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        push(new PyTuple([pop(), b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        push(new PyTuple([pop(), b, c]));
        break;
      }
      case 0x5d: // EMPTY_LIST
        push([]);
        break;
      case 0x6c: // LIST
        push(popMark());
        break;
      case 0x61: {
        // APPEND
        const v = pop();
        append(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        append(top(), items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        push(new PyDict());
        break;
      case 0x64: {
        // DICT
        const d = new PyDict();
        setItems(d, popMark());
        push(d);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x8f: // EMPTY_SET
        push([]);
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        append(top(), items);
        break;
      }
      case 0x91: // FROZENSET
        push(popMark());
        break;
      case 0x63: {
        // GLOBAL (text module\nname\n)
        const module = line();
        push(resolve(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail(where, 'STACK_GLOBAL needs two strings');
        push(resolve(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        push(call(pop(), args));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        push(call(pop(), args));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        build(top(), state);
        break;
      }
      case 0x51: // BINPERSID
        push(persistentLoad(pop()));
        break;
      case 0x50: // PERSID (text)
        push(persistentLoad(line()));
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x70: // PUT (text)
        memo.set(parseTextInt(line(), where) as number, top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
        push(memoGet(memo, u8(), where));
        break;
      case 0x6a: // LONG_BINGET
        push(memoGet(memo, u32(), where));
        break;
      case 0x67: // GET (text)
        push(memoGet(memo, parseTextInt(line(), where) as number, where));
        break;
      default:
        fail(where, `unsupported opcode 0x${op.toString(16).padStart(2, '0')} at byte ${at}`);
    }
  }

  function build(target: PyValue, state: PyValue): void {
    if (!(target instanceof PyDict)) return; // tensors, dtypes: state is irrelevant to the values
    const merge = (s: PyValue) => {
      if (s instanceof PyDict) for (const [k, v] of s.map) target.attributes[String(k)] = v;
    };
    if (state instanceof PyTuple) state.items.forEach(merge);
    else merge(state);
  }
}

function parseTextInt(s: string, where: string): number | bigint {
  if (!/^-?\d+$/.test(s.trim())) fail(where, `bad integer '${s.slice(0, 20)}'`);
  const v = BigInt(s.trim());
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function memoGet(memo: Map<number, PyValue>, i: number, where: string): PyValue {
  if (!memo.has(i)) fail(where, `memo ${i} is not defined`);
  return memo.get(i)!;
}

function dictKey(k: PyValue): unknown {
  return k instanceof PyTuple ? JSON.stringify(k.items.map((x) => (typeof x === 'bigint' ? x.toString() : x))) : k;
}

function describe(v: PyValue): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return `a ${v.constructor.name}`;
  return typeof v;
}

/** Turns plain Python data (dicts, lists, tuples, scalars) into JSON-safe values; tensors become a short description. */
export function toPlain(v: PyValue, depth = 0): unknown {
  if (depth > 32) return '…';
  if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') return v;
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Uint8Array) return new TextDecoder('latin1').decode(v);
  if (Array.isArray(v)) return v.map((x) => toPlain(x, depth + 1));
  if (v instanceof PyTuple) return v.items.map((x) => toPlain(x, depth + 1));
  if (v instanceof PyDict) return Object.fromEntries([...v.map].map(([k, x]) => [String(k), toPlain(x, depth + 1)]));
  if (v instanceof PyTensor) return `<tensor ${v.storage.dtype} [${v.shape.join(', ')}]>`;
  return `<${v.constructor.name}>`;
}
