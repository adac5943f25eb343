import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf } from '@skysense/core-tensor';
import { BEN19_CLASSES, BEN19_FROM_BEN43, BEN43_CLASSES, indexBigEarthNet, samplesDir } from '@skysense/data';
import { loadFinetuned, runEval, runFinetune, runPredict } from '../src/index';

const root = join(samplesDir(), 'bigearthnet', 'v1-s1s2-example');
const dir = mkdtempSync(join(tmpdir(), 'skysense-mm-'));
const quiet = () => {};

/** A BigEarthNet-MM split of some of the sample pairs (symlinked S2 and S1 patch folders). */
function split(name: string, pick: (i: number) => boolean): string {
  const out = join(dir, name);
  for (const sub of ['BigEarthNet-S2', 'BigEarthNet-S1']) {
    mkdirSync(join(out, sub), { recursive: true });
    const s2Names = readdirSync(join(root, 'BigEarthNet-S2')).sort();
    readdirSync(join(root, sub))
      .sort()
      .forEach((p, i) => {
        const idx = sub === 'BigEarthNet-S2' ? i : s2Names.findIndex((s) => s.slice(-5) === p.slice(-5));
        if (pick(idx)) symlinkSync(join(root, sub, p), join(out, sub, p));
      });
  }
  return out;
}
const lossesOf = (out: string) =>
  readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { loss: number }).loss);

describe('multi-modal classification (BigEarthNet-MM: S2 + S1 → fused → multi-label)', () => {
  let a: string;
  let b: string;
  beforeAll(async () => {
    await initBackend();
    [a, b] = [split('a', (i) => i < 4), split('b', (i) => i >= 4)];
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('streams batches from worker threads exactly as the in-memory loader, and resumes exactly', async () => {
    const common = { task: 'mm-cls', data: a, steps: 4, batchSize: 2, holdOut: 1, checkpointEvery: 2, seed: 2, log: quiet } as const;
    const before = tf.memory().numTensors;
    await runFinetune({ ...common, out: join(dir, 'stream'), loader: 'stream', workers: 1 });
    await runFinetune({ ...common, out: join(dir, 'memory'), loader: 'memory' });
    expect(tf.memory().numTensors).toBe(before);
    const stream = lossesOf(join(dir, 'stream'));
    expect(stream).toHaveLength(4);
    expect(stream.every(Number.isFinite)).toBe(true);
    expect(lossesOf(join(dir, 'memory'))).toEqual(stream);
    const crash = (line: string) => {
      if (line.startsWith('step 3/')) throw new Error('simulated crash');
    };
    await expect(runFinetune({ ...common, out: join(dir, 'crash'), workers: 1, log: crash })).rejects.toThrow(/simulated crash/);
    await runFinetune({ ...common, out: join(dir, 'crash'), workers: 1, resume: true });
    expect(lossesOf(join(dir, 'crash'))).toEqual(stream);
    const evaluation = JSON.parse(readFileSync(join(dir, 'stream', 'eval.json'), 'utf8'));
    expect(evaluation.classes).toEqual(BEN19_CLASSES);
    expect(Object.keys(evaluation)).toEqual(expect.arrayContaining(['mAP', 'microF1', 'macroF1', 'f1', 'ap']));
    expect(readdirSync(join(dir, 'stream', 'predictions')).sort()).toEqual(['S2A_MSIL2A_20171221T112501_56_35.bars.png', 'classes.png']);
  });

  it("scores another split on the run's class list, not on the labels that split holds", async () => {
    const model = join(dir, 'stream', 'model.safetensors');
    const { classes } = loadFinetuned(model);
    const ben19Of = (labels: string[]) => new Set(labels.map((l) => BEN19_CLASSES[BEN19_FROM_BEN43[BEN43_CLASSES.indexOf(l)]!]));
    const present = new Set(
      indexBigEarthNet(b, { classes: 'ben43' }).entries.flatMap((e) => [...ben19Of(BEN43_CLASSES.filter((_, k) => e.targets[k]))]),
    );
    const r = await runEval({ model, data: b, log: quiet });
    const ap = r.scores.ap as number[];
    expect(ap).toHaveLength(19);
    // AP is defined exactly for the run's classes that split b has positives of (0.2 re-derived the list from b's labels)
    expect(classes.filter((_, k) => !Number.isNaN(ap[k]!)).map((c) => c.name)).toEqual(BEN19_CLASSES.filter((n) => present.has(n)));
    const written = await runPredict({ model, inputs: [b], out: join(dir, 'pred'), log: quiet });
    const json = JSON.parse(readFileSync(written.at(-1)!, 'utf8'));
    expect(Object.keys(json)).toHaveLength(2);
    expect(Object.keys(Object.values(json)[0] as object)).toEqual(BEN19_CLASSES);
  });

  it('multilabel (S2 only) with the 43 classes keeps them in the run; options are checked first', async () => {
    const out = join(dir, 'ben43');
    await runFinetune({ task: 'multilabel', data: join(a, 'BigEarthNet-S2'), classes: 'ben43', steps: 1, batchSize: 2, out, log: quiet });
    expect(loadFinetuned(join(out, 'model.safetensors')).classes.map((c) => c.name)).toEqual(BEN43_CLASSES);
    const r = await runEval({ model: join(out, 'model.safetensors'), data: join(b, 'BigEarthNet-S2'), log: quiet });
    expect((r.scores.ap as number[]).length).toBe(43);
    await expect(runFinetune({ task: 'mm-cls', out: join(dir, 'x'), loader: 'disk' as never, log: quiet })).rejects.toThrow(
      /loader: expected 'stream' or 'memory', got "disk"/,
    );
    await expect(runFinetune({ task: 'mm-cls', out: join(dir, 'x'), workers: -1, log: quiet })).rejects.toThrow(/workers/);
  });
});
