import {
  Module,
  SkySenseError,
  assertInt,
  formatShape,
  l2Normalize,
  matMul,
  sinkhornKnopp,
  stopGradient,
  tf,
  type Tensor,
} from '@skysense/core-tensor';
import { DINOHead, SelfDistillation, type DINOHeadOptions, type SelfDistillationOptions } from './dino';

/** `[B, D, h, w]` → `[B·h·w, D]`: one row per location (SkySense's pixel level, Eq. 5). */
export function pixelTokens(map: Tensor): Tensor {
  checkMap('map', map);
  const [b, d, h, w] = map.shape as [number, number, number, number];
  return tf.tidy(() => tf.reshape(tf.transpose(map, [0, 2, 3, 1]), [b * h * w, d]));
}

/** `[B, D, h, w]` → `[B, D]`: the global average per image (image level, Eq. 7). */
export function imageTokens(map: Tensor): Tensor {
  checkMap('map', map);
  return tf.tidy(() => tf.mean(map, [2, 3]));
}

/** Options of {@link objectTokens}. */
export interface ObjectTokenOptions {
  /** Clusters per image N_C (at most h·w are used: a smaller map gets one cluster per location). Default 8. */
  clusters?: number;
  /** Rounds of assignment → centre refinement after the initial centres. Default 3. */
  refinements?: number;
  /** Sinkhorn ε. Default 0.05. */
  epsilon?: number;
  /** Sinkhorn iterations. Default 3. */
  iterations?: number;
}

/**
 * Object level (Eq. 6): per image, clusters the **teacher's** pixel features into N_C clusters with
 * Sinkhorn-Knopp against cosine similarity to N_C centres (initialised by deterministic farthest-point selection,
 * refined `refinements` times as the assignment-weighted mean), then pools the teacher and the student
 * maps with the same assignment weights. Both maps must already cover the same ground locations.
 * @returns `{ teacher, student }`, each `[B·N_C, D]` (rows image-major); the assignment carries no gradient.
 */
export function objectTokens(
  teacherMap: Tensor,
  studentMap: Tensor,
  options: ObjectTokenOptions = {},
): { teacher: Tensor; student: Tensor } {
  checkMap('teacherMap', teacherMap);
  checkMap('studentMap', studentMap);
  if (formatShape(teacherMap.shape) !== formatShape(studentMap.shape)) {
    throw new SkySenseError(
      'E_SHAPE',
      `objectTokens: teacher and student maps must be aligned to the same shape, got ${formatShape(teacherMap.shape)} and ${formatShape(studentMap.shape)}`,
    );
  }
  const [b, d, h, w] = teacherMap.shape as [number, number, number, number];
  const n = h * w;
  const k = Math.min(assertInt('clusters', options.clusters ?? 8, 1), n);
  const rounds = assertInt('refinements', options.refinements ?? 3, 0);
  const sk = { epsilon: options.epsilon, iterations: options.iterations };
  return tf.tidy(() => {
    const perImage = (m: Tensor) => tf.unstack(tf.reshape(tf.transpose(m, [0, 2, 3, 1]), [b, n, d]));
    const teachers = perImage(stopGradient(teacherMap));
    const students = perImage(studentMap);
    const pooledT: Tensor[] = [];
    const pooledS: Tensor[] = [];
    teachers.forEach((x, i) => {
      const xn = l2Normalize(x);
      let centres = farthestPoints(xn, k);
      let q = sinkhornKnopp(matMul(xn, centres, false, true), sk);
      for (let r = 0; r < rounds; r++) {
        centres = l2Normalize(weightedMean(q, x));
        q = sinkhornKnopp(matMul(xn, centres, false, true), sk);
      }
      pooledT.push(weightedMean(q, x));
      pooledS.push(weightedMean(q, students[i]!));
    });
    return { teacher: tf.concat(pooledT, 0), student: tf.concat(pooledS, 0) };
  });
}

/**
 * Deterministic farthest-point initialisation on unit rows `[N, D]`: the first row, then repeatedly the
 * row least similar to every centre chosen so far. @returns `[k, D]`.
 */
function farthestPoints(xn: Tensor, k: number): Tensor {
  const picked = [0];
  let best = matMul(xn, tf.slice(xn, [0, 0], [1, -1]), false, true);
  while (picked.length < k) {
    const next = tf.argMin(tf.reshape(best, [-1])).dataSync()[0]!;
    picked.push(next);
    best = tf.maximum(best, matMul(xn, tf.slice(xn, [next, 0], [1, -1]), false, true));
  }
  return tf.gather(xn, tf.tensor1d(picked, 'int32'));
}

