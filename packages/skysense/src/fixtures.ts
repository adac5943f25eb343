import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  Module,
  ModuleDict,
  SkySenseError,
  loadCheckpoint,
  loadSafetensors,
  readJsonFile,
  saveSafetensors,
  sinkhornKnopp,
  runBoxOp,
  BOX_OPS,
  boxOpTolerance,
  tf,
  type LoadReport,
  type Tensor,
} from '@skysense/core-tensor';
import {
  FCNHead,
  UPerHead,
  detectionFixtureModel,
  detectionFixtureTolerance,
  resizeTo,
  runDetectionFixture,
  type DetectionFixtureConfig,
} from '@skysense/heads';
import { ContrastiveAlignment, DINOHead, DINOLoss, IBOTLoss } from '@skysense/losses';
import { SwinTransformerV2 } from '@skysense/swin';
import { VisionTransformer } from '@skysense/vit';
import { MultiModalFusion } from '@skysense/temporal-fusion';

/** A parity fixture folder's model and how to run it. */
interface FixtureRunner {
  kind: 'swin' | 'vit' | 'fusion' | 'uperhead' | 'fcnhead' | 'dino' | 'ibot' | 'itc' | 'sinkhorn' | 'op' | 'det';
  model: Module;
  /** Computes every output key of the fixture (intermediates included). */
  run(inputs: Map<string, Tensor>, expectedKeys: string[]): Map<string, Tensor>;
  /** Tolerance per output key (max abs error). */
  tolerance(key: string): number;
  /** Adapts the fixture's weights to the model's state dict (default: as stored). */
  weights?(w: Map<string, Tensor>): Map<string, Tensor>;
}

/** A parity fixture's `config.json` (fields differ by kind; `kwargs` are the reference's constructor arguments). */
export type FixtureConfig = Record<string, unknown> & { kwargs?: Record<string, unknown>; model?: string; module?: string };

/** Reads `<dir>/config.json`. */
export function readFixtureConfig(dir: string): FixtureConfig {
  const file = join(dir, 'config.json');
  if (!existsSync(file))
    throw new SkySenseError('E_IO', `${file}: no such file (a fixture folder holds config.json, weights/input/output.safetensors)`);
  return readJsonFile<FixtureConfig>(file, 'fixture config');
}

/** A runner of a fixture without weights (an op, Sinkhorn): an empty module, nothing to load. */
function weightless(kind: FixtureRunner['kind'], run: FixtureRunner['run'], tolerance: FixtureRunner['tolerance']): FixtureRunner {
  return { kind, model: new (class Weightless extends Module {})(), weights: () => new Map(), run, tolerance };
}

/** An op fixture (`{"op": "roi_align" | "nms" | …, "kwargs": {…}}`): the op's outputs under their fixed names. */
function opRunner(config: FixtureConfig): FixtureRunner {
  const op = String(config.op);
  return weightless(
    'op',
    (inputs) => runBoxOp(op, config.kwargs ?? {}, inputs),
    (key) => boxOpTolerance(op, key),
  );
}

