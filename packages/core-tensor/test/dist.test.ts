/** The published bundles (not only the sources vitest compiles) must compute gradients. */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const dist = join(__dirname, '..', 'dist');
const program = (load: string) => `
${load}
(async () => {
  const r = await m.initBackend();
  const lin = new m.Linear(3, 2);
  lin.weight.assign(m.tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]));
  lin.bias.assign(m.tf.tensor1d([0, 0]));
  const conv = new m.Conv2d(1, 1, 3, { padding: 1 });
  const x = m.tf.ones([1, 3]);
  const { value, grads } = m.valueAndGrads([lin, conv].flatMap((mod) => mod.namedParameters()), () =>
    m.tf.add(m.tf.sum(m.gelu(lin.forward(x))), m.tf.sum(conv.forward(m.tf.ones([1, 1, 4, 4])))));
  const gw = Array.from(grads.get(lin.weight).dataSync());
  console.log(JSON.stringify({ backend: r.kind, n: grads.size, gw, loss: value.dataSync()[0] }));
})().catch((e) => { console.error(e); process.exit(1); });
`;

describe.each([
  ['CommonJS', `const m = require(${JSON.stringify(join(dist, 'index.cjs'))});`, []],
  ['ES module', `let m; const ready = import(${JSON.stringify(join(dist, 'index.js'))}).then((x) => { m = x; });`, ['--input-type=module']],
])('built %s bundle', (_kind, load, flags) => {
  it('computes gradients through Linear, GELU (erf) and Conv2d', () => {
    expect(existsSync(join(dist, 'index.cjs')), 'run the build first (npm test does it through turbo)').toBe(true);
    const code = load.includes('ready') ? `${load}\nawait ready;\n${program('')}` : program(load);
    const out = JSON.parse(
      execFileSync(process.execPath, [...(flags as string[]), '-e', code], { encoding: 'utf8' })
        .trim()
        .split('\n')
        .pop()!,
    );
    expect(out.n).toBe(4);
    // d/dW of Σ gelu(W·1) = gelu'(row sum) · 1; row sums 6 and 15 → gelu' ≈ 1
    expect(out.gw.every((g: number) => Math.abs(g - 1) < 1e-6)).toBe(true);
    expect(out.loss).toBeGreaterThan(20);
  });
});
