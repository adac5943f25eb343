import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, writePng } from '@skysense/core-tensor';
import {
  DUBAI_AERIAL_CLASSES,
  boxesFromMask,
  readMask,
  readVocAnnotation,
  readVocFolder,
  readDetectionFolder,
  readCocoDetection,
  samplesDir,
  windowBoxes,
  cutWindow,
  segmentationToDetection,
  writeVocAnnotation,
} from '../src/index';

const dir = mkdtempSync(join(tmpdir(), 'skysense-det-'));
const dubai = join(samplesDir(), 'dubai-aerial-segmentation');
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(async () => {
  await initBackend({ force: 'cpu' });
});

const voc = (body: string) =>
  `<annotation><filename>a.jpg</filename><size><width>100</width><height>80</height></size>${body}</annotation>`;
const obj = (name: string, box: (number | string)[], difficult = 0) =>
  `<object><name>${name}</name><difficult>${difficult}</difficult><bndbox><xmin>${box[0]}</xmin><ymin>${box[1]}</ymin><xmax>${box[2]}</xmax><ymax>${box[3]}</ymax></bndbox></object>`;

describe('detection data', () => {
  it('boxesFromMask: one box per 4-connected component, pixel edges, small ones dropped', () => {
    // 0 1 1 0
    // 0 1 1 0
    // 0 0 0 1   (the lone 1 touches the block only diagonally: its own component)
    const mask = Uint8Array.from([0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1]);
    expect(boxesFromMask(mask, 4, 3, { classes: [1], minPixels: 1 })).toEqual([
      { label: 1, bbox: [1, 0, 3, 2], pixels: 4 },
      { label: 1, bbox: [3, 2, 4, 3], pixels: 1 },
    ]);
    expect(boxesFromMask(mask, 4, 3, { classes: [1], minPixels: 2 })).toHaveLength(1);
    expect(() => boxesFromMask(mask, 5, 3, { classes: [1] })).toThrow(/12 labels for a 5 × 3 mask \(expected 15\)/);
    expect(() => boxesFromMask(mask, 4, 3, { classes: [1], minPixels: 0 })).toThrow(/boxesFromMask minPixels/);
  });

  it('VOC annotations: read as mmdet reads them; boxes clipped to the image; bad files named', () => {
    const f = join(dir, 'a.xml');
    writeFileSync(f, voc(obj('ship', [10.7, 5, 40, 30]) + obj('R&amp;D', [-5, 60, 30, 95], 1)));
    expect(readVocAnnotation(f)).toEqual({
      filename: 'a.jpg',
      width: 100,
      height: 80,
      objects: [
        { name: 'ship', bbox: [10, 5, 40, 30], difficult: false },
        { name: 'R&D', bbox: [0, 60, 30, 80], difficult: true },
      ],
    });
    // what ElementTree (mmdet) sees: comments are not objects, CDATA names, numeric entities, a person's <part> boxes are not its box
    writeFileSync(
      f,
      voc(
        '<!-- <object><name>ghost</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object> -->' +
          '<object><name><![CDATA[car & co]]></name><part><name>head</name><bndbox><xmin>10</xmin><ymin>10</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></part>' +
          '<difficult>2</difficult><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>60</xmax><ymax>70</ymax></bndbox></object>' +
          obj('R&#38;D', [1, 2, 3, 4]),
      ),
    );
    expect(readVocAnnotation(f).objects).toEqual([
      { name: 'car & co', bbox: [5, 5, 60, 70], difficult: true },
      { name: 'R&D', bbox: [1, 2, 3, 4], difficult: false },
    ]);
    const cases: [string, RegExp][] = [
      [voc(obj('ship', ['', 2, 3, 4])), /object 0 \(ship\) <xmin>: expected a number, got ""/],
      [voc(obj('ship', ['0x5', 2, 30, 40])), /<xmin>: expected a number, got "0x5"/],
      ['', /a\.xml: empty file \(expected a Pascal VOC <annotation>\)/],
      ['<root/>', /no <annotation> element/],
      ['<annotation><object/></annotation>', /no <size>/],
      [voc(obj('ship', [1, 2, 'x', 4])), /object 0 \(ship\) <xmax>: expected a number, got "x"/],
      [voc(obj('ship', [120, 10, 150, 20])), /object 0 \(ship\): box \[120, 10, 150, 20\] has no area inside the 100 × 80 image/],
      [voc(obj('ship', [30, 10, 30, 20])), /box \[30, 10, 30, 20\] has no area/],
    ];
    for (const [text, error] of cases) {
      writeFileSync(f, text);
      expect(() => readVocAnnotation(f)).toThrow(error);
    }
    expect(() => readVocAnnotation(join(dir, 'none.xml'))).toThrow(/^E_IO: cannot read annotation .*none\.xml: no such file/);
  });

  it('VOC folders: labels from the label map, images found by name, negatives kept, unknown classes refused', () => {
    const root = join(dir, 'voc');
    mkdirSync(join(root, 'Annotations'), { recursive: true });
    mkdirSync(join(root, 'JPEGImages'));
    writeVocAnnotation(join(root, 'Annotations', 'a.xml'), {
      filename: 'a.jpg',
      width: 100,
      height: 80,
      objects: [{ name: 'tank', bbox: [1, 2, 30, 40], difficult: false }],
    });
    writeVocAnnotation(join(root, 'Annotations', 'b.xml'), { filename: 'b.jpg', width: 100, height: 80, objects: [] });
    for (const n of ['a', 'b']) writeFileSync(join(root, 'JPEGImages', `${n}.jpg`), 'x');
    const samples = readVocFolder(root, ['ship', 'tank']);
    expect(samples.map((s) => [s.name, s.labels])).toEqual([
      ['a', [1]],
      ['b', []],
    ]);
    expect(() => readVocFolder(root, ['ship'])).toThrow(/a\.xml: class 'tank' is not in the label map \(ship\)/);
    rmSync(join(root, 'JPEGImages', 'b.jpg'));
    expect(() => readVocFolder(root, ['ship', 'tank'])).toThrow(/b\.xml: no image b\.\* in/);
    expect(() => readVocFolder(dir, ['ship'])).toThrow(/no Annotations\/ folder/);
  });

  it('detection datasets: images decoded with their boxes, classes from the annotations or given, sizes checked; crops move the boxes', async () => {
    const root = join(dir, 'det');
    mkdirSync(join(root, 'Annotations'), { recursive: true });
    mkdirSync(join(root, 'JPEGImages'));
    const rgb = new Uint8Array(40 * 30 * 3).fill(90);
    writePng(join(root, 'JPEGImages', 'a.png'), rgb, 40, 30);
    writePng(join(root, 'JPEGImages', 'b.png'), rgb, 40, 30);
    const ann = (objects: { name: string; bbox: [number, number, number, number]; difficult: boolean }[], width = 40) => ({
      filename: 'x.png',
      width,
      height: 30,
      objects,
    });
    writeVocAnnotation(
      join(root, 'Annotations', 'a.xml'),
      ann([
        { name: 'tank', bbox: [2, 3, 20, 25], difficult: false },
        { name: 'ship', bbox: [30, 0, 40, 9], difficult: true },
      ]),
    );
    writeVocAnnotation(join(root, 'Annotations', 'b.xml'), ann([]));
    const d = await readDetectionFolder(root);
    expect(d.classes.map((c) => c.name)).toEqual(['ship', 'tank']);
    expect(d.samples.map((s) => [s.name, Array.from(s.boxes!), Array.from(s.boxLabels!), Array.from(s.difficult!)])).toEqual([
      ['a', [2, 3, 20, 25, 30, 0, 40, 9], [1, 0], [0, 1]],
      ['b', [], [], []],
    ]);
    expect((await readDetectionFolder(root, ['tank', 'ship', 'plane'])).samples[0]!.boxLabels).toEqual(Int32Array.of(0, 1));
    writeVocAnnotation(join(root, 'Annotations', 'b.xml'), ann([], 50));
    await expect(readDetectionFolder(root)).rejects.toThrow(/b\.xml: the annotation is for a 50×30 image, .*b\.png is 40×30/);
    // a window at scale 2 from (10, 6), flipped: boxes scaled, shifted, clipped to the 16 px crop, mirrored; cut-away ones dropped
    const moved = windowBoxes(
      Float32Array.of(2, 3, 20, 25, 30, 0, 40, 9),
      { width: 40, height: 30 },
      { scale: 2, x0: 10, y0: 6, size: 16, flip: true },
    );
    expect(Array.from(moved.boxes)).toEqual([0, 0, 16, 16]);
    expect(moved.kept).toEqual([0]);
    expect(
      Array.from(
        windowBoxes(Float32Array.of(2, 3, 6, 5), { width: 40, height: 30 }, { scale: 1, x0: 0, y0: 0, size: 16, flip: true }).boxes,
      ),
    ).toEqual([10, 3, 14, 5]);
  });

  it('COCO files as mmdet reads them: xywh → corners, crowd boxes ignored, sub-pixel boxes skipped, bad entries named', async () => {
    const root = join(dir, 'coco');
    mkdirSync(join(root, 'images'), { recursive: true });
    writePng(join(root, 'images', 'a.png'), new Uint8Array(40 * 30 * 3), 40, 30);
    writePng(join(root, 'images', 'b.png'), new Uint8Array(40 * 30 * 3), 40, 30);
    const file = join(root, 'annotations.json');
    const write = (o: object) => writeFileSync(file, JSON.stringify(o));
    const base = {
      images: [
        { id: 7, file_name: 'a.png' },
        { id: 9, file_name: 'b.png' },
      ],
      categories: [
        { id: 3, name: 'ship' },
        { id: 1, name: 'tank' },
      ],
    };
    write({
      ...base,
      annotations: [
        { image_id: 7, category_id: 1, bbox: [2, 3, 10, 12] },
        { image_id: 7, category_id: 3, bbox: [30, 20, 20, 20], iscrowd: 1 },
        { image_id: 7, category_id: 3, bbox: [5, 5, 0.5, 4] },
      ],
    });
    const d = await readCocoDetection(file, join(root, 'images'));
    expect(d.classes.map((c) => c.name)).toEqual(['ship', 'tank']);
    expect(d.samples.map((s) => [s.name, Array.from(s.boxes!), Array.from(s.boxLabels!), Array.from(s.difficult!)])).toEqual([
      ['a', [2, 3, 12, 15, 30, 20, 40, 30], [1, 0], [0, 1]],
      ['b', [], [], []],
    ]);
    write({ ...base, annotations: [{ image_id: 7, category_id: 5, bbox: [1, 1, 2, 2] }] });
    await expect(readCocoDetection(file, join(root, 'images'))).rejects.toThrow(/annotations\[0\]: category_id 5 is not in "categories"/);
    write({ ...base, annotations: [{ image_id: 7, category_id: 1, bbox: [1, 1, 2] }] });
    await expect(readCocoDetection(file, join(root, 'images'))).rejects.toThrow(
      /annotations\[0\]\.bbox: expected \[x, y, width, height\], got \[1,1,2\]/,
    );
    write({ annotations: [] });
    await expect(readCocoDetection(file, join(root, 'images'))).rejects.toThrow(/expected a COCO detection file/);
  });

  it('windowBoxes moves a box exactly where cutWindow moves its pixels (scale 1.5, shifted, flipped or not)', () => {
    const [W, H] = [40, 30];
    const data = new Float32Array(3 * W * H);
    const box = [8, 6, 20, 16]; // bright pixels x 8..19, y 6..15
    for (let y = box[1]!; y < box[3]!; y++)
      for (let x = box[0]!; x < box[2]!; x++) for (let c = 0; c < 3; c++) data[c * W * H + y * W + x] = 1;
    const image = { width: W, height: H, channels: 3, data };
    for (const flip of [false, true]) {
      const w = { scale: 1.5, x0: 5, y0: 4, size: 24, flip };
      const cut = cutWindow(image, new Uint8Array(W * H), w, { mean: [0, 0, 0], std: [1, 1, 1] }).image;
      const [x1, y1, x2, y2] = Array.from(windowBoxes(Float32Array.from(box), image, w).boxes);
      for (let y = 0; y < 24; y++)
        for (let x = 0; x < 24; x++) {
          const inside = x + 0.5 > x1! + 0.5 && x + 0.5 < x2! - 0.5 && y + 0.5 > y1! + 0.5 && y + 0.5 < y2! - 0.5;
          const outside = x + 0.5 < x1! - 0.5 || x + 0.5 > x2! + 0.5 || y + 0.5 < y1! - 0.5 || y + 0.5 > y2! + 0.5;
          if (inside) expect(cut[y * 24 + x], `flip ${flip} (${x}, ${y}) inside`).toBe(1);
          if (outside) expect(cut[y * 24 + x], `flip ${flip} (${x}, ${y}) outside`).toBe(0);
        }
    }
  });

  it('the Dubai masks become a real detection set: every building pixel lands in exactly one component', async () => {
    expect(existsSync(dubai), `set SKYSENSE_SAMPLES to the sample folder (got ${samplesDir()})`).toBe(true);
    const out = join(dir, 'dubai-boxes');
    const summary = await segmentationToDetection(dubai, out, { classes: DUBAI_AERIAL_CLASSES, boxClasses: ['Building'], minPixels: 64 });
    expect(summary.images).toBe(9);
    expect(summary.objects).toBeGreaterThan(20);
    expect(readdirSync(join(out, 'Annotations'))).toHaveLength(9);
    const samples = readVocFolder(out, ['Building']);
    expect(samples.reduce((n, s) => n + s.labels.length, 0)).toBe(summary.objects);
    // independent count: tile 001 has 2779 building pixels (counted in images.test.ts); components cover them exactly
    const mask = await readMask(join(dubai, 'masks', 'tile1_image_part_001.png'), DUBAI_AERIAL_CLASSES);
    const parts = boxesFromMask(mask, 797, 644, { classes: [0], minPixels: 1 });
    expect(parts.reduce((n, p) => n + p.pixels, 0)).toBe(2779);
    for (const p of parts) expect(p.bbox[2] - p.bbox[0]).toBeGreaterThan(0);
    await expect(segmentationToDetection(dubai, out, { classes: DUBAI_AERIAL_CLASSES, boxClasses: ['Ship'] })).rejects.toThrow(
      /boxClasses: 'Ship' is not a class of the masks/,
    );
  });
});