function runnerFor(config: FixtureConfig, dir: string): FixtureRunner {
  if (typeof config.op === 'string') return opRunner(config);
  const kind = config.model ?? config.module ?? '';
  if (kind === 'SwinTransformerV2') {
    const model = SwinTransformerV2.fromConfig(config.kwargs ?? {});
    return {
      kind: 'swin',
      model,
      run: (inputs) =>
        new Map(
          model.forward(inputs.get((config.input_key as string) ?? 'input')!).map((t, i) => [`out${model.options.outIndices[i]}`, t]),
        ),
      tolerance: () => 1e-4,
    };
  }
  if (kind === 'VisionTransformer') {
    const model = VisionTransformer.fromConfig(config.kwargs ?? {});
    return {
      kind: 'vit',
      model,
      run: (inputs, keys) => {
        const x = inputs.get((config.input_key as string) ?? 'input')!;
        const { maps, cls } = model.forwardWithCls(x);
        const out = new Map<string, Tensor>();
        const at = (i: number) => model.options.outIndices[i];
        maps.forEach((m, i) => out.set(`out${at(i)}`, m));
        cls.forEach((c, i) => out.set(`out${at(i)}_cls`, c));
        if (keys.includes('pos_embed_resized')) out.set('pos_embed_resized', model.positionTable(...model.validateInput(x.shape)));
        return out;
      },
      tolerance: (k) => (k === 'pos_embed_resized' ? 1e-5 : 1e-4),
    };
  }
  if (/UPHead|TransformerEncoder/.test(kind)) {
    const fusion = MultiModalFusion.fromConfig(
      (config.head_kwargs ?? {}) as Record<string, number>,
      (config.fusion_kwargs ?? {}) as Record<string, unknown>,
    );
    return {
      kind: 'fusion',
      model: fusion,
      run: (inputs) => {
        const doy = inputs.has('doy') ? inputs.get('doy') : undefined;
        const dates = doy ? (doy.arraySync() as number[][]).map((row) => row.map(Number)) : undefined;
        const all = {
          hr: inputs.has('hr_feat') ? inputs.get('hr_feat') : undefined,
          s2: inputs.has('s2_feat') ? { features: inputs.get('s2_feat')!, dates } : undefined,
          s1: inputs.has('s1_feat') ? { features: inputs.get('s1_feat')! } : undefined,
        };
        const out = new Map<string, Tensor>();
        if (all.s2) out.set('s2_up', fusion.upsample('s2', all.s2.features));
        if (all.s1) out.set('s1_up', fusion.upsample('s1', all.s1.features));
        const { sequence, mask } = fusion.buildSequence(all);
        out.set('fusion_input', sequence);
        out.set('fused_tokens', fusion.fusion.forward(sequence, mask ?? undefined));
        out.set('fused', fusion.forward(all));
        mask?.dispose();
        return out;
      },
      tolerance: (k) => (['s2_up', 's1_up', 'fusion_input'].includes(k) ? 1e-5 : 1e-4),
    };
  }
  if (kind === 'FasterRCNN') return detectionRunner(config as unknown as DetectionFixtureConfig, dir);
  const head = headRunner(config, kind);
  if (head) return head;
  const loss = lossRunner(config, kind || String(config.function ?? config.modules ?? ''));
  if (loss) return loss;
  throw new SkySenseError(
    'E_UNSUPPORTED',
    `${dir}: fixture kind '${kind}' is not one the CLI runs (Swin V2, ViT, up-head/fusion, UPerHead, FCNHead, FasterRCNN, DINO, iBOT, ITC, Sinkhorn, or an op: ${BOX_OPS.join(', ')})`,
  );
}

/**
 * A Faster R-CNN fixture (mmdet's FPN, RPN and RoI head on given backbone features): every
 * intermediate, the detections and the losses with the reference's samples injected. Where the
 * folder has the reference outputs, the RoI stage runs on its proposals, so it is compared on the same boxes.
 */
function detectionRunner(config: DetectionFixtureConfig, dir: string): FixtureRunner {
  const model = detectionFixtureModel(config);
  const file = join(dir, 'output.safetensors');
  return {
    kind: 'det',
    model,
    run: (inputs) => {
      const reference = existsSync(file) ? loadSafetensors(file) : undefined;
      try {
        return runDetectionFixture(model, config, inputs, reference);
      } finally {
        tf.dispose([...(reference?.values() ?? [])]);
      }
    },
    tolerance: detectionFixtureTolerance,
  };
}

const headInputs = (inputs: Map<string, Tensor>) =>
  [...inputs.keys()]
    .filter((k) => /^in\d+$/.test(k))
    .sort((a, b) => Number(a.slice(2)) - Number(b.slice(2)))
    .map((k) => inputs.get(k)!);

