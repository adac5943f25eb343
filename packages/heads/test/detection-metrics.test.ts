import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SkySenseError } from '@skysense/core-tensor';
import { evalMap, type EvalMapOptions, type GroundTruth, type ImageDetections } from '../src/index';

/** mmdet's own eval_map on a hand-made result set (`test/fixtures/eval-map/make.py`). */
const fixture = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'eval-map', 'eval-map-a.json'), 'utf8')) as {
  detections: ImageDetections[];
  annotations: { bboxes: number[][]; labels: number[]; bboxes_ignore: number[][]; labels_ignore: number[] }[];
  settings: Record<
    string,
    {
      kwargs: { iou_thr: number; dataset?: string; scale_ranges?: [number, number][] };
      mAP: number | number[];
      classes: { num_gts: number | number[]; num_dets: number; recall: number | number[]; ap: number | number[] }[];
    }
  >;
};
const annotations: GroundTruth[] = fixture.annotations.map((a) => ({
  bboxes: a.bboxes,
  labels: a.labels,
  bboxesIgnore: a.bboxes_ignore,
  labelsIgnore: a.labels_ignore,
}));
const list = (v: number | number[]) => (Array.isArray(v) ? v : [v]);

describe('evalMap matches mmdet eval_map', () => {
  it.each(Object.keys(fixture.settings))('%s', (name) => {
    const want = fixture.settings[name]!;
    const options: EvalMapOptions = {
      iouThr: want.kwargs.iou_thr,
      mode: want.kwargs.dataset === 'voc07' ? '11points' : 'area',
      scaleRanges: want.kwargs.scale_ranges,
    };
    const got = evalMap(fixture.detections, annotations, options);
    list(want.mAP).forEach((m, s) => expect(Math.abs(got.mAP[s]! - m), `${name} mAP[${s}]`).toBeLessThanOrEqual(1e-6));
    want.classes.forEach((c, k) => {
      expect(got.classes[k]!.numGts).toEqual(list(c.num_gts));
      expect(got.classes[k]!.numDets).toBe(c.num_dets);
      list(c.ap).forEach((ap, s) => expect(Math.abs(got.classes[k]!.ap[s]! - ap), `${name} class ${k} AP`).toBeLessThanOrEqual(1e-6));
      list(c.recall).forEach((r, s) =>
        expect(Math.abs(got.classes[k]!.recall[s]! - r), `${name} class ${k} recall`).toBeLessThanOrEqual(1e-6),
      );
    });
    expect(got.table(['a', 'b', 'c'])).toMatch(/^class +gts +dets +recall +AP\na /);
  });

  it('rounds boxes to float32 first, as mmdet: an area of 1023.9999 is below 32²', () => {
    // mmdet eval_map on this pair (run with the fixture's generator): mAP [1, 0], num_gts [[1, 0]]
    const got = evalMap([[[[0.1, 0.1, 32.1, 32.1, 0.9]]]], [{ bboxes: [[0.1, 0.1, 32.1, 32.1]], labels: [0] }], {
      scaleRanges: [
        [0, 32],
        [32, 1000],
      ],
    });
    expect(got.mAP).toEqual([1, 0]);
    expect(got.classes[0]!.numGts).toEqual([1, 0]);
  });

  it('refuses inconsistent inputs, naming them', () => {
    const dets: ImageDetections[] = [[[[0, 0, 4, 4, 0.9]], []]];
    expect(() => evalMap(dets, [])).toThrow(/^E_ARG: evalMap: 1 images of detections but 0 annotations$/);
    expect(() => evalMap(dets, [{ bboxes: [[0, 0, 4, 4]], labels: [2] }])).toThrow(
      /evalMap annotations\[0\]: label 2 is not a class of the detections \(0 … 1\)/,
    );
    expect(() => evalMap(dets, [{ bboxes: [[0, 0, 4, 4]], labels: [] }])).toThrow(/1 boxes but 0 labels/);
    expect(() => evalMap(dets, [{ bboxes: [[0, 0, NaN, 4]], labels: [0] }])).toThrow(
      /^E_ARG: evalMap annotations\[0\] box 0: expected \[x1, y1, x2, y2\], got \[0,0,null,4\]$/,
    );
    expect(() => evalMap([[[[0, 0, 4, 4]], []]], [{ bboxes: [], labels: [] }])).toThrow(SkySenseError);
    expect(evalMap(dets, [{ bboxes: [], labels: [] }]).mAP).toEqual([0]);
    const gt = [{ bboxes: [], labels: [] }];
    expect(() => evalMap(dets, gt, { iouThr: NaN })).toThrow(/evalMap iouThr/);
    expect(() => evalMap(dets, gt, { mode: 'voc' as 'area' })).toThrow(/^E_ARG: evalMap mode: expected 'area' or '11points', got 'voc'$/);
    expect(() => evalMap(dets, gt, { scaleRanges: [[32, 16]] })).toThrow(
      /evalMap scaleRanges\[0\]: expected \[min, max\) with 0 ≤ min < max, got \[32, 16\]/,
    ); // no ground truth at all: 0, as mmdet
  });
});
