import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { SkySenseError, readJsonFile } from '@skysense/core-tensor';
import type { ClassDef } from './images';
import type { LabelledDataset, LabelledSample } from './datasets';
import { NORMALIZATION } from './normalization';
import { toLatLon } from './raster';
import { loadSentinel1, loadSentinel2, planarStack } from './sentinel';

/** The 43 CORINE land-cover classes of BigEarthNet v1 (`labels` of its metadata), in the dataset's `original_labels` order. */
export const BEN43_CLASSES: readonly string[] = [
  'Continuous urban fabric',
  'Discontinuous urban fabric',
  'Industrial or commercial units',
  'Road and rail networks and associated land',
  'Port areas',
  'Airports',
  'Mineral extraction sites',
  'Dump sites',
  'Construction sites',
  'Green urban areas',
  'Sport and leisure facilities',
  'Non-irrigated arable land',
  'Permanently irrigated land',
  'Rice fields',
  'Vineyards',
  'Fruit trees and berry plantations',
  'Olive groves',
  'Pastures',
  'Annual crops associated with permanent crops',
  'Complex cultivation patterns',
  'Land principally occupied by agriculture, with significant areas of natural vegetation',
  'Agro-forestry areas',
  'Broad-leaved forest',
  'Coniferous forest',
  'Mixed forest',
  'Natural grassland',
  'Moors and heathland',
  'Sclerophyllous vegetation',
  'Transitional woodland/shrub',
  'Beaches, dunes, sands',
  'Bare rock',
  'Sparsely vegetated areas',
  'Burnt areas',
  'Inland marshes',
  'Peatbogs',
  'Salt marshes',
  'Salines',
  'Intertidal flats',
  'Water courses',
  'Water bodies',
  'Coastal lagoons',
  'Estuaries',
  'Sea and ocean',
];

/** The 19 classes of the BigEarthNet-19 nomenclature (Sumbul et al. 2021), in its `BigEarthNet-19_labels` order. */
export const BEN19_CLASSES: readonly string[] = [
  'Urban fabric',
  'Industrial or commercial units',
  'Arable land',
  'Permanent crops',
  'Pastures',
  'Complex cultivation patterns',
  'Land principally occupied by agriculture, with significant areas of natural vegetation',
  'Agro-forestry areas',
  'Broad-leaved forest',
  'Coniferous forest',
  'Mixed forest',
  'Natural grassland and sparsely vegetated areas',
  'Moors, heathland and sclerophyllous vegetation',
  'Transitional woodland, shrub',
  'Beaches, dunes, sands',
  'Inland wetlands',
  'Coastal wetlands',
  'Inland waters',
  'Marine waters',
];

/**
 * The BigEarthNet-19 class of each BigEarthNet-43 class (index into {@link BEN19_CLASSES}), −1 for the
 * 11 classes the 19-class nomenclature drops (roads, ports, airports, mines, dumps, construction,
 * green urban, sport, bare rock, burnt areas, intertidal flats): the dataset's `label_conversion`.
 */
export const BEN19_FROM_BEN43: readonly number[] = [
  0, 0, 1, -1, -1, -1, -1, -1, -1, -1, -1, 2, 2, 2, 3, 3, 3, 4, 3, 5, 6, 7, 8, 9, 10, 11, 12, 12, 13, 14, -1, 11, -1, 15, 15, 16, 16, -1,
  17, 17, 18, 18, 18,
];

/** A BigEarthNet class nomenclature: the 19 classes (default, the benchmark's) or the 43 of v1. */
export type BigEarthNetNomenclature = 'ben19' | 'ben43';

/** Options of {@link indexBigEarthNet}. */
export interface BigEarthNetIndexOptions {
  /** Also pair each Sentinel-2 patch with its Sentinel-1 patch (BigEarthNet-MM). Default `false`. */
  s1?: boolean;
  /** Class list: a nomenclature (default `ben19`) or the class names of a run (labels mapped onto them by name). */
  classes?: BigEarthNetNomenclature | readonly string[];
}

/** One indexed BigEarthNet patch: where its files are and what it is labelled (no pixels). */
export interface BigEarthNetEntry {
  /** The Sentinel-2 patch name. */
  name: string;
  s2: string;
  /** The paired Sentinel-1 patch folder (with `s1`). */
  s1?: string;
  /** 0/1 per class of the index. */
  targets: number[];
  /** Acquisition dates `YYYY-MM-DD` of the S2 (and S1) patch. */
  dates: string[];
  lat: number;
  lon: number;
}

