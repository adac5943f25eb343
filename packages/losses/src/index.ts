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
