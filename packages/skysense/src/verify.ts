/**
 * `@skysense/skysense/verify`: running parity fixtures — folders of `config.json`,
 * `weights.safetensors`, `input.safetensors` and `output.safetensors` made by the original PyTorch
 * code — against the TypeScript models (what `skysense verify` and `skysense forward` do). A tool
 * for checking numbers, not part of the model API.
 * @packageDocumentation
 */
export { runFixture, forwardFixture, readFixtureConfig, type FixtureResult, type RunFixtureOptions, type FixtureConfig } from './fixtures';
