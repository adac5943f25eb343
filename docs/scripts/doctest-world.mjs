/**
 * The world the documentation's examples run in, so that every one of them runs in CI as written,
 * not only the self-contained ones:
 *
 * - **Released-size models at test width.** Loaded with `node --import` into each example's
 *   process, this module narrows the presets of the released models (`skysense-hr`, `skysense-s2`,
 *   `skysense-s1`, `skysense-2b`) to toy widths — same classes, same key names, same depths where
 *   an example names a layer — so `fromPreset('skysense-2b')` builds in milliseconds. Like the tiny
 *   random checkpoints other libraries' doc tests use, it exercises every call of the example; the
 *   numbers are not the released model's (the parity tests check those).
 * - **The files examples name.** {@link prepareWorld} fills the example's working folder: the six
 *   released checkpoint files in their released layouts (`backbone.` prefix and `mask_token` for HR,
 *   flat ViT keys plus `ctpe` for S2, …) written by `savePth` from the narrowed models, their
 *   safetensors conversions, the same S2 file in the weights cache, and the real satellite samples
 *   (`SKYSENSE_SAMPLES`) under the names the examples use (`tile.tif`, `scene_VV.tif`, `my-tiles/`, a
 *   sample manifest, …), a fine-tuned model (`my-model.safetensors`, two steps of `runFinetune`) and
 *   the Dubai buildings as a VOC detection folder (`dubai-boxes/`) and as COCO (`coco-boxes/`), made once per run. Examples
 *   read these; they write only new names.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend, saveSafetensors, savePth, tf } from '@skysense/core-tensor';
import { SWIN_V2_PRESETS, SwinTransformerV2 } from '@skysense/swin';
import { VIT_PRESETS, VisionTransformer } from '@skysense/vit';
import { SKYSENSE_PRESETS, SkySense, runFinetune } from '@skysense/skysense';
import { DUBAI_AERIAL_CLASSES, readVocFolder, segmentationToDetection } from '@skysense/data';

const TINY = SKYSENSE_PRESETS['skysense-tiny'];
/** ViT-L's 24 layers are kept (examples pick layers 5, 11, 17, 23); the width is the tiny preset's. */
const VIT = { embedDims: TINY.s2.embedDims, numHeads: TINY.s2.numHeads, numLayers: 24 };
/** The tiny preset's Sentinel encoders at the released input size (64 px), so one file loads into both the encoder and the full model. */
const sentinel = ({ imgSize, ...rest }) => ({ ...rest, ...VIT });

/** Narrows the released presets in place (this process only). */
export function narrowReleasedPresets() {
  Object.assign(SWIN_V2_PRESETS, { 'skysense-hr': { ...SWIN_V2_PRESETS['skysense-hr'], arch: TINY.hr.arch } });
  Object.assign(VIT_PRESETS, {
    'skysense-s2': { ...VIT_PRESETS['skysense-s2'], ...VIT },
    'skysense-s1': { ...VIT_PRESETS['skysense-s1'], ...VIT },
  });
  Object.assign(SKYSENSE_PRESETS, {
    'skysense-2b': { ...TINY, s2: sentinel(TINY.s2), s1: sentinel(TINY.s1) },
  });
}

narrowReleasedPresets();

const link = (target, path) => symlinkSync(target, path);

/** Temporary folders made once per process (by name), removed by {@link disposeWorld}. */
const made = new Map();

async function once(name, make) {
  if (!made.has(name)) {
    const d = mkdtempSync(join(tmpdir(), `skysense-doctest-${name}-`));
    made.set(name, d);
    await make(d);
  }
  return made.get(name);
}

/** Removes what {@link prepareWorld} made once per process. */
export function disposeWorld() {
  for (const d of made.values()) rmSync(d, { recursive: true, force: true });
  made.clear();
}

/** The six released files in their released layouts, their safetensors conversions and a small head's weights. */
async function releasedFiles(dir) {
  await initBackend();
  const sky = SkySense.fromPreset('skysense-2b');
  const hr = new Map(sky.hr.stateDict());
  const maskToken = tf.zeros([1, 1, TINY.hr.arch.embedDims]);
  hr.set('mask_token', maskToken);
  savePth(join(dir, 'skysense_model_backbone_hr.pth'), hr, { prefix: 'backbone.' });
  maskToken.dispose();
  saveSafetensors(join(dir, 'skysense_model_backbone_hr.safetensors'), sky.hr);
  const s2 = new Map([...sky.s2.stateDict(), ['ctpe', sky.neck.ctpe.value]]);
  savePth(join(dir, 'skysense_model_backbone_s2.pth'), s2);
  saveSafetensors(join(dir, 'skysense_model_backbone_s2.safetensors'), s2);
  savePth(join(dir, 'skysense_model_backbone_s1.pth'), sky.s1);
  savePth(join(dir, 'skysense_model_head_s2.pth'), sky.neck.headS2);
  savePth(join(dir, 'skysense_model_head_s1.pth'), sky.neck.headS1);
  savePth(join(dir, 'skysense_model_fusion.pth'), sky.neck.fusion);
  saveSafetensors(join(dir, 'model.safetensors'), sky.neck.headS2);
  sky.dispose();
}