/** Per cluster, the assignment-weighted mean of the rows: `[N, K]`, `[N, D]` → `[K, D]`. */
function weightedMean(q: Tensor, x: Tensor): Tensor {
  return tf.div(matMul(q, x, true, false), tf.maximum(tf.reshape(tf.sum(q, 0), [-1, 1]), 1e-12));
}

function checkMap(name: string, map: Tensor): void {
  if (map.rank !== 4) throw new SkySenseError('E_SHAPE', `${name}: expected a feature map [B, D, h, w], got ${formatShape(map.shape)}`);
}

/** Options of {@link FGCL}. Heads follow DINO / iBOT sizes, the distillation terms DINO's defaults with τ_t 0.04 → 0.07. */
export interface FGCLOptions {
  /** Feature width D of the maps. */
  inDim: number;
  /** Output width of the image/object head. Default 65,536. */
  outDim?: number;
  /** Output width of the pixel head. Default 8,192. */
  pixelOutDim?: number;
  /** Head shape (`nlayers`, `hiddenDim`, `bottleneckDim`, `normLastLayer`) shared by both heads. */
  head?: Omit<DINOHeadOptions, 'inDim' | 'outDim'>;
  /** Temperatures, schedule and center momentum of the three terms (`nepochs` required). */
  distillation: Omit<SelfDistillationOptions, 'outDim'>;
  /** Object-level clustering. */
  objects?: ObjectTokenOptions;
}

/** The three terms of L_FGCL and their sum. */
export interface FGCLValues {
  pixel: tf.Scalar;
  object: tf.Scalar;
  image: tf.Scalar;
  total: tf.Scalar;
}

/**
 * SkySense's Fine-Grained Contrastive Learning for one feature source (Eq. 8): L_pix + L_obj + L_img,
 * each a {@link SelfDistillation} term between the student's and the teacher's projections. Keys:
 * `pixel_head.*`, `head.*` (image and object share it), `pixel.center`, `object.center`, `image.center`.
 * The teacher is another `FGCL` (the EMA of this one); only its heads are used.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { FGCL } from '@skysense/losses';
 * await initBackend();
 * // L_FGCL for one feature source: pixel, object and image terms between student and EMA teacher
 * const opts = { inDim: 32, outDim: 64, pixelOutDim: 32, head: { hiddenDim: 48, bottleneckDim: 16 }, distillation: { nepochs: 10 } };
 * const [student, teacher] = [new FGCL(opts), new FGCL(opts)];
 * const map = tf.randomNormal([2, 32, 4, 4]);
 * const { pixel, object, image, total } = student.forward(map, map, teacher, 0);
 * console.log(total.dataSync()[0], pixel.dataSync()[0], object.dataSync()[0], image.dataSync()[0]);
 * ```
 */
export class FGCL extends Module {
  readonly pixelHead: DINOHead;
  readonly head: DINOHead;
  readonly pixel: SelfDistillation;
  readonly object: SelfDistillation;
  readonly image: SelfDistillation;

  constructor(readonly o: FGCLOptions) {
    super();
    const outDim = o.outDim ?? 65536;
    const pixelOutDim = o.pixelOutDim ?? 8192;
    const dist = { warmupTeacherTemp: 0.04, teacherTemp: 0.07, ...o.distillation };
    this.pixelHead = this.registerModule('pixel_head', new DINOHead({ ...o.head, inDim: o.inDim, outDim: pixelOutDim }));
    this.head = this.registerModule('head', new DINOHead({ ...o.head, inDim: o.inDim, outDim }));
    this.pixel = this.registerModule('pixel', new SelfDistillation({ ...dist, outDim: pixelOutDim }));
    this.object = this.registerModule('object', new SelfDistillation({ ...dist, outDim }));
    this.image = this.registerModule('image', new SelfDistillation({ ...dist, outDim }));
  }

