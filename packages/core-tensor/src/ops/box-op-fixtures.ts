import { tf, type Tensor } from '../tf';
import { SkySenseError } from '../errors';
import { AnchorGenerator } from './anchors';
import { batchedNms, bbox2delta, boxIou, delta2bbox, nms } from './boxes';
import { roiAlign } from './roi-align';

/** The ops an op fixture's `config.json` may name (`{"op": …, "kwargs": {…}}`). */
export const BOX_OPS = ['roi_align', 'nms', 'batched_nms', 'box_iou', 'bbox2delta', 'delta2bbox', 'anchors'] as const;

/** One of {@link BOX_OPS}. */
export type BoxOpName = (typeof BOX_OPS)[number];

type Kwargs = Record<string, unknown>;

const num = (kw: Kwargs, key: string, what: string): number => {
  const v = kw[key];
  if (typeof v !== 'number') throw new SkySenseError('E_FORMAT', `${what} kwargs.${key}: expected a number, got ${JSON.stringify(v)}`);
  return v;
};

const list = (kw: Kwargs, key: string): number[] | undefined => (kw[key] == null ? undefined : (kw[key] as number[]));

/** RoIAlign's output, and with a `grad_output` input the gradient of Σ output · grad_output with respect to the input. */
function runRoiAlign(kw: Kwargs, get: (k: string) => Tensor, has: (k: string) => boolean): Map<string, Tensor> {
  const options = {
    outputSize: kw.output_size as [number, number],
    spatialScale: num(kw, 'spatial_scale', 'roi_align'),
    samplingRatio: num(kw, 'sampling_ratio', 'roi_align'),
    aligned: kw.aligned !== false,
  };
  const out = new Map([['output', roiAlign(get('input'), get('rois'), options)]]);
  if (has('grad_output')) {
    const grad = tf.grad((x: Tensor) => tf.sum(tf.mul(roiAlign(x, get('rois'), options), get('grad_output'))));
    out.set('grad_input', grad(get('input')));
  }
  return out;
}

/**
 * Runs the op of an op fixture (what `skysense verify` and `skysense forward` do with a folder whose
 * `config.json` names an `op`) and returns its outputs under the fixtures' names: `output` (and
 * `grad_input`) for `roi_align`, `keep` for the NMS variants, `iou`, `deltas`, `boxes`, and
 * `anchors_0` … per level for `anchors`.
 * @throws SkySenseError `E_UNSUPPORTED` for an op not in {@link BOX_OPS}, `E_FORMAT` for missing kwargs.
 */
export function runBoxOp(op: string, kw: Record<string, unknown>, inputs: Map<string, Tensor>): Map<string, Tensor> {
  const get = (k: string): Tensor => {
    const t = inputs.get(k);
    if (!t) throw new SkySenseError('E_DATA', `${op} fixture: no input '${k}' (inputs: ${[...inputs.keys()].join(', ') || 'none'})`);
    return t;
  };
  switch (op as BoxOpName) {
    case 'roi_align':
      return runRoiAlign(kw, get, (k) => inputs.has(k));
    case 'nms':
      return new Map([['keep', nms(get('boxes'), get('scores'), num(kw, 'iou_threshold', op))]]);
    case 'batched_nms': {
      const idxs = tf.cast(get('idxs'), 'int32');
      const keep = batchedNms(get('boxes'), get('scores'), idxs, num(kw, 'iou_threshold', op));
      idxs.dispose();
      return new Map([['keep', keep]]);
    }
    case 'box_iou':
      return new Map([['iou', boxIou(get('boxes1'), get('boxes2'))]]);
    case 'bbox2delta':
      return new Map([['deltas', bbox2delta(get('proposals'), get('gt'), { means: list(kw, 'means'), stds: list(kw, 'stds') })]]);
    case 'delta2bbox':
      return new Map([
        [
          'boxes',
          delta2bbox(get('rois'), get('deltas'), {
            means: list(kw, 'means'),
            stds: list(kw, 'stds'),
            maxShape: list(kw, 'max_shape') as [number, number] | undefined,
            whRatioClip: kw.wh_ratio_clip as number | undefined,
          }),
        ],
      ]);
    case 'anchors': {
      const gen = new AnchorGenerator({
        strides: kw.strides as (number | [number, number])[],
        ratios: list(kw, 'ratios')!,
        scales: list(kw, 'scales')!,
        baseSizes: list(kw, 'base_sizes'),
        centerOffset: (kw.center_offset as number | undefined) ?? 0,
      });
      return new Map(gen.gridPriors(kw.featmap_sizes as [number, number][]).map((a, i) => [`anchors_${i}`, a]));
    }
    default:
      throw new SkySenseError('E_UNSUPPORTED', `op '${op}' is not one of ${BOX_OPS.join(', ')}`);
  }
}

/** The tolerance of an op fixture's output: indices exact, boxes within 1e-3 px, the rest 1e-4 (IoU 1e-6, deltas 1e-5). */
export function boxOpTolerance(op: string, key: string): number {
  if (key === 'keep') return 0;
  if (op === 'box_iou') return 1e-6;
  if (op === 'bbox2delta') return 1e-5;
  if (op === 'delta2bbox' || op === 'anchors') return 1e-3;
  return 1e-4;
}
