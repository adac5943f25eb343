import { Command, CommanderError, Option } from 'commander';
import { copyFileSync, existsSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import {
  ProgressReporter,
  SkySenseError,
  convertToSafetensors,
  formatShape,
  SKYSENSE_RELEASE,
  cacheDir,
  ensureDir,
  fsError,
  initBackend,
  resolvePretrained,
  readJsonFile,
  isFsError,
  inspectCheckpoint,
  shapeOnly,
  BACKEND_ORDER,
  type BackendKind,
  type PthLayout,
} from '@skysense/core-tensor';
import { SKYSENSE_PRESETS, type SkySensePresetName } from './presets';
import { MODEL_REGISTRY, PRETRAINED, modelInfo, pretrainedPaths } from './registry';
import { forwardFixture, runFixture } from './verify';
import { runDemo, runEmbed, type RunEmbedOptions } from './embed';
import { runPretrain, type RunPretrainOptions } from './pretrain-run';
import { downloadSamples } from '@skysense/data';
import { type ReleasedFiles } from './skysense';
import { SkySense, formatBreakdown } from './skysense';
import { FINETUNE_PRESETS } from './finetune/presets';
import { getTask, listTasks } from './finetune/task';
import { runEval, runFinetune, runPredict, type RunEvalOptions, type RunFinetuneOptions } from './finetune/run';

const LAYOUTS = ['auto', 'flat', 'state_dict', 'model', 'module'];

const JSON_HELP = 'print the result as JSON on stdout (progress lines go to stderr)';

const EXIT_HELP = `
Exit codes: 0 done; 1 a check failed (verify: outputs out of tolerance); 2 bad usage or input (an
unknown option, a bad value, a missing or unreadable file: one line naming it); 70 an internal error
(a bug: a stack trace to report). --verbose adds stack traces and details to errors.`;

/** Where a command's progress lines go: stdout, or stderr when its result is printed as JSON. */
function lineLog(o: { json?: boolean }): (line: string) => void {
  return o.json ? (line) => console.error(line) : (line) => console.log(line);
}

const RESUME_HELP =
  'continue the run in <out> from its checkpoint with its own settings; --steps extends it, --checkpoint-every may change, other options that differ are refused';
const OVERWRITE_HELP = 'replace the run already in <out> (its checkpoint, logs, model, predictions); without it such a folder is refused';

function layoutOption(): Option {
  return new Option('--layout <layout>', 'where the tensors sit in a .pth checkpoint').choices(LAYOUTS).default('auto');
}

/** This package's version (from its package.json, one level above `src/` and `dist/`). */
const VERSION = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

/** The `skysense` command-line program (without parsing). */
export function createCli(): Command {
  const program = new Command('skysense')
    .description('SkySense in TypeScript: checkpoints, features and models from the shell')
    .version(VERSION, '-V, --version', 'print the version of @skysense/skysense')
    .addOption(
      new Option('--backend <kind>', 'tensor backend (default: the fastest that loads; SKYSENSE_BACKEND)').choices([...BACKEND_ORDER]),
    )
    .option('--verbose', 'print stack traces and the backend report')
    .showHelpAfterError()
    .addHelpText('after', EXIT_HELP)
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(text) })
    .hook('preAction', async (cmd) => {
      const o = cmd.opts<{ backend?: BackendKind; verbose?: boolean }>();
      await initBackend({ force: o.backend, log: o.verbose ? (line) => console.error(line) : false });
    });

  program
    .command('samples')
    .description('download the public sample files (BigEarthNet, NAIP, eo-learn, Dubai aerial) with SHA-256 checks; needs internet access')
    .option('--out <dir>', 'folder to fill (default: SKYSENSE_SAMPLES, else ./samples)')
    .option('--json', JSON_HELP)
    .action(async (o: { out?: string; json?: boolean }) => {
      const t0 = performance.now();
      const log = lineLog(o);
      const r = await downloadSamples({
        target: o.out,
        onProgress: (done, total, f) => log(`[${done}/${total}] ${f.path} (${((performance.now() - t0) / 1000).toFixed(0)} s)`),
      });
      if (o.json) return console.log(JSON.stringify(r, null, 2));
      console.log(
        `${r.present} files were already there, ${r.fetched} fetched: samples ready in ${r.target} (set SKYSENSE_SAMPLES=${r.target})`,
      );
    });

  const weights = program
    .command('weights')
    .description('released weights: list them with their source, licence and input; where they are cached; fetch one');
  weights
    .command('list')
    .description('the models with released weights: files, source, licence, input bands, units, normalisation, cached or not')
    .option('--json', JSON_HELP)
    .action((o: { json?: boolean }) => {
      const rows = Object.entries(PRETRAINED).map(([name, c]) => ({
        name,
        ...c,
        cached: pretrainedPaths(name).every((f) => existsSync(f)),
        paths: pretrainedPaths(name),
      }));
      if (o.json) return console.log(JSON.stringify(rows, null, 2));
      for (const r of rows) {
        console.log(`${r.name.padEnd(14)} ${r.files.map((f) => f.name).join(', ')}${r.cached ? ' (cached)' : ''}`);
        console.log(`${''.padEnd(14)} input: ${r.input.bands.join(', ')} in ${r.input.units}${r.input.size ? `, ${r.input.size} px` : ''}`);
      }
      console.log(`source: ${SKYSENSE_RELEASE.source}\nlicence: ${SKYSENSE_RELEASE.license}\ncache: ${cacheDir()} (SKYSENSE_CACHE)`);
    });
  weights
    .command('path')
    .description('where the files of a model are cached (whether or not they are there yet)')
    .argument('<name>', `one of ${Object.keys(PRETRAINED).join(', ')}`)
    .option('--json', JSON_HELP)
    .action((name: string, o: { json?: boolean }) => {
      const paths = pretrainedPaths(name);
      if (o.json)
        return console.log(
          JSON.stringify(
            paths.map((path) => ({ path, cached: existsSync(path) })),
            null,
            2,
          ),
        );
      for (const p of paths) console.log(`${p}${existsSync(p) ? '' : '  (not cached yet)'}`);
    });
  weights
    .command('fetch')
    .description('put the files of a model into the cache: from --weights (copied), or downloaded from --url with progress, resumable')
    .argument('<name>', `one of ${Object.keys(PRETRAINED).join(', ')}`)
    .option('--url <base>', 'download <base>/<file name> (a mirror of the official files)')
    .option('--weights <file>', 'a local copy of the file to put into the cache')
    .option('--json', JSON_HELP)
    .action(async (name: string, o: { url?: string; weights?: string; json?: boolean }) => {
      const [target] = pretrainedPaths(name);
      if (o.weights) {
        if (!existsSync(o.weights)) throw new SkySenseError('E_IO', `--weights ${o.weights}: no such file`);
        ensureDir(cacheDir(), 'cache folder');
        copyFileSync(o.weights, `${target}.partial`);
        renameSync(`${target}.partial`, target!);
      }
      const files = await resolvePretrained(name, PRETRAINED[name]!, { url: o.url, log: lineLog(o) });
      if (o.json) return console.log(JSON.stringify({ name, files }, null, 2));
      for (const f of files) console.log(`${name}: ${f}`);
    });

  program
    .command('convert')
    .description('convert a PyTorch .pth (or .safetensors) checkpoint to safetensors, streaming, without Python')
    .argument('<input>', 'checkpoint to read (.pth zip or legacy format, or .safetensors)')
    .argument('<output>', '.safetensors file to write (atomically)')
    .option('--prefix <prefix>', 'keep only tensors whose name starts with this (e.g. backbone.)')
    .option('--strip <prefix>', 'remove this from the start of tensor names (e.g. backbone.)')
    .addOption(layoutOption())
    .option('--json', JSON_HELP)
    .action((input: string, output: string, o: { prefix?: string; strip?: string; layout: string; json?: boolean }) => {
      const progress = new ProgressReporter('converting');
      const t0 = performance.now();
      const names = convertToSafetensors(input, output, {
        prefix: o.prefix,
        strip: o.strip,
        layout: o.layout as PthLayout | 'auto',
        onProgress: (p) => progress.update(p.done, p.total),
      });
      const seconds = (performance.now() - t0) / 1000;
      if (o.json) return console.log(JSON.stringify({ input, output, tensors: names, seconds }, null, 2));
      console.log(`wrote ${names.length} tensors to ${output} in ${seconds.toFixed(1)} s`);
    });

  program
    .command('inspect')
    .description('list the tensors of a checkpoint: names, dtypes, shapes and the total parameter count')
    .argument('<file>', '.pth or .safetensors file')
    .option('--json', JSON_HELP)
    .addOption(layoutOption())
    .action((file: string, o: { json?: boolean; layout: string }) => {
      const s = inspectCheckpoint(file, { layout: o.layout as PthLayout | 'auto' });
      if (o.json) {
        console.log(JSON.stringify(s, null, 2));
        return;
      }
      const width = Math.max(4, ...s.tensors.map((t) => t.name.length));
      console.log(`${s.file}: ${s.format}${s.layout ? ` (${s.layout})` : ''}, ${s.tensors.length} tensors`);
      for (const t of s.tensors) console.log(`  ${t.name.padEnd(width)}  ${t.dtype.padEnd(4)}  ${formatShape(t.shape)}`);
      console.log(`total: ${s.totalParameters.toLocaleString('en-US')} parameters, ${(s.totalBytes / 1024 ** 2).toFixed(1)} MiB`);
      const extra = Object.keys(s.extra);
      if (extra.length) console.log(`other entries: ${extra.join(', ')}`);
    });
  program
    .command('info')
    .description('parameters of a model preset per part (from shapes, nothing allocated); --keys lists every tensor')
    .argument('[preset]', 'a preset name (see --list)')
    .option('--list', 'list the presets')
    .option('--keys', 'also list every tensor name and shape in registration order')
    .option('--json', 'print JSON: { preset, parameters, bufferValues, total, modules, tensors } (or the --list)')
    .action((preset: string | undefined, o: { list?: boolean; keys?: boolean; json?: boolean }) => {
      if (o.list || !preset) {
        const list = Object.entries(MODEL_REGISTRY).map(([name, p]) => ({ name, describe: p.describe }));
        if (o.json) console.log(JSON.stringify(list, null, 2));
        else for (const m of list) console.log(`${m.name.padEnd(26)} ${m.describe}`);
        return;
      }
      const info = modelInfo(preset);
      if (o.json) {
        console.log(JSON.stringify(info, null, 2));
        return;
      }
      console.log(`${preset}: ${MODEL_REGISTRY[preset]!.describe}`);
      if (preset in SKYSENSE_PRESETS)
        console.log(formatBreakdown(shapeOnly(() => SkySense.fromPreset(preset as SkySensePresetName)).breakdown()));
      else {
        const fmt = (n: number) => n.toLocaleString('en-US').padStart(14);
        for (const [part, n] of Object.entries(info.modules))
          console.log(`  ${part.padEnd(20)} ${fmt(n.parameters + n.bufferValues)}${n.bufferValues ? '  (buffers)' : ''}`);
        console.log(`  ${'total'.padEnd(20)} ${fmt(info.total)} (${info.parameters.toLocaleString('en-US')} parameters)`);
      }
      if (o.keys) for (const t of info.tensors) console.log(`  ${t.name}  ${formatShape(t.shape)}${t.buffer ? '  (buffer)' : ''}`);
    });

  const fixtureOptions = (cmd: Command) =>
    cmd
      .option('--weights <file>', "use these weights (.safetensors or .pth) instead of the folder's")
      .option('--strip-prefix <prefix>', "prefix to remove from the weights' keys (e.g. backbone.)");

  fixtureOptions(
    program
      .command('forward')
      .description("run the model a parity fixture folder describes and write every output under the fixture's key names")
      .requiredOption('--fixture <dir>', 'folder with config.json, weights.safetensors, input.safetensors (and output.safetensors)')
      .requiredOption('--output <file>', '.safetensors file to write'),
  )
    .option('--json', JSON_HELP)
    .action((o: { fixture: string; output: string; weights?: string; stripPrefix?: string; json?: boolean }) => {
      const r = forwardFixture(o.fixture, o.output, { weights: o.weights, stripPrefix: o.stripPrefix, log: lineLog(o) });
      if (o.json) return console.log(JSON.stringify({ kind: r.kind, output: o.output, outputs: [...r.outputs.keys()] }, null, 2));
      console.log(`${r.kind}: wrote ${r.outputs.size} outputs (${[...r.outputs.keys()].join(', ')}) to ${o.output}`);
    });

  fixtureOptions(
    program
      .command('verify')
      .description('run a parity fixture and compare every output with output.safetensors (exit 1 on failure)')
      .argument('<dir>', 'fixture folder'),
  )
    .option('--json', JSON_HELP)
    .action((dir: string, o: { weights?: string; stripPrefix?: string; json?: boolean }) => {
      const log = lineLog(o);
      const r = runFixture(dir, { weights: o.weights, stripPrefix: o.stripPrefix, log });
      const failed = r.errors.filter((e) => !e.pass).length;
      if (failed) process.exitCode = 1;
      if (o.json) {
        console.log(JSON.stringify({ fixture: dir, kind: r.kind, passed: r.errors.length - failed, failed, outputs: r.errors }, null, 2));
        return;
      }
      for (const e of r.errors) {
        console.log(
          `${e.pass ? 'pass' : 'FAIL'}  ${e.key.padEnd(18)} ${formatShape(e.shape).padEnd(18)} max abs ${e.maxAbs.toExponential(2)}  relative ${e.relative.toExponential(2)}  (tolerance ${e.tolerance})`,
        );
      }
      console.log(`${dir}: ${r.errors.length - failed} passed, ${failed} failed`);
    });

  program
    .command('embed')
    .description('run SkySense on your files: fused features (safetensors), a PCA picture and a prototype map per sample')
    .option('--manifest <file>', 'JSON sample manifest (see the README)')
    .option('--s2 <folders...>', 'Sentinel-2 frames: folders of band files (…_B02.tif …)')
    .option('--s1 <folders...>', 'Sentinel-1 frames: folders with …_VV.tif and …_VH.tif')
    .option('--hr <file>', 'HR RGB(-NIR) GeoTIFF')
    .option('--lat <deg>', 'tile-centre latitude (default: from the georeferencing)', Number)
    .option('--lon <deg>', 'tile-centre longitude', Number)
    .addOption(new Option('--preset <name>', 'model preset').choices(Object.keys(SKYSENSE_PRESETS)).default('skysense-tiny'))
    .option('--weights-dir <dir>', 'folder with the released skysense_model_*.pth / .safetensors files')
    .option('--seed <n>', 'seed of the weights when none are loaded', Number, 0)
    .requiredOption('--out <dir>', 'output folder')
    .option('--json', JSON_HELP)
    .action(async (o: EmbedCliOptions & { json?: boolean }) => {
      const summaries = await runEmbed({ ...o, weights: o.weightsDir ? releasedFiles(o.weightsDir) : undefined, log: lineLog(o) });
      if (o.json) console.log(JSON.stringify(summaries, null, 2));
    });

  program
    .command('pretrain')
    .description(
      'pre-train SkySense (teacher-student MGCL + cross-modal alignment + geo-prototypes) on Sentinel-2/1 pairs, HR tiles, or co-registered HR + S2 + S1 triples of a manifest',
    )
    .addOption(new Option('--preset <name>', 'model preset (default skysense-tiny)').choices(Object.keys(SKYSENSE_PRESETS)))
    .option(
      '--data <dir|manifest>',
      'sample folder (its BigEarthNet pairs) or a manifest (HR + S2 + S1 triples allowed; default: SKYSENSE_SAMPLES)',
    )
    .requiredOption('--out <dir>', 'output folder (checkpoint, teacher weights, metrics.jsonl)')
    .option('--steps <n>', 'total steps (default 100; with --resume: extends the run)', Number)
    .option('--batch-size <n>', 'samples per step (default 4)', Number)
    .option('--hr', 'pre-train the HR branch on the NAIP tiles of the sample folder instead of the Sentinel pairs')
    .option(
      '--crop <px>',
      'random crop size in input pixels (default 32 for Sentinel, 128 for HR; triples: 4 Sentinel pixels = 128 HR pixels)',
      Number,
    )
    .option('--local-crops <n>', 'with --hr: DINO multi-crop, two global and n local crops per tile, compared over their overlaps', Number)
    .option('--accumulate <n>', 'micro-batches per step (gradient accumulation; default 1)', Number)
    .option('--s2-frames <n>', 'random sub-sequence of this many S2 frames per sample (default: all)', Number)
    .option('--s1-frames <n>', 'random sub-sequence of this many S1 frames per sample (default: all)', Number)
    .option('--checkpoint-every <n>', 'steps between checkpoints (default 25)', Number)
    .option('--lr <rate>', 'peak learning rate', Number)
    .option('--seed <n>', 'seed (default 0)', Number)
    .option(
      '--ablate <terms>',
      'switch parts of the objective off (paper Tab. 5b), comma-separated: pixel, object, image, fusion, align, gcpl',
    )
    .addOption(
      new Option('--fusion-feature <f>', "the fusion term's feature: F_fus = fused ⊕ geo-context (default) or the fused map alone").choices(
        ['geo-context', 'fused'],
      ),
    )
    .option('--no-teacher-augment', 'the teacher sees the raw batch (default: its own augmented view)')
    .option('--batch-augment', 'draw brightness / blur / solarisation once per micro-batch (default: per image)')
    .option('--resume', RESUME_HELP)
    .option('--overwrite', OVERWRITE_HELP)
    .option('--json', JSON_HELP)
    .action(
      async (
        o: Omit<RunPretrainOptions, 'ablate'> & {
          s2Frames?: number;
          s1Frames?: number;
          localCrops?: number;
          ablate?: string;
          batchAugment?: boolean;
          json?: boolean;
        },
      ) => {
        if (o.localCrops !== undefined && !o.hr)
          throw new SkySenseError('E_ARG', '--local-crops: multi-crop is for the HR branch; add --hr');
        const metrics = await runPretrain({
          ...o,
          ablate: o.ablate === undefined ? undefined : (o.ablate.split(',').map((t) => t.trim()) as RunPretrainOptions['ablate']),
          teacherAugment: o.teacherAugment === false ? false : undefined,
          augmentPerImage: o.batchAugment ? false : undefined,
          log: lineLog(o),
          frames: o.s2Frames === undefined && o.s1Frames === undefined ? undefined : { s2: o.s2Frames, s1: o.s1Frames },
          multiCrop: o.localCrops === undefined ? undefined : { localCrops: o.localCrops },
        });
        if (o.json) console.log(JSON.stringify({ out: o.out, steps: metrics.length, last: metrics.at(-1) ?? null }, null, 2));
      },
    );

  program
    .command('finetune')
    .description(
      'fine-tune a downstream model (UperNet segmentation, scene / multi-label classification, multi-modal S2 + S1 classification, change detection, Faster R-CNN object detection); evaluate and draw the held-out samples',
    )
    .addOption(
      new Option(
        '--task <task>',
        `downstream task (default seg): ${listTasks()
          .map((t) => `${t} (${getTask(t).description})`)
          .join('; ')}`,
      ).choices(listTasks()),
    )
    .addOption(
      new Option(
        '--preset <name>',
        `model preset (default: the task's: ${listTasks()
          .map((t) => getTask(t).defaultPreset)
          .join(', ')})`,
      ).choices(Object.keys(FINETUNE_PRESETS)),
    )
    .option(
      '--data <dir>',
      listTasks()
        .map((t) => `${t}: ${getTask(t).dataHelp}`)
        .join('; '),
    )
    .option(
      '--classes <table>',
      "class table: seg 'dubai-aerial' or a JSON file of { name, color } (default: dubai-aerial for the default data, else <data>/classes.json); multilabel, mm-cls: the BigEarthNet nomenclature, ben19 (default) or ben43",
    )
    .requiredOption('--out <dir>', 'output folder (checkpoint, model.safetensors, metrics.jsonl, eval.json, predictions/)')
    .option(
      '--init <file>',
      'pre-trained encoder weights (skysense pretrain checkpoint or teacher, released or mmseg file); default random',
    )
    .option(
      '--hold-out <n>',
      `the last n samples are held out for evaluation (cls: the last n of each class); default ${listTasks()
        .map((t) => `${t} ${getTask(t).defaultHoldOut}`)
        .join(', ')}`,
      Number,
    )
    .option('--steps <n>', 'total steps (default 300; with --resume: extends the run)', Number)
    .option('--batch-size <n>', 'crops per step (default 4)', Number)
    .option('--crop <px>', "training crop and sliding-window size (default: the preset's)", Number)
    .option('--stride <px>', 'sliding-window stride at evaluation (default 2/3 of the crop)', Number)
    .option('--lr <rate>', "base learning rate (default: the preset's)", Number)
    .option('--layer-decay <rate>', 'layer-wise learning-rate decay of the encoder (1 = none; default 0.9)', Number)
    .option('--warmup <iters>', "linear warm-up iterations (default: the preset's)", Number)
    .option('--freeze-backbone', 'train only the heads (with a linear head: a linear probe)')
    .addOption(
      new Option(
        '--loader <how>',
        'multilabel, mm-cls, temporal-cls, mm-seg: stream batches decoded in worker threads (default) or decode the dataset into memory first',
      ).choices(['stream', 'memory']),
    )
    .option('--workers <n>', 'decode worker threads of the streaming loader (default: cores − 1)', Number)
    .option('--prefetch <n>', 'batches the streaming loader decodes ahead (default 2)', Number)
    .option('--checkpoint-every <n>', 'steps between checkpoints (default 50)', Number)
    .option('--seed <n>', 'seed (default 0)', Number)
    .option('--resume', RESUME_HELP)
    .option('--overwrite', OVERWRITE_HELP)
    .option('--json', JSON_HELP)
    .action(
      async (o: Omit<RunFinetuneOptions, 'layerDecayRate' | 'warmupIters'> & { layerDecay?: number; warmup?: number; json?: boolean }) => {
        const r = await runFinetune({ ...o, layerDecayRate: o.layerDecay, warmupIters: o.warmup, log: lineLog(o) });
        if (o.json)
          console.log(
            JSON.stringify(
              { out: o.out, steps: r.metrics.length, last: r.metrics.at(-1) ?? null, evaluation: r.evaluation?.scores ?? null },
              null,
              2,
            ),
          );
      },
    );

  program
    .command('predict')
    .description(
      'predict with a fine-tuned model: colour masks and input|prediction pictures (seg: sliding window; change: A B pairs), or class probabilities (cls, multilabel)',
    )
    .argument('<inputs...>', 'images (PNG, JPEG, GeoTIFF) or folders of images; for change detection A B A B …')
    .requiredOption('--model <file>', "model.safetensors written by 'skysense finetune'")
    .requiredOption('--out <dir>', 'output folder')
    .option('--crop <px>', 'window size (default: the training crop of the preset)', Number)
    .option('--stride <px>', 'window stride (default 2/3 of the crop)', Number)
    .option('--score-thr <s>', 'det: boxes scoring above this are drawn (mmdet show_result; the JSON keeps all), default 0.3', Number)
    .option('--json', JSON_HELP)
    .action(
      async (inputs: string[], o: { model: string; out: string; crop?: number; stride?: number; scoreThr?: number; json?: boolean }) => {
        const files = await runPredict({ ...o, inputs, log: lineLog(o) });
        if (o.json) {
          const scores = files.find((f) => f.endsWith('predictions.json') || f.endsWith('detections.json'));
          console.log(JSON.stringify({ files, predictions: scores ? readJsonFile(scores, 'predictions') : undefined }, null, 2));
        }
      },
    );

  program
    .command('eval')
    .description(
      'evaluate a fine-tuned model on its task data: seg per-class IoU/F1/P/R, mIoU, mF1, OA; change P/R/F1/IoU; cls OA; multilabel mAP; det per-class AP, mAP@0.5',
    )
    .requiredOption('--model <file>', "model.safetensors written by 'skysense finetune'")
    .option('--data <dir>', "the task's data, as for finetune (default: the sample data of seg and multilabel)")
    .option('--last <n>', 'only the samples finetune --hold-out n held out', Number)
    .option('--crop <px>', 'window size (default: the training crop of the preset)', Number)
    .option('--stride <px>', 'window stride (default 2/3 of the crop)', Number)
    .option('--out <dir>', 'also write the predicted masks and side-by-side pictures here')
    .option('--score-thr <s>', 'det: boxes scoring above this are drawn (mmdet show_result), default 0.3', Number)
    .option('--json', JSON_HELP)
    .action(async (o: RunEvalOptions & { json?: boolean }) => {
      const r = await runEval({ ...o, log: lineLog(o) });
      if (o.json) console.log(JSON.stringify(r.scores, null, 2));
    });

  program
    .command('demo')
    .description('the main job: BigEarthNet S1+S2 pairs from the sample folder through a small SkySense; pictures and summary.json')
    .option('--samples <dir>', 'sample folder (default: SKYSENSE_SAMPLES, else ./samples)')
    .option('--out <dir>', 'output folder', 'skysense-demo')
    .addOption(new Option('--preset <name>', 'model preset').choices(Object.keys(SKYSENSE_PRESETS)).default('skysense-tiny'))
    .option('--seed <n>', 'seed of the model weights', Number, 0)
    .option('--json', JSON_HELP)
    .action(async (o: { samples?: string; out: string; preset: SkySensePresetName; seed: number; json?: boolean }) => {
      const r = await runDemo({ ...o, log: lineLog(o) });
      if (o.json) console.log(JSON.stringify(r.summaries, null, 2));
    });
  for (const cmd of [...program.commands, ...weights.commands]) cmd.addHelpText('after', EXIT_HELP);
  return program;
}

