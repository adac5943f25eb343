/** The heads against outputs of the original mmseg code (fixtures uperhead-a and fcnhead-a, tolerance 1e-4 as their README states). */
import { beforeAll, describe, expect, it } from 'vitest';
import { ModuleDict, initBackend, loadSafetensors, tf, type BackendKind, type Tensor } from '@skysense/core-tensor';
import { FCNHead, UPerHead, resizeTo } from '../src/index';
import { expectNoLeak, maxAbsDiff, parityBackends, parityFixture } from '@skysense/test-utils';

const load = (name: string, part: string) => loadSafetensors(parityFixture(__dirname, name).path(`${part}.safetensors`));
const config = (name: string) => parityFixture(__dirname, name).config();
const maxAbs = maxAbsDiff;
const inputsOf = (m: Map<string, Tensor>) => ['in0', 'in1', 'in2', 'in3'].map((k) => m.get(k)!);

/** The four fcnhead-a variants under their tags, so the fixture's tagged keys load directly. */
const fcnVariants = () =>
  new ModuleDict(
    (['n1_cat0', 'n1_cat1', 'n2_cat0', 'n2_cat1'] as const).map((tag) => [
      tag,
      new FCNHead({ inChannels: 24, inIndex: 2, channels: 16, numClasses: 5, numConvs: Number(tag[1]), concatInput: tag.endsWith('1') }),
    ]),
  );

describe.each(parityBackends<BackendKind>())('heads against mmseg on %s', (backend) => {
  beforeAll(() => initBackend({ force: backend }));

  it('UPerHead (uperhead-a): same keys and shapes as the state dict; psp_out, feats, logits and the resized logits within 1e-4', () => {
    const weights = load('uperhead-a', 'weights');
    const inputs = load('uperhead-a', 'input');
    const out = load('uperhead-a', 'output');
    const head = new UPerHead({ inChannels: [8, 16, 24, 32], channels: 16, numClasses: 5, poolScales: [1, 2, 3, 6] }).eval();
    const keys = config('uperhead-a').state_dict_keys as { key: string; shape: number[] }[];
    expect(new Map([...head.stateShapes()].map(([k, s]) => [k, [...s]]))).toEqual(new Map(keys.map((k) => [k.key, k.shape])));
    expect(head.loadStateDict(weights).loaded).toHaveLength(weights.size);
    const xs = inputsOf(inputs);
    const psp = head.pspForward(xs[3]!);
    const feats = head.forwardFeature(xs);
    const logits = head.forward(xs);
    const resized = resizeTo(logits, [128, 96]);
    expect(maxAbs(psp, out.get('psp_out')!)).toBeLessThanOrEqual(1e-4);
    expect(maxAbs(feats, out.get('feats')!)).toBeLessThanOrEqual(1e-4);
    expect(maxAbs(logits, out.get('logits')!)).toBeLessThanOrEqual(1e-4);
    expect(maxAbs(resized, out.get('logits_resized')!)).toBeLessThanOrEqual(1e-4);
    expectNoLeak(() => head.forward(xs).dispose());
    tf.dispose([psp, feats, logits, resized, ...weights.values(), ...inputs.values(), ...out.values()]);
    head.dispose();
  });

  it('FCNHead (fcnhead-a, num_convs 1/2 × concat_input off/on): feats and logits within 1e-4', () => {
    const weights = load('fcnhead-a', 'weights');
    const inputs = load('fcnhead-a', 'input');
    const out = load('fcnhead-a', 'output');
    const variants = fcnVariants().eval();
    expect(variants.loadStateDict(weights).loaded).toHaveLength(weights.size);
    for (const [tag, head] of variants.entries()) {
      const xs = inputsOf(inputs);
      const feats = head.forwardFeature(xs);
      const logits = head.forward(xs);
      expect(maxAbs(feats, out.get(`${tag}.feats`)!), tag).toBeLessThanOrEqual(1e-4);
      expect(maxAbs(logits, out.get(`${tag}.logits`)!), tag).toBeLessThanOrEqual(1e-4);
      tf.dispose([feats, logits]);
    }
    tf.dispose([...weights.values(), ...inputs.values(), ...out.values()]);
    variants.dispose();
  });
});