/** Runners of the mmseg decode-head fixtures (`uperhead-*`: one UPerHead; `fcnhead-*`: FCNHead variants under their tags). */
function headRunner(config: FixtureConfig, kind: string): FixtureRunner | null {
  const tol = (config.tolerance ?? {}) as Record<string, number>;
  const tolerance = (k: string) => tol[k] ?? tol[k.split('.').pop()!] ?? 1e-4;
  if (kind === 'UPerHead') {
    const head = UPerHead.fromConfig(config.kwargs ?? {});
    const size = config.resize_to as [number, number] | undefined;
    return {
      kind: 'uperhead',
      model: head,
      tolerance,
      run: (inputs) => {
        const xs = headInputs(inputs);
        const logits = head.forward(xs);
        const out = new Map<string, Tensor>([
          ['psp_out', head.pspForward(xs.at(-1)!)],
          ['feats', head.forwardFeature(xs)],
          ['logits', logits],
        ]);
        if (size)
          out.set(
            'logits_resized',
            tf.tidy(() => tf.clone(resizeTo(logits, size, head.alignCorners))),
          );
        return out;
      },
    };
  }
  if (kind.startsWith('FCNHead')) {
    const variants = (config.variants ?? { '': { kwargs: config.kwargs ?? {} } }) as Record<string, { kwargs: Record<string, unknown> }>;
    const heads = new ModuleDict(Object.entries(variants).map(([tag, v]): [string, FCNHead] => [tag, FCNHead.fromConfig(v.kwargs)]));
    return {
      kind: 'fcnhead',
      model: heads,
      tolerance,
      run: (inputs) => {
        const xs = headInputs(inputs);
        const out = new Map<string, Tensor>();
        for (const [tag, head] of heads.entries()) {
          const key = (name: string) => (tag ? `${tag}.${name}` : name);
          out.set(key('feats'), head.forwardFeature(xs));
          out.set(key('logits'), head.forward(xs));
        }
        return out;
      },
    };
  }
  return null;
}

/** Stored scalars have shape [1] (takes ownership of `t`). */
function asStored(t: Tensor): Tensor {
  const out = tf.reshape(t, [1]);
  t.dispose();
  return out;
}

/** Runners of the pre-training loss fixtures (`dino-loss-*`, `ibot-patch-loss-*`, `itc-loss-*`, `sinkhorn-*`); tolerances from the fixture. */
function lossRunner(config: FixtureConfig, kind: string): FixtureRunner | null {
  const tol = (config.tolerance ?? {}) as Record<string, number>;
  const tolerance = (k: string) => tol[k] ?? 1e-5;
  if (kind.includes('DINOHead')) {
    const h = config.head_kwargs as Record<string, number & boolean>;
    const l = config.loss_kwargs as Record<string, number>;
    const steps = config.steps as { epoch: number }[];
    const head = new DINOHead({
      inDim: h.in_dim,
      outDim: h.out_dim,
      nlayers: h.nlayers,
      hiddenDim: h.hidden_dim,
      bottleneckDim: h.bottleneck_dim,
      normLastLayer: h.norm_last_layer,
    });
    return {
      kind: 'dino',
      model: head,
      tolerance,
      run: (inputs) => {
        const loss = new DINOLoss({
          outDim: l.out_dim!,
          ncrops: l.ncrops!,
          warmupTeacherTemp: l.warmup_teacher_temp,
          teacherTemp: l.teacher_temp,
          warmupTeacherTempEpochs: l.warmup_teacher_temp_epochs,
          nepochs: l.nepochs!,
          studentTemp: l.student_temp,
          centerMomentum: l.center_momentum,
        });
        const out = new Map<string, Tensor>([
          ['student_output', head.forward(inputs.get('head_in')!)],
          ['teacher_output', head.forward(inputs.get('teacher_in')!)],
        ]);
        loss.center.assign(inputs.get('center_init')!);
        steps.forEach((st, i) => {
          out.set(`loss_step${i + 1}`, asStored(loss.forward(out.get('student_output')!, out.get('teacher_output')!, st.epoch)));
          out.set(`center_step${i + 1}`, tf.clone(loss.center.value));
        });
        out.set('teacher_temp_schedule', tf.tensor1d(loss.schedule));
        loss.dispose();
        return out;
      },
    };
  }
  if (kind === 'iBOTLoss') {
    const k = config.kwargs as Record<string, number>;
    const loss = new IBOTLoss({
      outDim: k.out_dim!,
      patchOutDim: k.patch_out_dim!,
      ngcrops: k.ngcrops,
      nlcrops: k.nlcrops,
      warmupTeacherTemp: k.warmup_teacher_temp!,
      teacherTemp: k.teacher_temp!,
      warmupTeacherTemp2: k.warmup_teacher_temp2!,
      teacherTemp2: k.teacher_temp2!,
      warmupTeacherTempEpochs: k.warmup_teacher_temp_epochs,
      nepochs: k.nepochs!,
      studentTemp: k.student_temp,
      centerMomentum: k.center_momentum,
      centerMomentum2: k.center_momentum2,
      lambda1: k.lambda1,
      lambda2: k.lambda2,
      mimStartEpoch: k.mim_start_epoch,
    });
    return {
      kind: 'ibot',
      model: loss,
      tolerance,
      weights: () => new Map([...loss.stateDict()].map(([key, t]) => [key, tf.zerosLike(t)])),
      run: (inputs) => {
        loss.center.assign(inputs.get('center_init')!);
        loss.center2.assign(inputs.get('center2_init')!);
        const masks = tf.tidy(() => tf.unstack(tf.cast(inputs.get('student_mask')!, 'bool')));
        const r = loss.forward(
          { cls: inputs.get('student_cls')!, patch: inputs.get('student_patch')! },
          { cls: inputs.get('teacher_cls')!, patch: inputs.get('teacher_patch')! },
          inputs.has('student_local_cls') ? inputs.get('student_local_cls')! : null,
          masks,
          config.epoch as number,
        );
        tf.dispose(masks);
        return new Map<string, Tensor>([
          ['loss_cls', asStored(r.cls)],
          ['loss_patch', asStored(r.patch)],
          ['loss', asStored(r.loss)],
          ['center', tf.clone(loss.center.value)],
          ['center2', tf.clone(loss.center2.value)],
          ['teacher_temp_schedule', tf.tensor1d(loss.schedule)],
          ['teacher_temp2_schedule', tf.tensor1d(loss.schedule2)],
        ]);
      },
    };
  }
  if (kind.startsWith('ALBEF')) {
    const hp = config.hyper_parameters as Record<string, number>;
    const align = new ContrastiveAlignment({ widthA: hp.vision_width!, widthB: hp.text_width!, embedDim: hp.embed_dim, temp: hp.temp });
    return {
      kind: 'itc',
      model: align,
      tolerance,
      weights: (w) => new Map([...w].map(([key, t]) => [key, key === 'temp' ? tf.reshape(t, []) : t])),
      run: (inputs) => {
        const r = align.forward(inputs.get('image_embeds')!, inputs.get('text_embeds')!);
        return new Map<string, Tensor>([
          ['image_feat', r.featA],
          ['text_feat', r.featB],
          ['sim_i2t', r.simAB],
          ['sim_t2i', r.simBA],
          ['loss_i2t', asStored(r.lossAB)],
          ['loss_t2i', asStored(r.lossBA)],
          ['loss_ita', asStored(r.loss)],
        ]);
      },
    };
  }
  if (kind === 'distributed_sinkhorn') {
    const hp = config.hyper_parameters as Record<string, number>;
    return weightless(
      'sinkhorn',
      (inputs) => {
        const q = sinkhornKnopp(inputs.get('scores')!, { epsilon: hp.epsilon, iterations: hp.sinkhorn_iterations });
        return new Map<string, Tensor>([
          ['Q', q],
          ['Q_row_sums', tf.sum(q, 1)],
          ['Q_col_sums', tf.sum(q, 0)],
        ]);
      },
      tolerance,
    );
  }
  return null;
}

