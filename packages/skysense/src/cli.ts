import { Argument, Command, Option } from 'commander';
import { SkySenseError, convertToSafetensors, formatShape, inspectCheckpoint, shapeOnly, type PthLayout } from '@skysense/core-tensor';
import { ProgressReporter } from './progress';
import { SKYSENSE_PRESETS, type SkySensePresetName } from './presets';
import { SkySense, formatBreakdown } from './skysense';

const LAYOUTS = ['auto', 'flat', 'state_dict', 'model', 'module'];

function layoutOption(): Option {
  return new Option('--layout <layout>', 'where the tensors sit in a .pth checkpoint').choices(LAYOUTS).default('auto');
}

/** The `skysense` command-line program (without parsing). */
export function createCli(): Command {
  const program = new Command('skysense')
    .description('SkySense in TypeScript: checkpoints, features and models from the shell')
    .showHelpAfterError()
    .configureOutput({ outputError: (text, write) => write(text) });

  program
    .command('convert')
    .description('convert a PyTorch .pth (or .safetensors) checkpoint to safetensors, streaming, without Python')
    .argument('<input>', 'checkpoint to read (.pth zip or legacy format, or .safetensors)')
    .argument('<output>', '.safetensors file to write (atomically)')
    .option('--prefix <prefix>', 'keep only tensors whose name starts with this (e.g. backbone.)')
    .option('--strip <prefix>', 'remove this from the start of tensor names (e.g. backbone.)')
    .addOption(layoutOption())
    .action((input: string, output: string, o: { prefix?: string; strip?: string; layout: string }) => {
      const progress = new ProgressReporter('converting');
      const t0 = performance.now();
      const names = convertToSafetensors(input, output, {
        prefix: o.prefix,
        strip: o.strip,
        layout: o.layout as PthLayout | 'auto',
        onProgress: (p) => progress.update(p.done, p.total),
      });
      console.log(`wrote ${names.length} tensors to ${output} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    });

  program
    .command('inspect')
    .description('list the tensors of a checkpoint: names, dtypes, shapes and the total parameter count')
    .argument('<file>', '.pth or .safetensors file')
    .option('--json', 'print JSON instead of a table')
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
    .description('parameter count of a SkySense preset, per part (computed from shapes, nothing allocated)')
    .addArgument(new Argument('<preset>', 'model preset').choices(Object.keys(SKYSENSE_PRESETS)))
    .action((preset: SkySensePresetName) => {
      const t0 = performance.now();
      const model = shapeOnly(() => SkySense.fromPreset(preset));
      console.log(`${preset}:`);
      console.log(formatBreakdown(model.breakdown()));
      console.log(`(computed in ${((performance.now() - t0) / 1000).toFixed(2)} s without allocating tensors)`);
    });
  return program;
}

/** Runs the CLI; errors print as one line with their code and exit 1 (no stack traces for user errors). */
export async function runCli(argv: string[] = process.argv): Promise<void> {
  try {
    await createCli().parseAsync(argv);
  } catch (e) {
    if (e instanceof SkySenseError) {
      console.error(`skysense: ${e.message}`);
      process.exitCode = 1;
      return;
    }
    throw e;
  }
}