  /**
   * @param student `[B, D, h, w]` the student's features (time series: frames folded into B).
   * @param teacherMap the teacher's features of the same ground locations, same shape.
   * @param teacher the teacher's `FGCL` (its heads project `teacherMap`; no gradient).
   */
  forward(student: Tensor, teacherMap: Tensor, teacher: FGCL, epoch: number): FGCLValues {
    if (student.rank !== 4 || student.shape[1] !== this.o.inDim)
      throw new SkySenseError('E_SHAPE', `FGCL student: expected [B, ${this.o.inDim}, h, w], got ${formatShape(student.shape)}`);
    const [pixel, object, image] = tf.tidy(() => {
      const objects = objectTokens(teacherMap, student, this.o.objects);
      const terms: [SelfDistillation, DINOHead, DINOHead, Tensor, Tensor][] = [
        [this.pixel, this.pixelHead, teacher.pixelHead, pixelTokens(student), pixelTokens(teacherMap)],
        [this.object, this.head, teacher.head, objects.student, objects.teacher],
        [this.image, this.head, teacher.head, imageTokens(student), imageTokens(teacherMap)],
      ];
      return terms.map(([term, sHead, tHead, s, t]) => term.forward(sHead.forward(s), stopGradient(tHead.forward(t)), epoch));
    }) as [tf.Scalar, tf.Scalar, tf.Scalar];
    return { pixel, object, image, total: tf.tidy(() => tf.addN([pixel, object, image]) as tf.Scalar) };
  }
}

/** Options of {@link MGCL}: one {@link FGCL} per feature source, e.g. `{ hr: …, s2: …, s1: …, fusion: … }`. */
export type MGCLOptions = Record<string, FGCLOptions>;

/** Per-source L_FGCL values and their sum L_MGCL. */
export interface MGCLValues {
  sources: Record<string, FGCLValues>;
  total: tf.Scalar;
}

/**
 * SkySense's Multi-Granularity Contrastive Learning (Eq. 9): the sum of {@link FGCL} over the feature
 * sources (HR, S2, S1 and the fused feature). Keys `<source>.pixel_head.*`, … .
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { MGCL } from '@skysense/losses';
 * await initBackend();
 * // L_MGCL: one FGCL per source (HR, S2, S1, fusion), summed
 * const opts = { inDim: 32, outDim: 64, pixelOutDim: 32, head: { hiddenDim: 48, bottleneckDim: 16 }, distillation: { nepochs: 10 } };
 * const [student, teacher] = [new MGCL({ hr: opts, fusion: opts }), new MGCL({ hr: opts, fusion: opts })];
 * const maps = { hr: tf.randomNormal([2, 32, 4, 4]), fusion: tf.randomNormal([2, 32, 4, 4]) };
 * console.log(student.forward(maps, maps, teacher, 0).total.dataSync()[0]);
 * ```
 */
export class MGCL extends Module {
  readonly sources = new Map<string, FGCL>();

  constructor(options: MGCLOptions) {
    super();
    for (const [name, o] of Object.entries(options)) this.sources.set(name, this.registerModule(name, new FGCL(o)));
    if (this.sources.size === 0) throw new SkySenseError('E_ARG', 'MGCL options: expected at least one feature source, got none');
  }

  /**
   * @param student per source, the student's `[B, D, h, w]` map; @param teacherMaps the teacher's maps;
   * @param teacher the teacher's `MGCL` (EMA copy). Every configured source must be given.
   */
  forward(student: Record<string, Tensor>, teacherMaps: Record<string, Tensor>, teacher: MGCL, epoch: number): MGCLValues {
    const sources: Record<string, FGCLValues> = {};
    for (const [name, fgcl] of this.sources) {
      const s = student[name];
      const t = teacherMaps[name];
      const tm = teacher.sources.get(name);
      if (!s || !t || !tm)
        throw new SkySenseError(
          'E_ARG',
          `MGCL: source '${name}' needs a student map, a teacher map and a teacher module (have ${[s && 'student', t && 'teacher map', tm && 'teacher module'].filter(Boolean).join(', ') || 'none'})`,
        );
      sources[name] = fgcl.forward(s, t, tm, epoch);
    }
    const total = tf.tidy(() => tf.addN(Object.values(sources).map((v) => v.total)) as tf.Scalar);
    return { sources, total };
  }
}

/** Disposes every tensor of an {@link MGCLValues}. */
export function disposeMGCLValues(v: MGCLValues): void {
  tf.dispose([v.total, ...Object.values(v.sources).flatMap((f) => [f.pixel, f.object, f.image, f.total])]);
}
