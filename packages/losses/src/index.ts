/**
 * `@skysense/losses`: the building blocks of SkySense pre-training — DINO's projection head and
 * self-distillation loss, iBOT's masked patch loss, and the ALBEF-style cross-modal contrastive
 * alignment — reproducing the reference implementations' numbers.
 * @packageDocumentation
 */
export { DINOHead, DINOLoss, type DINOHeadOptions, type DINOLossOptions } from './dino';
export { IBOTLoss, type IBOTLossOptions, type IBOTLossValues } from './ibot';
export { ContrastiveAlignment, type ContrastiveAlignmentOptions, type AlignmentOutputs } from './alignment';
export { teacherTempSchedule } from './validate';
export { SelfDistillation, type SelfDistillationOptions } from './dino';
export { sameSampleCrossEntropy } from './alignment';
export {
  FGCL,
  MGCL,
  disposeMGCLValues,
  imageTokens,
  objectTokens,
  pixelTokens,
  type FGCLOptions,
  type FGCLValues,
  type MGCLOptions,
  type MGCLValues,
  type ObjectTokenOptions,
} from './mgcl';
export {
  CrossModalAlignment,
  skySenseObjective,
  type CrossModalAlignmentOptions,
  type CrossModalValues,
  type ObjectiveWeights,
} from './cross-modal';
