import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SkySenseError, loadCheckpoint, loadSafetensors, saveSafetensors, tf, type LoadReport, type Module, type Tensor } from '@skysense/core-tensor';
import { SwinTransformerV2 } from '@skysense/swin';
import { VisionTransformer } from '@skysense/vit';
import { MultiModalFusion } from '@skysense/temporal-fusion';

/** A parity fixture folder's model and how to run it. */
interface FixtureRunner {
  kind: 'swin' | 'vit' | 'fusion';
  model: Module;
  /** Computes every output key of the fixture (intermediates included). */
  run(inputs: Map<string, Tensor>, expectedKeys: string[]): Map<string, Tensor>;
  /** Tolerance per output key (max abs error). */
  tolerance(key: string): number;
}

/** A parity fixture's `config.json` (fields differ by kind; `kwargs` are the reference's constructor arguments). */
export type FixtureConfig = Record<string, unknown> & { kwargs?: Record<string, unknown>; model?: string; module?: string };

/** Reads `<dir>/config.json`. */
export function readFixtureConfig(dir: string): FixtureConfig {
  const file = join(dir, 'config.json');
  if (!existsSync(file)) throw new SkySenseError('E_IO', `${file}: no such file (a fixture folder holds config.json, weights/input/output.safetensors)`);
  return JSON.parse(readFileSync(file, 'utf8')) as FixtureConfig;
}

function runnerFor(config: FixtureConfig, dir: string): FixtureRunner {
  const kind = config.model ?? config.module ?? '';
  if (kind === 'SwinTransformerV2') {
    const model = SwinTransformerV2.fromConfig(config.kwargs ?? {});
    return {
      kind: 'swin',
      model,
      run: (inputs) => new Map(model.forward(inputs.get((config.input_key as string) ?? 'input')!).map((t, i) => [`out${i}`, t])),
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
        maps.forEach((m, i) => out.set(`out${i}`, m));
        cls.forEach((c, i) => out.set(`out${i}_cls`, c));
        if (keys.includes('pos_embed_resized')) out.set('pos_embed_resized', model.positionTable(...model.validateInput(x.shape)));
        return out;
      },
      tolerance: (k) => (k === 'pos_embed_resized' ? 1e-5 : 1e-4),
    };
  }
  if (/UPHead|TransformerEncoder/.test(kind)) {
    const head = (config.head_kwargs ?? {}) as { in_dim?: number; out_dim?: number; up_scale?: number };
    const fusionKwargs = (config.fusion_kwargs ?? {}) as Record<string, unknown>;
    const fusion = new MultiModalFusion({ vitDims: head.in_dim, tokenDims: head.out_dim, upScale: head.up_scale, fusion: fusionOptions(fusionKwargs) });
    return {
      kind: 'fusion',
      model: fusion,
      run: (inputs) => {
        const doy = inputs.get('doy');
        const dates = doy ? (doy.arraySync() as number[][]).map((row) => row.map(Number)) : undefined;
        const all = { hr: inputs.get('hr_feat'), s2: inputs.has('s2_feat') ? { features: inputs.get('s2_feat')!, dates } : undefined, s1: inputs.has('s1_feat') ? { features: inputs.get('s1_feat')! } : undefined };
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
  throw new SkySenseError('E_UNSUPPORTED', `${dir}: fixture kind '${kind}' is not one the CLI runs (Swin V2, ViT, up-head/fusion)`);
}

function fusionOptions(k: Record<string, unknown>) {
  const { embed_dims, num_layers, num_heads, mlp_ratio, qkv_bias, drop_path_rate, drop_rate, attn_drop_rate, norm_cfg } = k as Record<string, never>;
  return {
    embedDims: embed_dims,
    numLayers: num_layers,
    numHeads: num_heads,
    mlpRatio: mlp_ratio,
    qkvBias: qkv_bias,
    dropPathRate: drop_path_rate,
    dropRate: drop_rate,
    attnDropRate: attn_drop_rate,
    layerNormEps: (norm_cfg as { eps?: number } | undefined)?.eps,
  };
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

/**
 * Builds the model a fixture folder describes, loads its weights (or `options.weights`), runs it on
 * the folder's inputs and compares every output with the folder's `output.safetensors`.
 */
export function runFixture(dir: string, options: RunFixtureOptions = {}): FixtureResult {
  const config = readFixtureConfig(dir);
  const runner = runnerFor(config, dir);
  const inputs = loadSafetensors(join(dir, 'input.safetensors'));
  const expected = loadSafetensors(join(dir, 'output.safetensors'));
  try {
    runner.model.eval();
    const report = options.weights
      ? loadCheckpoint(runner.model, options.weights, { prefix: options.stripPrefix, log: options.log ?? false })
      : runner.model.loadStateDict(loadSafetensors(join(dir, 'weights.safetensors')), { ignore: [/relative_(position_index|coords_table)$/] });
    const outputs = runner.run(inputs, [...expected.keys()]);
    const missing = [...expected.keys()].filter((k) => !outputs.has(k));
    if (missing.length) throw new SkySenseError('E_UNSUPPORTED', `${dir}: cannot compute output(s) ${missing.join(', ')}`);
    const errors = [...expected.keys()].map((key) => {
      const got = outputs.get(key)!;
      const want = expected.get(key)!;
      if (got.shape.join() !== want.shape.join()) throw new SkySenseError('E_SHAPE', `${dir}: output ${key} has shape [${got.shape}], the fixture [${want.shape}]`);
      const [maxAbs, scale] = tf.tidy(() => [tf.max(tf.abs(tf.sub(got, want))).dataSync()[0]!, tf.max(tf.abs(want)).dataSync()[0]!]);
      const tolerance = runner.tolerance(key);
      return { key, shape: [...want.shape], maxAbs: maxAbs!, relative: maxAbs! / (scale! || 1), tolerance, pass: maxAbs! <= tolerance };
    });
    return { kind: runner.kind, outputs, report, errors };
  } finally {
    tf.dispose([...inputs.values(), ...expected.values()]);
    runner.model.dispose();
  }
}

/** Runs a fixture and writes every output under the fixture's key names (atomically). */
export function forwardFixture(dir: string, output: string, options: RunFixtureOptions = {}): FixtureResult {
  const result = runFixture(dir, options);
  saveSafetensors(output, result.outputs);
  return result;
}
