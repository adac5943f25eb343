import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { SkySenseError, interpolate, readJsonFile, tf } from '@skysense/core-tensor';
import type { LabelledSample } from './datasets';
import { requireAcquisitionDate } from './dates';
import { FUSION_GRID_RATIO, hrOnFusionGrid } from './fusion-grid';
import { type ClassDef, type PlanarImage, ignoreNodata, readClassTable, readMask } from './images';
import { type Raster, rasterCentre } from './raster';
import { type SampleManifest, readManifest } from './sample';
import { type S2Source, loadHr, loadSentinel1, loadSentinel2, planarStack, s2TrueColour } from './sentinel';

/** One indexed multi-modal segmentation sample: its manifest entry, its label raster and the class table. */
export interface ManifestEntry {
  name: string;
  sample: SampleManifest;
  /** One-band class indices (or colours of the table) on the Sentinel grid. */
  mask: string;
  classes: ClassDef[];
}

/**
 * Indexes multi-modal segmentation samples (PASTIS-MM / Dynamic EarthNet-MM style): `<dir>/samples.json`
 * lists manifest samples (`hr`, `s2` and `s1` series with dates, `lat`/`lon`; see `SampleManifest`),
 * each with `"mask"`: its labels on the Sentinel grid; `<dir>/classes.json` (or `classes`) names the classes.
 * @throws SkySenseError `E_IO` (no manifest), `E_DATA` (a sample without a mask, no Sentinel series).
 */
export function indexManifestSegmentation(
  dir: string,
  options: { classes?: ClassDef[] } = {},
): { classes: ClassDef[]; entries: ManifestEntry[] } {
  const file = join(dir, 'samples.json');
  if (!existsSync(file)) throw new SkySenseError('E_IO', `${file}: no such file (a list of samples with hr / s2 / s1 and a mask)`);
  const classes = options.classes ?? readClassTable(join(dir, 'classes.json'));
  const raw = readJsonFile<{ mask?: unknown }[] | { samples?: { mask?: unknown }[] }>(file, 'manifest');
  const masks = (Array.isArray(raw) ? raw : (raw?.samples ?? [])).map((s) => s?.mask);
  const entries = readManifest(file).map((sample, i) => {
    const mask = masks[i];
    const name = sample.name ?? `sample-${i}`;
    if (typeof mask !== 'string' || mask === '')
      throw new SkySenseError(
        'E_DATA',
        `${file}: sample ${i} (${name}): "mask": expected the path of its label raster, got ${JSON.stringify(mask)}`,
      );
    if (!sample.s2?.length && !sample.s1?.length)
      throw new SkySenseError(
        'E_DATA',
        `${file}: sample ${i} (${name}): expected an s2 or s1 series (the labels lie on the Sentinel grid)`,
      );
    return { name, sample, mask: isAbsolute(mask) ? mask : resolve(dirname(resolve(file)), mask), classes };
  });
  return { classes, entries };
}

/** An HR image resampled onto the fusion grid of `[h, w]` Sentinel pixels ({@link hrOnFusionGrid}; nodata by nearest). */
function hrOnGrid(hr: PlanarImage, h: number, w: number): PlanarImage {
  const onGrid = (data: Float32Array, c: number, mode: 'bilinear' | 'nearest') =>
    tf.tidy(() => {
      const x = tf.tensor4d(data, [1, c, hr.height, hr.width]);
      const y =
        mode === 'bilinear' ? hrOnFusionGrid(x, [h, w]) : interpolate(x, { size: [FUSION_GRID_RATIO * h, FUSION_GRID_RATIO * w], mode });
      return (y ?? x).dataSync() as Float32Array;
    });
  const data = onGrid(hr.data, hr.channels, 'bilinear');
  const valid = hr.valid && Uint8Array.from(onGrid(Float32Array.from(hr.valid), 1, 'nearest'));
  return { width: FUSION_GRID_RATIO * w, height: FUSION_GRID_RATIO * h, channels: hr.channels, data, ...(valid ? { valid } : {}) };
}

/**
 * Decodes one multi-modal sample: its Sentinel frames (S2 on the encoder's 10 bands, S1 VV/VH) with
 * dates and nodata, the HR image resampled onto the fusion grid ({@link FUSION_GRID_RATIO} HR pixels per
 * Sentinel pixel), the labels, its location and a true-colour preview.
 * @throws SkySenseError `E_SHAPE` when the frames or the mask are not on one Sentinel grid.
 */
export async function decodeManifestSample(e: ManifestEntry): Promise<LabelledSample> {
  const m = e.sample;
  const anyDtype = m.anyDtype === true;
  const frames: { image: PlanarImage; date: string; source: 's2' | 's1'; grid: Raster }[] = [];
  for (const f of m.s2 ?? []) {
    const s = await loadSentinel2(f as S2Source, { missing: m.missingBands, anyDtype });
    frames.push({
      image: planarStack(s),
      date: f.date ?? requireAcquisitionDate(s.grid.file, s.grid.tiffDate),
      source: 's2',
      grid: s.grid,
    });
  }
  for (const f of m.s1 ?? []) {
    const s = await loadSentinel1(f, { units: f.units, speckleFilter: f.speckleFilter, anyDtype });
    frames.push({
      image: planarStack(s),
      date: f.date ?? requireAcquisitionDate(s.grid.file, s.grid.tiffDate),
      source: 's1',
      grid: s.grid,
    });
  }
  const [h, w] = [frames[0]!.image.height, frames[0]!.image.width];
  const off = frames.find((f) => f.image.height !== h || f.image.width !== w);
  if (off)
    throw new SkySenseError(
      'E_SHAPE',
      `${e.name}: ${off.grid.file} is ${off.image.width}×${off.image.height} px, the sample's first frame ${w}×${h} (one Sentinel grid)`,
    );
  const mask = await readMask(e.mask, e.classes);
  if (mask.length !== h * w)
    throw new SkySenseError('E_SHAPE', `${e.mask}: expected ${w}×${h} labels (the Sentinel grid), got ${mask.length} pixels`);
  // a location no frame sees is neither trained on nor scored
  ignoreNodata(
    mask,
    frames.map((f) => f.image),
    'all',
  );
  const hrEntry = typeof m.hr === 'string' ? { file: m.hr } : m.hr;
  const hr = hrEntry && hrOnGrid(planarStack(await loadHr(hrEntry.file, { bands: hrEntry.bands, anyDtype })), h, w);
  const where = m.lat !== undefined && m.lon !== undefined ? { lat: m.lat, lon: m.lon } : rasterCentre(frames[0]!.grid);
  const s2 = frames.find((f) => f.source === 's2');
  return {
    name: e.name,
    images: frames.map((f) => f.image),
    sources: frames.map((f) => f.source),
    dates: frames.map((f) => f.date),
    mask,
    ...(hr ? { hr } : {}),
    ...(s2 ? { preview: s2TrueColour(s2.image) } : {}),
    ...where,
  };
}
