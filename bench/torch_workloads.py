"""The compare bench's workloads in PyTorch (2 threads), printed as JSON {workload: median ms}.
Compact modules with the same shapes and operations as SkySense's (mmseg ViT-L layer, mmcls Swin-V2
block with cosine attention + continuous position bias, post-norm merging), random weights.
BENCH_TORCH_DEVICE=cuda runs them on the GPU (timed with torch.cuda.synchronize).

`torch_workloads.py --onnx DIR [MxKxN,…]` instead exports the inference workloads and GEMMs of the
given shapes (one nn.Linear each: rows × in → out) with torch.onnx.export (opset 17, eval, seed 0 per module; models over
2 GB with external data, one folder per model) and writes each one's input and PyTorch's output as
raw float32 beside it, listed in DIR/manifest.json, for bench/ort.ts to run in ONNX Runtime."""
import json, math, os, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(2)
torch.manual_seed(0)
REPS = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 5
DEVICE = torch.device(os.environ.get('BENCH_TORCH_DEVICE', 'cpu'))


def sync():
    if DEVICE.type == 'cuda':
        torch.cuda.synchronize()


def median_ms(fn, reps=REPS):
    fn()
    sync()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t) * 1000)
    return sorted(times)[len(times) // 2]


class VitLayer(nn.Module):
    def __init__(self, d=1024, h=16):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, h)
        self.ffn = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):  # [B, N, C], mmcv passes sequence-first to torch's MHA
        y = self.ln1(x).transpose(0, 1)
        x = x + self.attn(y, y, y, need_weights=False)[0].transpose(0, 1)
        return x + self.ffn(self.ln2(x))


class WindowAttnV2(nn.Module):
    def __init__(self, c, h, ws=8):
        super().__init__()
        self.h, self.ws = h, ws
        self.qkv = nn.Linear(c, 3 * c, bias=False)
        self.q_bias, self.v_bias = nn.Parameter(torch.zeros(c)), nn.Parameter(torch.zeros(c))
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(h, 1, 1)))
        self.cpb = nn.Sequential(nn.Linear(2, 512), nn.ReLU(), nn.Linear(512, h, bias=False))
        r = torch.arange(-(ws - 1), ws, dtype=torch.float32)
        t = torch.stack(torch.meshgrid(r, r, indexing='ij')).permute(1, 2, 0).reshape(-1, 2) / (ws - 1) * 8
        self.register_buffer('table', torch.sign(t) * torch.log2(t.abs() + 1) / 3)
        c_ = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing='ij')).flatten(1)
        rel = (c_[:, :, None] - c_[:, None, :]).permute(1, 2, 0) + ws - 1
        self.register_buffer('index', rel[..., 0] * (2 * ws - 1) + rel[..., 1])
        self.proj = nn.Linear(c, c)

    def forward(self, x, mask=None):
        b, n, c = x.shape
        qkv = F.linear(x, self.qkv.weight, torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias]))
        q, k, v = qkv.reshape(b, n, 3, self.h, c // self.h).permute(2, 0, 3, 1, 4)
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * torch.clamp(self.logit_scale, max=math.log(100)).exp()
        bias = self.cpb(self.table)[self.index.view(-1)].view(n, n, -1).permute(2, 0, 1)
        attn = attn + 16 * torch.sigmoid(bias)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(b // nw, nw, self.h, n, n) + mask[None, :, None]).view(b, self.h, n, n)
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c))


