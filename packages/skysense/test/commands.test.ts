import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SafetensorsFile, decodePng } from '@skysense/core-tensor';
import { DUBAI_AERIAL_CLASSES } from '../src/index';

const bin = join(__dirname, '..', 'dist', 'bin.js');
const packages = join(__dirname, '..', '..');
const FIXTURES = [
  join(packages, 'swin', 'test', 'fixtures', 'parity', 'swinv2-small-a'),
  join(packages, 'swin', 'test', 'fixtures', 'parity', 'swinv2-padsmall-a'),
  join(packages, 'vit', 'test', 'fixtures', 'parity', 'vit-skysense-small-a'),
  join(packages, 'vit', 'test', 'fixtures', 'parity', 'vit-skysense-resize-a'),
  join(packages, 'temporal-fusion', 'test', 'fixtures', 'parity', 'upfusion-small-a'),
  join(packages, 'losses', 'test', 'fixtures', 'parity', 'dino-loss-a'),
  join(packages, 'losses', 'test', 'fixtures', 'parity', 'ibot-patch-loss-a'),
  join(packages, 'losses', 'test', 'fixtures', 'parity', 'itc-loss-a'),
  join(packages, 'core-tensor', 'test', 'fixtures', 'parity', 'sinkhorn-a'),
  join(packages, 'heads', 'test', 'fixtures', 'parity', 'uperhead-a'),
  join(packages, 'heads', 'test', 'fixtures', 'parity', 'fcnhead-a'),
  // op fixtures (config.json {"op", "kwargs"}): torchvision / mmdet box ops
  join(packages, 'core-tensor', 'test', 'fixtures', 'box-ops', 'roi-align-a'),
  join(packages, 'core-tensor', 'test', 'fixtures', 'box-ops', 'batched-nms-a'),
  // Faster R-CNN (mmdet's FPN, RPN and RoI head on given backbone features)
  join(packages, 'heads', 'test', 'fixtures', 'faster-rcnn', 'faster-rcnn-a'),
];
const samples = process.env.SKYSENSE_SAMPLES ?? join(process.cwd(), 'samples');
const s2Dir = join(samples, 'bigearthnet', 'v1-s1s2-example', 'BigEarthNet-S2', 'S2A_MSIL2A_20170613T101031_87_48');
const s1Dir = join(samples, 'bigearthnet', 'v1-s1s2-example', 'BigEarthNet-S1', 'S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48');
const dir = fs.mkdtempSync(join(tmpdir(), 'skysense-cmd-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: dir, env: { ...process.env, ...env } });
}

describe('skysense info', () => {
  it('lists the presets and describes one as a table, with keys, or as JSON', () => {
    const list = run(['info', '--list']).stdout;
    for (const p of [
      'skysense-hr',
      'skysense-hr-released',
      'skysense-s2',
      'skysense-s1',
      'skysense-fusion',
      'skysense-2b',
      'skysense-tiny',
      'swin-tiny',
      'swin-huge',
      'upernet-skysense-hr',
    ])
      expect(list).toContain(p);
    // one name, one model: skysense-hr is the swin package's preset (four output norms), the released file's layout has its own name
    const hr = JSON.parse(run(['info', 'skysense-hr-released', '--json']).stdout);
    expect(hr.parameters).toBe(655_074_704);
    expect(hr.tensors).toHaveLength(429);
    const downstream = JSON.parse(run(['info', 'skysense-hr', '--json']).stdout);
    expect(downstream.parameters).toBe(655_074_704 + 2 * (352 + 704 + 1408));
    expect(downstream.tensors.filter((t: { name: string }) => /^norm[0-3]\./.test(t.name))).toHaveLength(8);
    expect(hr.tensors[0]).toEqual({ name: 'patch_embed.projection.weight', shape: [352, 3, 4, 4] });
    expect(hr.modules.stages.parameters).toBeGreaterThan(6e8);
    expect(hr.total).toBe(hr.parameters + hr.bufferValues);
    const full = JSON.parse(run(['info', 'skysense-2b', '--json']).stdout);
    expect(full.total).toBe(2_078_438_544);
    expect(full.modules.glbank).toEqual({ parameters: 0, bufferValues: full.modules.glbank.bufferValues });
    expect(full.tensors.find((t: { name: string }) => t.name === 'glbank.prototypes').buffer).toBe(true);
    const sum = Object.values(full.modules as Record<string, { parameters: number; bufferValues: number }>).reduce(
      (a, m) => a + m.parameters + m.bufferValues,
      0,
    );
    expect(sum).toBe(full.total);
    const listed = JSON.parse(run(['info', '--list', '--json']).stdout);
    expect(listed.map((m: { name: string }) => m.name)).toContain('skysense-2b');
    const keys = run(['info', 'skysense-s2', '--keys']).stdout;
    expect(keys).toMatch(/layers\.23\.attn\.attn\.in_proj_weight {2}\[3072, 1024\]/);
    expect(run(['info', 'nope']).stderr).toMatch(/unknown model 'nope'; expected one of skysense-2b, skysense-tiny, skysense-hr/);
  });
});

describe('skysense info faster-rcnn-skysense-hr', () => {
  it('gives exactly the neck, rpn_head and roi_head keys and shapes of the DIOR config (architecture guide §6.4)', () => {
    const info = JSON.parse(run(['info', 'faster-rcnn-skysense-hr', '--json']).stdout) as { tensors: { name: string; shape: number[] }[] };
    const heads = info.tensors.filter((t) => !t.name.startsWith('backbone.')).map((t) => `${t.name} ${t.shape.join('x')}`);
    const expected = [
      ...[352, 704, 1408, 2816].flatMap((c, i) => [
        `neck.lateral_convs.${i}.conv.weight 256x${c}x1x1`,
        `neck.lateral_convs.${i}.conv.bias 256`,
      ]),
      ...[0, 1, 2, 3].flatMap((i) => [`neck.fpn_convs.${i}.conv.weight 256x256x3x3`, `neck.fpn_convs.${i}.conv.bias 256`]),
      'rpn_head.rpn_conv.weight 256x256x3x3',
      'rpn_head.rpn_conv.bias 256',
      'rpn_head.rpn_cls.weight 3x256x1x1',
      'rpn_head.rpn_cls.bias 3',
      'rpn_head.rpn_reg.weight 12x256x1x1',
      'rpn_head.rpn_reg.bias 12',
      'roi_head.bbox_head.shared_fcs.0.weight 1024x12544',
      'roi_head.bbox_head.shared_fcs.0.bias 1024',
      'roi_head.bbox_head.shared_fcs.1.weight 1024x1024',
      'roi_head.bbox_head.shared_fcs.1.bias 1024',
      'roi_head.bbox_head.fc_cls.weight 21x1024',
      'roi_head.bbox_head.fc_cls.bias 21',
      'roi_head.bbox_head.fc_reg.weight 80x1024',
      'roi_head.bbox_head.fc_reg.bias 80',
    ];
    expect(heads.sort()).toEqual(expected.sort());
    expect(info.tensors.filter((t) => t.name.startsWith('backbone.norm')).map((t) => t.name)).toHaveLength(8);
  });
});

describe('skysense verify / forward', () => {
  it.each(FIXTURES)('verify passes on %s', (fixture) => {
    const r = run(['verify', fixture]);
    expect(r.stdout).toMatch(/\d+ passed, 0 failed/);
    expect(r.status).toBe(0);
  });

  it('forward writes every output under the fixture’s key names and shapes', () => {
    for (const fixture of [
      FIXTURES[0]!,
      FIXTURES[4]!,
      FIXTURES[5]!,
      FIXTURES[6]!,
      FIXTURES[7]!,
      FIXTURES[8]!,
      FIXTURES[9]!,
      FIXTURES[10]!,
      FIXTURES[11]!,
      FIXTURES[12]!,
    ]) {
      const out = join(dir, 'forward.safetensors');
      expect(run(['forward', '--fixture', fixture, '--output', out]).status).toBe(0);
      const got = SafetensorsFile.open(out);
      const want = SafetensorsFile.open(join(fixture, 'output.safetensors'));
      expect(got.keys().sort()).toEqual(want.keys().sort());
      for (const k of want.keys()) expect(got.shape(k)).toEqual(want.shape(k));
      got.close();
      want.close();
    }
  });

  it('--weights takes a .pth (the released S2 layout): ctpe is reported as harmless and skipped', () => {
    const r = run(['verify', FIXTURES[2]!, '--weights', join(packages, 'vit', 'test', 'fixtures', 'release_s2.pth')]);
    expect(r.stdout).toMatch(/ctpe {2}\[harmless/);
    expect(r.stdout).toMatch(/4 passed, 0 failed/);
  });
});

describe('skysense demo and embed', () => {
  it('demo runs the BigEarthNet pairs through the tiny preset and writes pictures and a summary', () => {
    const r = run(['demo', '--out', 'demo'], { SKYSENSE_SAMPLES: samples });
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(fs.readFileSync(join(dir, 'demo', 'summary.json'), 'utf8'));
    expect(summary.samples).toHaveLength(6);
    for (const s of summary.samples) {
      expect(s.files.sort()).toEqual(['fused.safetensors', 'pca.png', 'prototypes.png', 's2-rgb.png']);
      for (const f of s.files) expect(fs.statSync(join(dir, 'demo', s.name, f)).size).toBeGreaterThan(100);
      expect(s.fusedShape).toEqual([1, 32, 120, 120]);
    }
    expect(summary.samples[0].dayOfYear).toEqual([164]);
    expect(r.stdout).toMatch(/\[6\/6\]/);
  });

  it('demo without samples says how to get them and runs on a generated scene; a --samples folder that does not exist is refused', () => {
    const r = run(['demo', '--out', 'demo-offline'], { SKYSENSE_SAMPLES: join(dir, 'no-samples') });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/no BigEarthNet samples under .*skysense samples/);
    expect(fs.existsSync(join(dir, 'demo-offline', 'generated-scene', 'pca.png'))).toBe(true);
    const bad = run(['demo', '--out', 'demo-bad', '--samples', join(dir, 'no-samples')]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--samples .*no-samples: no such folder/);
    expect(fs.existsSync(join(dir, 'demo-bad'))).toBe(false);
  });

  it('embed runs on user files and writes the fused map and pictures', () => {
    const r = run(['embed', '--s2', s2Dir, '--s1', s1Dir, '--out', 'emb']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/sample: fused \[1, 32, 120, 120\] at lat 48\.22/);
    const f = SafetensorsFile.open(join(dir, 'emb', 'sample', 'fused.safetensors'));
    expect(f.keys()).toEqual(['fused', 'with_geo_context']);
    f.close();
  });

  it('embed --manifest: sample names are made safe and cannot leave --out; duplicates are refused before anything is written', () => {
    const manifest = (name: string, samplesList: object[]) => {
      fs.writeFileSync(join(dir, name), JSON.stringify({ samples: samplesList }));
      return name;
    };
    const escape = run([
      'embed',
      '--manifest',
      manifest('escape.json', [{ name: '../../escape', s1: [{ folder: s1Dir }] }]),
      '--out',
      'emb-escape',
    ]);
    expect(escape.status, escape.stderr).toBe(0);
    expect(fs.existsSync(join(dir, 'emb-escape', '_.._escape', 'fused.safetensors'))).toBe(true);
    expect(fs.existsSync(join(dir, '..', 'escape'))).toBe(false);
    const twice = run([
      'embed',
      '--manifest',
      manifest('twice.json', [
        { name: 'a/b', s1: [{ folder: s1Dir }] },
        { name: 'a_b', s1: [{ folder: s1Dir }] },
      ]),
      '--out',
      'emb-twice',
    ]);
    expect(twice.status).toBe(2);
    expect(twice.stderr).toMatch(/E_ARG: inputs 'a\/b' and 'a_b' would both be written as a_b\.\*; give them distinct names/);
    expect(fs.existsSync(join(dir, 'emb-twice'))).toBe(false);
  });

  it('bad input: one line naming the file and the problem, exit code 2, nothing written', () => {
    const missing = run(['embed', '--s2', join(dir, 'nowhere'), '--out', 'bad1']);
    expect(missing.status).toBe(2);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toMatch(/nowhere: no such folder/);
    const six = join(samples, 'bigearthnet', 'v2-s2-6band', 'train', 'sample_000003');
    const bands = run(['embed', '--s2', six, '--out', 'bad2']);
    expect(bands.status).toBe(2);
    expect(bands.stderr).toMatch(/sample_000003: missing Sentinel-2 band\(s\) B5, B6, B7, B8A/);
    const lat = run(['embed', '--s1', s1Dir, '--lat', '95', '--lon', '0', '--out', 'bad3']);
    expect(lat.status).toBe(2);
    expect(lat.stderr).toMatch(/^skysense: E_ARG: lat: expected a number in \[-90, 90\], got 95\n$/);
    const lon = run(['embed', '--s1', s1Dir, '--lat', '45', '--lon', '500', '--out', 'bad4']);
    expect(lon.status).toBe(2);
    expect(lon.stderr).toMatch(/lon: expected a number in \[-180, 360\], got 500/);
    const half = run(['embed', '--s1', s1Dir, '--lat', '45', '--out', 'bad5']);
    expect(half.status).toBe(2);
    expect(half.stderr).toMatch(/--lat and --lon: give both or neither, got only --lat/);
    expect(fs.existsSync(join(dir, 'bad1'))).toBe(false);
    expect(fs.existsSync(join(dir, 'bad4')) || fs.existsSync(join(dir, 'bad5'))).toBe(false);
    const verbose = run(['embed', '--s2', join(dir, 'nowhere'), '--out', 'bad4', '--verbose']);
    expect(verbose.stderr).toMatch(/at /);
  });
});

describe('skysense finetune / predict / eval (Dubai aerial samples)', () => {
  it('fine-tunes a few steps, writes the model, metrics, predictions; predict and eval read the model back', () => {
    const r = run(['finetune', '--steps', '3', '--batch-size', '2', '--hold-out', '1', '--out', 'ft', '--checkpoint-every', '2'], {
      SKYSENSE_SAMPLES: samples,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /fine-tuning upernet-skysense-tiny \(seg\) on 8 samples \(1 held out: tile1_image_part_009\), 6 classes, 3 steps × 2 crops of 128 px, random-initialised encoder/,
    );
    expect(r.stdout).toMatch(/step 3\/3 loss \d+\.\d+ \(decode .*samples\/s · ETA 0 s/);
    expect(r.stdout).toMatch(/OA \d+\.\d\d {2}mIoU \d+\.\d\d {2}mF1 \d+\.\d\d/);
    const ev = JSON.parse(fs.readFileSync(join(dir, 'ft', 'eval.json'), 'utf8'));
    expect(ev.samples).toEqual(['tile1_image_part_009']);
    expect(
      fs
        .readFileSync(join(dir, 'ft', 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n'),
    ).toHaveLength(3);
    const mask = decodePng(fs.readFileSync(join(dir, 'ft', 'predictions', 'tile1_image_part_009.png')));
    expect([mask.width, mask.height]).toEqual([797, 644]);
    const colours = new Set(DUBAI_AERIAL_CLASSES.map((c) => c.color.join()));
    for (let i = 0; i < mask.width * mask.height; i += 997)
      expect(colours.has([...mask.data.subarray(3 * i, 3 * i + 3)].join())).toBe(true);
    expect(decodePng(fs.readFileSync(join(dir, 'ft', 'predictions', 'tile1_image_part_009.side.png'))).width).toBe(3 * 797 + 2 * 8);

    const image = join(samples, 'dubai-aerial-segmentation', 'images', 'tile1_image_part_009.jpg');
    const p = run(['predict', image, '--model', join('ft', 'model.safetensors'), '--out', 'pred']);
    expect(p.status, p.stderr).toBe(0);
    expect(fs.readFileSync(join(dir, 'pred', 'tile1_image_part_009.png'))).toEqual(
      fs.readFileSync(join(dir, 'ft', 'predictions', 'tile1_image_part_009.png')),
    );
    const e = run(['eval', '--model', join('ft', 'model.safetensors'), '--last', '1'], { SKYSENSE_SAMPLES: samples });
    expect(e.status, e.stderr).toBe(0);
    expect(e.stdout).toContain(`mIoU ${(100 * ev.mIoU).toFixed(2)}`);
    const badLast = run(['eval', '--model', join('ft', 'model.safetensors'), '--last', 'abc'], { SKYSENSE_SAMPLES: samples });
    expect(badLast.status).toBe(2);
    expect(badLast.stderr).toMatch(/E_ARG: last: expected an integer >= 1, got NaN/);

    // a resumed run keeps its settings: another batch size or learning rate is refused before anything is written
    const ckptBytes = fs.readFileSync(join(dir, 'ft', 'checkpoint.safetensors'));
    const changed = run(['finetune', '--batch-size', '5', '--lr', '0.5', '--out', 'ft', '--resume'], { SKYSENSE_SAMPLES: samples });
    expect(changed.status).toBe(2);
    expect(changed.stderr).toMatch(/E_ARG: --resume: batchSize 5 \(the run's: 2\) — a resumed run keeps its settings/);
    const lr = run(['finetune', '--lr', '0.5', '--out', 'ft', '--resume'], { SKYSENSE_SAMPLES: samples });
    expect(lr.stderr).toMatch(/E_ARG: --resume: lr 0\.5 \(the run's: (default|[\d.e-]+)\)/);
    // a fresh run into the run folder is refused (the checkpoint and the log are kept), --overwrite is the way to replace it
    const fresh = run(['finetune', '--steps', '2', '--out', 'ft'], { SKYSENSE_SAMPLES: samples });
    expect(fresh.status).toBe(2);
    expect(fresh.stderr).toMatch(/E_EXISTS: --out ft: holds a run \(.*\); pass --resume to continue it or --overwrite to replace it/);
    const runJson = fs.readFileSync(join(dir, 'ft', 'run.json'));
    const crop = run(['finetune', '--crop', '-5', '--out', 'ft'], { SKYSENSE_SAMPLES: samples });
    expect(crop.stderr).toMatch(/E_ARG: crop: expected an integer >= 8, got -5/);
    const stride = run(['finetune', '--stride', '0', '--out', 'ft', '--resume'], { SKYSENSE_SAMPLES: samples });
    expect(stride.stderr).toMatch(/E_ARG: stride: expected an integer >= 1, got 0/);
    expect(fs.readFileSync(join(dir, 'ft', 'checkpoint.safetensors'))).toEqual(ckptBytes);
    expect(fs.readFileSync(join(dir, 'ft', 'run.json'))).toEqual(runJson);
    expect(
      fs
        .readFileSync(join(dir, 'ft', 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n'),
    ).toHaveLength(3);
    // --steps extends a finished run
    const resumed = run(['finetune', '--out', 'ft', '--resume', '--steps', '4', '--task', 'seg', '--hold-out', '1'], {
      SKYSENSE_SAMPLES: samples,
    });
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(/resumed .*checkpoint\.safetensors at step 3 of 4/);
    expect(resumed.stdout).toMatch(/on 8 samples \(1 held out: tile1_image_part_009\).* 4 steps × 2 crops/);
    expect(resumed.stdout).toMatch(/step 4\/4 loss/);
    expect(
      fs
        .readFileSync(join(dir, 'ft', 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n'),
    ).toHaveLength(4);
    const shorter = run(['finetune', '--out', 'ft', '--resume', '--steps', '2'], { SKYSENSE_SAMPLES: samples });
    expect(shorter.stderr).toMatch(/steps: the run is already at step 4 of 4, got 2 \(give more to extend it\)/);
    expect(fs.existsSync(join(dir, 'ft', '.skysense-run.lock'))).toBe(false);
    const cls = run(['finetune', '--task', 'cls', '--out', 'ft-cls']);
    expect(cls.status).toBe(2);
    expect(cls.stderr).toMatch(/--data: task cls needs a data folder \(one sub-folder of images per class\)/);
    const wrong = run(['finetune', '--task', 'cls', '--preset', 'upernet-skysense-tiny', '--data', dir, '--out', 'ft-cls']);
    expect(wrong.stderr).toMatch(/expected one sub-folder per class|preset 'upernet-skysense-tiny' is a seg model/);
    const zero = run(['finetune', '--batch-size', '0', '--out', 'ft-zero'], { SKYSENSE_SAMPLES: samples });
    expect(zero.status).toBe(2);
    expect(zero.stderr).toMatch(/batchSize: expected an integer >= 1, got 0/);
    for (const bad of [
      ['--stride', '0'],
      ['--crop', '-5'],
      ['--lr', '-1'],
      ['--steps', 'abc'],
      ['--layer-decay', '2'],
    ]) {
      const r = run(['finetune', ...bad, '--out', 'ft-bad'], { SKYSENSE_SAMPLES: samples });
      expect(r.status, bad.join(' ')).toBe(2);
    }
    expect(fs.existsSync(join(dir, 'ft-zero')) || fs.existsSync(join(dir, 'ft-bad'))).toBe(false);
    const notModel = run(['eval', '--model', join(packages, 'heads', 'test', 'fixtures', 'parity', 'uperhead-a', 'weights.safetensors')]);
    expect(notModel.status).toBe(2);
    expect(notModel.stderr).toMatch(/not a SkySense fine-tuned model/);
  });
});
