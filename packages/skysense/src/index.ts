/**
 * `@skysense/skysense`: the umbrella package — today the `skysense` command (`convert`,
 * `inspect`) and the model packages re-exported as namespaces; the assembled SkySense model,
 * trainers and data loading land here next.
 * @packageDocumentation
 */
export { createCli, runCli } from './cli';
export { ProgressReporter } from './progress';
export * as core from '@skysense/core-tensor';
export * as swin from '@skysense/swin';
export * as vit from '@skysense/vit';
