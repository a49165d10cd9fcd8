/**
 * Learning-rate schedule: linear warm-up, then cosine decay to a floor (nanoGPT train.py `get_lr`).
 * A pure function of the step, so a resumed run picks up the same rate with no schedule state to save.
 */
import { ConfigError } from "../errors.js";

export type ScheduleConfig = {
  /** Peak learning rate, reached at the end of warm-up. */
  lr: number;
  /** Step at which the cosine reaches `minLr`; later steps stay there. */
  totalSteps: number;
  /** Steps of linear warm-up. Default 0 (start at the peak). */
  warmupSteps?: number;
  /** Floor of the decay. Default lr/10, as in nanoGPT ("should be ~= learning_rate/10 per Chinchilla"). */
  minLr?: number;
};

/** Throws ConfigError naming the field when the schedule cannot be followed. */
export function validateSchedule(cfg: ScheduleConfig): void {
  const { lr, totalSteps, warmupSteps = 0, minLr = lr / 10 } = cfg;
  if (!(Number.isFinite(lr) && lr >= 0)) throw new ConfigError(`schedule: lr must be a finite number ≥ 0 (lr=${lr})`);
  if (!(Number.isInteger(totalSteps) && totalSteps >= 1)) {
    throw new ConfigError(`schedule: totalSteps must be a positive integer (totalSteps=${totalSteps})`);
  }
  if (!(Number.isInteger(warmupSteps) && warmupSteps >= 0 && warmupSteps <= totalSteps)) {
    throw new ConfigError(
      `schedule: warmupSteps must be an integer in [0, totalSteps] (warmupSteps=${warmupSteps}, totalSteps=${totalSteps})`,
    );
  }
  if (!(Number.isFinite(minLr) && minLr >= 0 && minLr <= lr)) {
    throw new ConfigError(`schedule: minLr must be in [0, lr] (minLr=${minLr}, lr=${lr})`);
  }
}

/**
 * Learning rate for 0-based `step`:
 * - warm-up, `step < warmupSteps`: `lr · (step + 1) / warmupSteps` (so the first step is not wasted at 0);
 * - decay: `minLr + ½(lr − minLr)(1 + cos(π·t))`, `t = (step − warmupSteps) / (totalSteps − warmupSteps)`;
 * - `step ≥ totalSteps`: `minLr`.
 */
export function lrAt(step: number, cfg: ScheduleConfig): number {
  const { lr, totalSteps, warmupSteps = 0, minLr = lr / 10 } = cfg;
  validateSchedule(cfg);
  if (!(Number.isInteger(step) && step >= 0)) throw new RangeError(`lrAt: step must be an integer ≥ 0 (step=${step})`);
  if (step < warmupSteps) return (lr * (step + 1)) / warmupSteps;
  if (step >= totalSteps) return minLr;
  const t = (step - warmupSteps) / (totalSteps - warmupSteps); // in [0, 1)
  return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * t));
}