/** Options of {@link runFixture}. */
export interface RunFixtureOptions {
  /** Replaces the folder's weights (`.safetensors` or `.pth`). */
  weights?: string;
  /** Prefix to strip from the weights' keys (e.g. `backbone.`). */
  stripPrefix?: string;
  /** Where to print the load report when `weights` is given. */
  log?: (text: string) => void;
}

/** Result of a fixture run: every output of the fixture, and per output the error against it. */
export interface FixtureResult {
  kind: string;
  outputs: Map<string, Tensor>;
  report: LoadReport;
  errors: { key: string; shape: number[]; maxAbs: number; relative: number; tolerance: number; pass: boolean }[];
}

/** The output names a fixture defines: the keys of `config.json`'s `outputs`. */
function outputNames(config: FixtureConfig, dir: string): string[] | null {
  if (typeof config.op === 'string') return null; // every output the op gives
  const outputs = config.outputs;
  if (!outputs || typeof outputs !== 'object' || Array.isArray(outputs))
    throw new SkySenseError('E_FORMAT', `${dir}/config.json: no "outputs" object naming the fixture's outputs`);
  return Object.keys(outputs);
}

/** A fixture's inputs: `get` of a tensor the file lacks names the file, the key and what it has (instead of passing `undefined` on). */
class FixtureInputs extends Map<string, Tensor> {
  constructor(readonly file: string) {
    super(loadSafetensors(file));
  }
  override get(key: string): Tensor {
    const t = super.get(key);
    if (!t)
      throw new SkySenseError('E_DATA', `${this.file}: no input tensor '${key}' (the file has ${[...this.keys()].join(', ') || 'none'})`);
    return t;
  }
}