/** A BigEarthNet index: its class list and entries, built from the metadata files alone. */
export interface BigEarthNetIndex {
  classes: ClassDef[];
  entries: BigEarthNetEntry[];
  /** Patches left out because no label survives the class list (BigEarthNet-19 removes them too). */
  unlabelled: string[];
}

interface PatchMeta {
  labels?: unknown;
  coordinates?: { ulx: number; uly: number; lrx: number; lry?: number; lly?: number };
  projection?: string;
  acquisition_date?: string;
  acquisition_time?: string;
  corresponding_s2_patch?: string;
}

const grey = (n: number): [number, number, number] => [n, n, n];
const metaFile = (folder: string) => readdirSync(folder).find((f) => f.endsWith('_labels_metadata.json'));

/** Patch folders under `dir` (depth ≤ 4) holding a metadata file and a file matching `band`. */
function patchFolders(dir: string, band: RegExp): string[] {
  const out: string[] = [];
  const walk = (d: string, depth: number) => {
    for (const e of readdirSync(d).sort()) {
      const p = join(d, e);
      if (!statSync(p).isDirectory()) continue;
      const files = readdirSync(p);
      if (files.some((f) => f.endsWith('_labels_metadata.json')) && files.some((f) => band.test(f))) out.push(p);
      else if (depth < 4) walk(p, depth + 1);
    }
  };
  walk(dir, 0);
  return out;
}

function readMeta(folder: string): PatchMeta & { file: string } {
  const file = join(folder, metaFile(folder)!);
  const meta = readJsonFile<PatchMeta | null>(file, 'BigEarthNet labels metadata');
  if (!meta || typeof meta !== 'object') throw new SkySenseError('E_DATA', `${file}: expected a JSON object`);
  return { ...meta, file };
}

/** `YYYY-MM-DD` of a metadata record (`acquisition_date` of S2, `acquisition_time` of S1). */
function metaDate(m: PatchMeta & { file: string }): string {
  const d = (m.acquisition_date ?? m.acquisition_time ?? '').slice(0, 10);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(d))
    throw new SkySenseError('E_DATE', `${m.file}: no acquisition date (acquisition_date / acquisition_time)`);
  return d;
}

/** Centre of the patch in WGS 84 from its UTM corners and the EPSG code of its WKT. */
function metaCentre(m: PatchMeta & { file: string }): { lat: number; lon: number } {
  const c = m.coordinates;
  const epsg = /AUTHORITY\["EPSG","(\d+)"\]\]\s*$/.exec(m.projection ?? '')?.[1];
  const bottom = c?.lry ?? c?.lly;
  if (!c || bottom === undefined || !epsg) throw new SkySenseError('E_DATA', `${m.file}: no coordinates / projection to place the patch`);
  const [lat, lon] = toLatLon((c.ulx + c.lrx) / 2, (c.uly + bottom) / 2, Number(epsg));
  return { lat, lon };
}

/** Maps a patch's label names onto the class list: 0/1 per class, null when none survives. @throws SkySenseError `E_DATA` for a name of no nomenclature. */
function targetsOf(labels: string[], classes: readonly string[], ben19: boolean, file: string): number[] | null {
  const t = new Array<number>(classes.length).fill(0);
  for (const l of labels) {
    const k43 = BEN43_CLASSES.indexOf(l);
    const name = ben19 && k43 >= 0 ? BEN19_CLASSES[BEN19_FROM_BEN43[k43]!] : l;
    if (k43 < 0 && !BEN19_CLASSES.includes(l))
      throw new SkySenseError('E_DATA', `${file}: label '${l}' is in neither the BigEarthNet-43 nor the BigEarthNet-19 nomenclature`);
    const k = name === undefined ? -1 : classes.indexOf(name);
    if (k >= 0) t[k] = 1;
  }
  return t.some((v) => v) ? t : null;
}

/**
 * Indexes BigEarthNet v1 patches under `dir` from their metadata alone (no raster is decoded): the
 * Sentinel-2 patch folders (`*_B02.tif` + `*_labels_metadata.json`), with `s1` each one's Sentinel-1
 * patch (matched by `corresponding_s2_patch`), labels as 0/1 over a fixed class list (BigEarthNet-19
 * by default: the 43 CORINE names mapped by the dataset's conversion; patches left without a label are
 * dropped and listed, as BigEarthNet-19 does), dates, and the patch centre in WGS 84.
 * @throws SkySenseError `E_IO` (no folder), `E_DATA` (no patches, unknown label, S2 patch without its S1 pair).
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { indexBigEarthNet } from '@skysense/data';
 * await initBackend();
 * const index = indexBigEarthNet('BigEarthNet-v1.0', { s1: true }); // S2 + S1 pairs, BigEarthNet-19 labels
 * console.log(index.classes.length, index.entries.length, index.entries[0]?.dates);
 * ```
 */
