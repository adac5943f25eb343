import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { SkySenseError } from '@skysense/core-tensor';
import { type ClassDef, type PlanarImage, IGNORE_INDEX, ignoreNodata, listImages, loadSegmentationDataset, readImage } from './images';
import { type ChannelStats, NORMALIZATION } from './normalization';
import { loadSentinel2, planarStack, s2TrueColour } from './sentinel';

/** One labelled sample: its image(s) and whichever labels its dataset has. */
export interface LabelledSample {
  name: string;
  /** One image, or the two dates of a change pair. */
  images: PlanarImage[];
  /** Per-pixel classes (seg, change; 255 = ignore). */
  mask?: Uint8Array;
  /** Class index (cls). */
  label?: number;
  /** 0/1 per class (multilabel). */
  targets?: number[];
  /** Object boxes, flat `[K·4]` x1, y1, x2, y2 in pixels (det). */
  boxes?: Float32Array;
  /** Class index per box (det). */
  boxLabels?: Int32Array;
  /** 1 for a box marked difficult: not trained on, ignored by the mAP (det). */
  difficult?: Uint8Array;
  /** Acquisition date `YYYY-MM-DD` of each image (multi-modal and temporal samples). */
  dates?: string[];
  /** Where the sample lies (WGS 84), for the geo-context. */
  lat?: number;
  lon?: number;
  /** The sensor of each image where a sample mixes Sentinel-2 and Sentinel-1 frames. */
  sources?: ('s2' | 's1')[];
  /** A co-registered HR image on the fusion grid (32 HR pixels per pixel of `images`). */
  hr?: PlanarImage;
  /** An RGB picture (0–255) of the sample for drawings, where its images are not RGB. */
  preview?: PlanarImage;
}

/** A labelled dataset as read from a folder: samples, classes (with colours for masks), input statistics. */
export interface LabelledDataset {
  classes: ClassDef[];
  samples: LabelledSample[];
  stats: ChannelStats;
}

/** No change (black) / change (white), the binary label colours of change-detection datasets. */
export const CHANGE_CLASSES: readonly ClassDef[] = [
  { name: 'no change', color: [0, 0, 0] },
  { name: 'change', color: [255, 255, 255] },
];

const grey = (n: number): [number, number, number] => [n, n, n];

/** ImageNet statistics for RGB / RGB-NIR images. */
export function imageStats(channels: number): ChannelStats {
  if (channels === 3) return NORMALIZATION.hr;
  if (channels === 4) return NORMALIZATION['hr-rgbn'];
  throw new SkySenseError('E_BANDS', `images: expected 3 (RGB) or 4 (RGB-NIR) bands, got ${channels}`);
}

/** Segmentation pairs `<dir>/images/*` + `<dir>/masks/*`. */
export async function readSegmentationFolder(dir: string, classes: readonly ClassDef[]): Promise<LabelledDataset> {
  const pairs = await loadSegmentationDataset(dir, classes);
  return {
    classes: [...classes],
    samples: pairs.map((p) => ({ name: p.name, images: [p.image], mask: p.mask })),
    stats: imageStats(pairs[0]!.image.channels),
  };
}

/**
 * Sentinel-2 segmentation pairs `<dir>/images/*.tif` + `<dir>/masks/*`: each image one multi-band S2
 * file (13-band L1C, 12-band L2A or SkySense's 10, by band count) loaded onto the encoder's 10 bands
 * with its nodata (L2A zeros, the file's nodata value) marked ignore in the mask.
 */
export async function readSentinel2SegmentationFolder(dir: string, classes: readonly ClassDef[]): Promise<LabelledDataset> {
  const pairs = await loadSegmentationDataset(dir, classes, async (file) => planarStack(await loadSentinel2({ file, bandMap: 'auto' })));
  return {
    classes: [...classes],
    samples: pairs.map((p) => ({ name: p.name, images: [p.image], mask: p.mask, preview: s2TrueColour(p.image) })),
    stats: NORMALIZATION.s2,
  };
}

/** Scene classification laid out as `<dir>/<class>/<image>` (torchvision's ImageFolder); classes sorted by name. */
export async function readImageFolder(dir: string): Promise<LabelledDataset> {
  if (!existsSync(dir)) throw new SkySenseError('E_IO', `${dir}: no such folder`);
  const names = readdirSync(dir)
    .filter((d) => statSync(join(dir, d)).isDirectory())
    .sort();
  if (names.length < 2) throw new SkySenseError('E_DATA', `${dir}: expected one sub-folder per class (at least 2), got ${names.length}`);
  const samples: LabelledSample[] = [];
  for (const [label, name] of names.entries()) {
    for (const file of listImages(join(dir, name)))
      samples.push({ name: `${name}/${basename(file, extname(file))}`, images: [await readImage(file)], label });
  }
  return {
    classes: names.map((name, i) => ({ name, color: grey(i) })),
    samples,
    stats: imageStats(samples[0]!.images[0]!.channels),
  };
}

/** Change-detection pairs `<dir>/A/*`, `<dir>/B/*`, `<dir>/label/*` (LEVIR-CD layout; labels > 127 = change). */
export async function readChangeFolder(dir: string): Promise<LabelledDataset> {
  const stem = (f: string) => basename(f, extname(f));
  const find = (sub: string) => new Map(listImages(join(dir, sub)).map((f) => [stem(f), f]));
  const [bs, labels] = [find('B'), find('label')];
  const samples: LabelledSample[] = [];
  for (const a of listImages(join(dir, 'A'))) {
    const name = stem(a);
    const b = bs.get(name);
    const l = labels.get(name);
    if (!b || !l)
      throw new SkySenseError('E_DATA', `${a}: no ${!b ? 'B' : 'label'} image named ${name}.* in ${join(dir, !b ? 'B' : 'label')}`);
    const [ia, ib, il] = [await readImage(a), await readImage(b), await readImage(l, { fill: false })];
    for (const [what, img] of [
      ['B', ib],
      ['label', il],
    ] as const) {
      if (img.width !== ia.width || img.height !== ia.height)
        throw new SkySenseError('E_DATA', `${name}: ${what} is ${img.width}×${img.height}, A is ${ia.width}×${ia.height}`);
    }
    const mask = Uint8Array.from(il.data.subarray(0, il.width * il.height), (v, i) =>
      il.valid && !il.valid[i] ? IGNORE_INDEX : v > 127 ? 1 : 0,
    );
    samples.push({ name, images: [ia, ib], mask: ignoreNodata(mask, [ia, ib]) });
  }
  if (samples.length === 0) throw new SkySenseError('E_DATA', `${dir}: no images in ${join(dir, 'A')}`);
  return { classes: [...CHANGE_CLASSES], samples, stats: imageStats(samples[0]!.images[0]!.channels) };
}