class SwinBlock(nn.Module):
    def __init__(self, c, h, shift, ws=8):
        super().__init__()
        self.ws, self.shift = ws, shift
        self.attn = WindowAttnV2(c, h, ws)
        self.norm1, self.norm2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.ffn = nn.Sequential(nn.Linear(c, 4 * c), nn.GELU(), nn.Linear(4 * c, c))

    def forward(self, x):  # [B, H, W, C]
        b, H, W, c = x.shape
        ws = self.ws
        s = self.shift if min(H, W) > ws else 0
        y = torch.roll(x, (-s, -s), (1, 2)) if s else x
        mask = None
        if s:
            img = torch.zeros(H, W, device=x.device)
            cnt = 0
            for hs in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
                for wsl in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
                    img[hs, wsl] = cnt
                    cnt += 1
            mw = img.view(H // ws, ws, W // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)
            mask = (mw[:, None] - mw[:, :, None]).ne(0).float() * -100.0
        win = y.view(b, H // ws, ws, W // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
        a = self.attn(win, mask).view(b, H // ws, W // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, H, W, c)
        if s:
            a = torch.roll(a, (s, s), (1, 2))
        x = x + self.norm1(a)
        return x + self.norm2(self.ffn(x))


class Merge(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.reduction, self.norm = nn.Linear(4 * c, 2 * c, bias=False), nn.LayerNorm(2 * c)

    def forward(self, x):
        b, H, W, c = x.shape
        x = x.view(b, H // 2, 2, W // 2, 2, c).permute(0, 1, 3, 5, 2, 4).reshape(b, H // 2, W // 2, 4 * c)
        return self.norm(self.reduction(x))


class Swin(nn.Module):
    """Swin V2 (mmcls layout); `outs` = the stages whose normed maps are returned (NCHW), else the last."""

    def __init__(self, embed=352, depths=(2, 2, 18, 2), heads=(8, 16, 32, 64), ws=8, outs=None):
        super().__init__()
        self.patch, self.pnorm = nn.Conv2d(3, embed, 4, 4), nn.LayerNorm(embed)
        self.stages, self.norms, self.outs = nn.ModuleList(), nn.ModuleList(), outs
        c = embed
        for i, (d, h) in enumerate(zip(depths, heads)):
            mods = [Merge(c)] if i else []
            c = c * 2 if i else c
            mods += [SwinBlock(c, h, ws // 2 if j % 2 else 0, ws) for j in range(d)]
            self.stages.append(nn.Sequential(*mods))
            self.norms.append(nn.LayerNorm(c))

    def forward(self, x):
        x = self.pnorm(self.patch(x).permute(0, 2, 3, 1))
        maps = []
        for i, s in enumerate(self.stages):
            x = s(x)
            if self.outs and i in self.outs:
                maps.append(self.norms[i](x).permute(0, 3, 1, 2))
        return maps if self.outs else self.norms[-1](x)


class VitS2(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(10, 1024, 4, 4)
        self.cls, self.pos = nn.Parameter(torch.zeros(1, 1, 1024)), nn.Parameter(torch.zeros(1, 257, 1024))
        self.layers = nn.Sequential(*[VitLayer() for _ in range(24)])

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)
        return self.layers(torch.cat([self.cls.expand(t.shape[0], -1, -1), t], 1) + self.pos)


def fwd(m, x):
    with torch.no_grad():
        return median_ms(lambda: m(x))


def fwd_bwd(m, x):
    def step():
        m.zero_grad()
        m(x).square().mean().backward()
    return median_ms(step)


def export_onnx(out_dir):
    """The ONNX models, inputs and PyTorch outputs listed in out_dir/manifest.json (see the module doc)."""
    def seeded(make):
        torch.manual_seed(0)
        return make().eval()

    cases = [
        ('matmul 1024³', lambda: MatMul(), [(1024, 1024), (1024, 1024)]),
        ('ViT-L block fwd', VitLayer, [(1, 257, 1024)]),
        ('Swin-H stage-0 block fwd', lambda: SwinBlock(352, 8, 4), [(1, 64, 64, 352)]),
        ('Swin-H forward 256²', Swin, [(1, 3, 256, 256)]),
        ('S2 ViT-L forward 64²', VitS2, [(1, 10, 64, 64)]),
    ] + [(f'gemm {m}×{k}→{n}', (lambda k=k, n=n: nn.Linear(k, n)), [(m, k)]) for m, k, n in GEMM_SHAPES]
    manifest = []
    for i, (name, make, shapes) in enumerate(cases):
        folder = os.path.join(out_dir, f'w{i}')
        os.makedirs(folder, exist_ok=True)
        model = seeded(make)
        torch.manual_seed(1)
        xs = tuple(torch.randn(*s) for s in shapes)
        with torch.no_grad():
            y = model(*xs)
            torch.onnx.export(model, xs, os.path.join(folder, 'model.onnx'), opset_version=17,
                              input_names=[f'x{j}' for j in range(len(xs))], output_names=['y'])
        for j, x in enumerate(xs):
            x.numpy().astype('float32').tofile(os.path.join(folder, f'x{j}.bin'))
        y.numpy().astype('float32').tofile(os.path.join(folder, 'y.bin'))
        manifest.append({'name': name, 'model': f'w{i}/model.onnx', 'inputs': [{'name': f'x{j}', 'file': f'w{i}/x{j}.bin', 'shape': list(s)} for j, s in enumerate(shapes)],
                         'output': {'file': f'w{i}/y.bin', 'shape': list(y.shape)}})
        print(f'exported {name}', file=sys.stderr, flush=True)
    with open(os.path.join(out_dir, 'manifest.json.tmp'), 'w') as f:
        json.dump({'torch': torch.__version__, 'opset': 17, 'workloads': manifest}, f, indent=1)
    os.replace(os.path.join(out_dir, 'manifest.json.tmp'), os.path.join(out_dir, 'manifest.json'))


class MatMul(nn.Module):
    def forward(self, a, b):
        return a @ b


if len(sys.argv) > 2 and sys.argv[1] == '--onnx':
    GEMM_SHAPES = [tuple(int(d) for d in s.split('x')) for s in sys.argv[3].split(',')] if len(sys.argv) > 3 else []
    export_onnx(sys.argv[2])
    sys.exit(0)

results = {}
randn = lambda *shape: torch.randn(*shape, device=DEVICE)
a, b = randn(1024, 1024), randn(1024, 1024)
results['matmul 1024³'] = median_ms(lambda: a @ b)
vit = VitLayer().to(DEVICE)
xv = randn(1, 257, 1024)
results['ViT-L block fwd'] = fwd(vit, xv)
results['ViT-L block fwd+bwd'] = fwd_bwd(vit, xv)
blk = SwinBlock(352, 8, 4).to(DEVICE)
xs = randn(1, 64, 64, 352)
results['Swin-H stage-0 block fwd'] = fwd(blk, xs)
results['Swin-H stage-0 block fwd+bwd'] = fwd_bwd(blk, xs)
results['Swin-H forward 256²'] = fwd(Swin().to(DEVICE).eval(), randn(1, 3, 256, 256))
results['S2 ViT-L forward 64²'] = fwd(VitS2().to(DEVICE).eval(), randn(1, 10, 64, 64))

def detector_ms(mmdet, mmcv):
    """Faster R-CNN forward on one 512² image, tiny and HR presets: this Swin, then mmdet's own FPN, RPN and
    RoI head as the detection fixture's generator builds them (packages/heads/test/fixtures/faster-rcnn/make.py)."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, '..', 'packages', 'heads', 'test', 'fixtures', 'faster-rcnn'))
    import make
    regs = make.load(mmdet, mmcv)
    x = torch.randn(1, 3, 512, 512)
    metas = [dict(img_shape=(512, 512, 3), pad_shape=(512, 512, 3), scale_factor=torch.ones(4).numpy())]
    out = {}
    for name, swin, neck, fc, scales in [
        ('tiny', Swin(8, (2, 2, 2, 2), (1, 2, 2, 4), 4, outs=(0, 1, 2, 3)), 32, 64, (4,)),
        ('hr', Swin(outs=(0, 1, 2, 3)), 256, 1024, (8,)),
    ]:
        c = [swin.norms[i].normalized_shape[0] for i in range(4)]
        heads = make.build_heads(regs, c, neck, fc, 20 if name == 'hr' else 1, scales)
        swin.eval()
        out[f'Faster R-CNN {name} 512²'] = fwd(lambda t: make.detect(heads, swin(t), metas), x)
    return out


if os.environ.get('BENCH_MMDET') and os.environ.get('BENCH_MMCV') and DEVICE.type == 'cpu':
    results.update(detector_ms(os.environ['BENCH_MMDET'], os.environ['BENCH_MMCV']))
print(json.dumps({'torch': torch.__version__, 'threads': torch.get_num_threads(), 'device': str(DEVICE), 'results': results}))