/** Builds a fixture's model, loads its weights (or `options.weights`), runs it on the inputs and returns the named outputs. */
function computeFixture(
  dir: string,
  config: FixtureConfig,
  names: string[] | null,
  options: RunFixtureOptions,
): { kind: string; outputs: Map<string, Tensor>; report: LoadReport; tolerance: (key: string) => number } {
  const runner = runnerFor(config, dir);
  const inputs = new FixtureInputs(join(dir, 'input.safetensors'));
  try {
    runner.model.eval();
    const report = options.weights
      ? loadCheckpoint(runner.model, options.weights, { prefix: options.stripPrefix, log: options.log ?? false })
      : loadFixtureWeights(dir, runner);
    const outputs = runner.run(inputs, names ?? []);
    if (!names) return { kind: runner.kind, outputs, report, tolerance: runner.tolerance };
    const missing = names.filter((k) => !outputs.has(k));
    if (missing.length) {
      tf.dispose([...outputs.values()]);
      throw new SkySenseError('E_UNSUPPORTED', `${dir}: cannot compute output(s) ${missing.join(', ')}`);
    }
    for (const k of [...outputs.keys()].filter((k) => !names.includes(k))) {
      outputs.get(k)!.dispose();
      outputs.delete(k);
    }
    return { kind: runner.kind, outputs, report, tolerance: runner.tolerance };
  } finally {
    tf.dispose([...inputs.values()]);
    runner.model.dispose();
  }
}

/**
 * Builds the model a fixture folder describes, loads its weights (or `options.weights`), runs it on
 * the folder's inputs and compares every output with the folder's `output.safetensors`.
 */
export function runFixture(dir: string, options: RunFixtureOptions = {}): FixtureResult {
  const config = readFixtureConfig(dir);
  const file = join(dir, 'output.safetensors');
  if (!existsSync(file))
    throw new SkySenseError('E_IO', `${file}: no such file (verify compares with it; 'skysense forward' runs a fixture without it)`);
  const expected = loadSafetensors(file);
  try {
    if (expected.size === 0) throw new SkySenseError('E_FORMAT', `${file}: holds no outputs to compare with`);
    const { kind, outputs, report, tolerance: tol } = computeFixture(dir, config, [...expected.keys()], options);
    const errors = [...expected.keys()].map((key) => {
      const got = outputs.get(key)!;
      const want = expected.get(key)!;
      if (got.shape.join() !== want.shape.join())
        throw new SkySenseError('E_SHAPE', `${dir}: output ${key} has shape [${got.shape}], the fixture [${want.shape}]`);
      const [maxAbs, scale] = tf.tidy(() => [tf.max(tf.abs(tf.sub(got, want))).dataSync()[0]!, tf.max(tf.abs(want)).dataSync()[0]!]);
      const tolerance = tol(key);
      return { key, shape: [...want.shape], maxAbs: maxAbs!, relative: maxAbs! / (scale! || 1), tolerance, pass: maxAbs! <= tolerance };
    });
    return { kind, outputs, report, errors };
  } finally {
    tf.dispose([...expected.values()]);
  }
}

/** Loads the folder's `weights.safetensors` (adapted by the runner; none for weightless fixtures) and frees the file's tensors. */
function loadFixtureWeights(dir: string, runner: FixtureRunner): LoadReport {
  const file = join(dir, 'weights.safetensors');
  const stored = existsSync(file) ? loadSafetensors(file) : new Map<string, Tensor>();
  const adapted = runner.weights ? runner.weights(stored) : stored;
  try {
    return runner.model.loadStateDict(adapted, { ignore: [/relative_(position_index|coords_table)$/] });
  } finally {
    tf.dispose([...new Set([...stored.values(), ...adapted.values()])]);
  }
}

/**
 * Runs a fixture and writes every output under the names its `config.json` lists (atomically); the
 * folder needs no `output.safetensors`.
 */
export function forwardFixture(
  dir: string,
  output: string,
  options: RunFixtureOptions = {},
): { kind: string; outputs: Map<string, Tensor>; report: LoadReport } {
  const config = readFixtureConfig(dir);
  const { kind, outputs, report } = computeFixture(dir, config, outputNames(config, dir), options);
  saveSafetensors(output, outputs);
  return { kind, outputs, report };
}