/**
 * Fills `dir` (an example's working folder) with the files the examples name, and the weights cache
 * `cache` with the S2 checkpoint; checkpoints are copied, the samples and the once-made folders linked.
 */
export async function prepareWorld(dir, cache, samples) {
  const files = await once('released', releasedFiles);
  for (const f of readdirSync(files)) copyFileSync(join(files, f), join(dir, f));
  mkdirSync(cache, { recursive: true });
  copyFileSync(join(files, 'skysense_model_backbone_s2.pth'), join(cache, 'skysense_model_backbone_s2.pth'));

  const ben = join(samples, 'bigearthnet', 'v1-s1s2-example');
  const s2Frame = 'S2A_MSIL2A_20170613T101031_87_48';
  const s1Frame = join(ben, 'BigEarthNet-S1', 'S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48');
  link(join(ben, 'BigEarthNet-S2', s2Frame), join(dir, s2Frame));
  link(ben, join(dir, 'BigEarthNet-v1.0')); // a user's BigEarthNet v1 (S2 and S1 patches)
  link(join(s1Frame, 'S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48_VV.tif'), join(dir, 'scene_VV.tif'));
  link(join(s1Frame, 'S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48_VH.tif'), join(dir, 'scene_VH.tif'));
  link(join(samples, 'naip-timeseries', 'm_4709963_se_14_1_20200831.tif'), join(dir, 'tile.tif'));
  link(join(samples, 'dubai-aerial-segmentation', 'masks', 'tile1_image_part_001.png'), join(dir, 'tile.png'));
  // a user's own tile folder, with a class table in the masks' colours
  const dubai = join(samples, 'dubai-aerial-segmentation');
  mkdirSync(join(dir, 'my-tiles'));
  for (const sub of ['images', 'masks']) link(join(dubai, sub), join(dir, 'my-tiles', sub));
  writeFileSync(join(dir, 'my-tiles', 'classes.json'), JSON.stringify(DUBAI_AERIAL_CLASSES));
  const tiles = join(dir, 'my-tiles');
  const model = await once('model', (d) =>
    runFinetune({ task: 'seg', data: tiles, classes: join(tiles, 'classes.json'), out: join(d, 'run'), steps: 2, log: () => {} }),
  );
  link(join(model, 'run', 'model.safetensors'), join(dir, 'my-model.safetensors'));
  const boxes = await once('boxes', (d) => segmentationToDetection(tiles, d, { classes: DUBAI_AERIAL_CLASSES, boxClasses: ['Building'] }));
  link(boxes, join(dir, 'dubai-boxes'));
  const coco = await once('coco', (d) => vocToCoco(boxes, d));
  link(coco, join(dir, 'coco-boxes'));
  const manifest = JSON.stringify({
    name: '87_48',
    s2: [{ folder: s2Frame, date: '2017-06-13' }],
    s1: [{ vv: 'scene_VV.tif', vh: 'scene_VH.tif', date: '2017-06-13' }],
  });
  for (const name of ['samples.json', 'my-sample.json']) writeFileSync(join(dir, name), manifest);
}

/** A VOC folder as COCO: `annotations.json` and `images/` (a link to its `JPEGImages/`). */
function vocToCoco(voc, out) {
  const samples = readVocFolder(voc, ['Building']);
  const images = samples.map((s, id) => ({
    id,
    file_name: s.image.split('/').at(-1),
    width: s.annotation.width,
    height: s.annotation.height,
  }));
  const annotations = samples
    .flatMap((s, id) =>
      s.annotation.objects.map(({ bbox: [x1, y1, x2, y2] }) => ({
        image_id: id,
        category_id: 1,
        bbox: [x1, y1, x2 - x1, y2 - y1],
        iscrowd: 0,
      })),
    )
    .map((a, id) => ({ id, ...a }));
  writeFileSync(join(out, 'annotations.json'), JSON.stringify({ images, annotations, categories: [{ id: 1, name: 'Building' }] }));
  symlinkSync(join(voc, 'JPEGImages'), join(out, 'images'));
}