type EmbedCliOptions = Omit<RunEmbedOptions, 'weights'> & { weightsDir?: string };

/** The released files found in a folder (`.pth` or converted `.safetensors`). */
function releasedFiles(dir: string): ReleasedFiles {
  const names: [keyof ReleasedFiles, string][] = [
    ['hr', 'backbone_hr'],
    ['s2', 'backbone_s2'],
    ['s1', 'backbone_s1'],
    ['headS2', 'head_s2'],
    ['headS1', 'head_s1'],
    ['fusion', 'fusion'],
  ];
  const found: ReleasedFiles = {};
  for (const [key, part] of names) {
    const file = ['pth', 'safetensors'].map((ext) => join(dir, `skysense_model_${part}.${ext}`)).find((f) => existsSync(f));
    if (file) found[key] = file;
  }
  if (!Object.keys(found).length) throw new SkySenseError('E_IO', `${dir}: no skysense_model_*.pth or .safetensors files`);
  return found;
}

/** Exit codes of the CLI: 0 done, 1 `verify` found outputs out of tolerance, 2 a problem with the input or the environment (one line), 70 an internal error (a bug). */
export const EXIT = { ok: 0, verifyFailed: 1, usage: 2, bug: 70 } as const;

/**
 * Prints an error the way the CLI does and returns its exit code: a {@link @skysense/core-tensor!SkySenseError}, a
 * file-system error (ENOENT, EACCES, EISDIR, ENOSPC, EEXIST, …) or a usage error is one line
 * naming the file or option, exit 2 (`verbose` adds the stack and the error's details, e.g. every
 * missing key); anything else is a bug: its stack, a request to report it, exit 70.
 */
export function reportCliError(e: unknown, verbose: boolean, print: (line: string) => void = (l) => console.error(l)): number {
  if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
  const err = isFsError(e) ? (fsError(e, e.path ?? e.syscall ?? 'file system') as Error) : e;
  if (err instanceof SkySenseError) {
    print(`skysense: ${err.message}`);
    if (verbose) {
      if (err.details !== undefined) print(JSON.stringify(err.details, null, 2));
      print(err.stack ?? '');
    }
    return EXIT.usage;
  }
  print(`skysense: internal error — this is a bug; please report it with the command line and the lines below:`);
  print(err instanceof Error ? (err.stack ?? err.message) : String(err));
  return EXIT.bug;
}

/**
 * Runs the CLI with {@link reportCliError}'s discipline: exit 2 with one line for anything the user
 * can cause, exit 70 with a stack only for internal errors.
 */
export async function runCli(argv: string[] = process.argv): Promise<void> {
  try {
    await createCli().parseAsync(argv);
  } catch (e) {
    process.exitCode = reportCliError(e, argv.includes('--verbose'));
  }
}