export function indexBigEarthNet(dir: string, options: BigEarthNetIndexOptions = {}): BigEarthNetIndex {
  if (!existsSync(dir)) throw new SkySenseError('E_IO', `${dir}: no such folder`);
  const spec = options.classes ?? 'ben19';
  if (typeof spec === 'string' && spec !== 'ben19' && spec !== 'ben43')
    throw new SkySenseError('E_ARG', `classes: expected 'ben19', 'ben43' or a list of class names, got '${spec}'`);
  const names = spec === 'ben19' ? BEN19_CLASSES : spec === 'ben43' ? BEN43_CLASSES : spec;
  const ben19 = names.every((n) => BEN19_CLASSES.includes(n)) && !names.every((n) => BEN43_CLASSES.includes(n));
  const s2Folders = patchFolders(dir, /_B02\.tif$/);
  if (s2Folders.length === 0)
    throw new SkySenseError('E_DATA', `${dir}: no BigEarthNet-S2 patch folders (with *_labels_metadata.json and band files)`);
  const s1ByS2 = new Map<string, { folder: string; date: string }>();
  if (options.s1)
    for (const f of patchFolders(dir, /_VV\.tif$/)) {
      const m = readMeta(f);
      if (m.corresponding_s2_patch) s1ByS2.set(m.corresponding_s2_patch, { folder: f, date: metaDate(m) });
    }
  const entries: BigEarthNetEntry[] = [];
  const unlabelled: string[] = [];
  for (const folder of s2Folders) {
    const m = readMeta(folder);
    if (!Array.isArray(m.labels) || m.labels.some((l) => typeof l !== 'string'))
      throw new SkySenseError('E_DATA', `${m.file}: no "labels" list of class names`);
    const name = basename(folder);
    const targets = targetsOf(m.labels as string[], names, ben19, m.file);
    if (!targets) {
      unlabelled.push(name);
      continue;
    }
    const s1 = s1ByS2.get(name);
    if (options.s1 && !s1)
      throw new SkySenseError('E_DATA', `${folder}: no Sentinel-1 patch under ${dir} names it as its corresponding_s2_patch`);
    entries.push({
      name,
      s2: folder,
      ...(s1 ? { s1: s1.folder } : {}),
      targets,
      dates: [metaDate(m), ...(s1 ? [s1.date] : [])],
      ...metaCentre(m),
    });
  }
  if (entries.length === 0)
    throw new SkySenseError(
      'E_DATA',
      `${dir}: none of the ${s2Folders.length} patches has a label of the class list (${names.length} classes)`,
    );
  return { classes: names.map((n, i) => ({ name: n, color: grey(i) })), entries, unlabelled };
}

/**
 * Decodes one indexed patch: its Sentinel-2 image (10 bands on the 10 m grid) and, when paired, its
 * Sentinel-1 image (VV, VH in dB), with dates, location and targets.
 */
export async function decodeBigEarthNet(e: BigEarthNetEntry): Promise<LabelledSample> {
  const images = [planarStack(await loadSentinel2({ folder: e.s2 }))];
  if (e.s1) images.push(planarStack(await loadSentinel1({ folder: e.s1 })));
  const [s2, s1] = images;
  if (s1 && (s1.width !== s2!.width || s1.height !== s2!.height))
    throw new SkySenseError(
      'E_SHAPE',
      `${e.s1}: the S1 patch is ${s1.width}×${s1.height} px, its S2 patch ${e.s2} ${s2!.width}×${s2!.height} (one grid)`,
    );
  return { name: e.name, images, targets: e.targets, dates: e.dates, lat: e.lat, lon: e.lon };
}

/**
 * BigEarthNet v1 patches under `dir`, decoded: Sentinel-2 (10 bands, 10 m grid) and with `s1` the
 * paired Sentinel-1 image, multi-hot over a fixed class list (default BigEarthNet-19; see
 * {@link indexBigEarthNet}). Decodes everything into memory; the fine-tuning CLI streams large sets.
 */
export async function readBigEarthNetFolder(dir: string, options: BigEarthNetIndexOptions = {}): Promise<LabelledDataset> {
  const index = indexBigEarthNet(dir, options);
  const samples: LabelledSample[] = [];
  for (const e of index.entries) samples.push(await decodeBigEarthNet(e));
  return { classes: index.classes, samples, stats: NORMALIZATION.s2 };
}
