/**
 * Typed errors. Every failure a user can cause (bad config, bad file, shapes that do not fit)
 * is a BoftError subclass, so the CLI can print one line and exit non-zero.
 */
export class BoftError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A method config that PEFT would reject (same condition, same meaning of message). */
export class ConfigError extends BoftError {}

/** Arrays or layers whose shapes do not fit together. */
export class ShapeError extends BoftError {}

/** A file that is malformed, truncated or not what it claims to be. */
export class FormatError extends BoftError {}

/** No module of the model matched the adapter's target_modules. */
export class NoTargetsError extends BoftError {}

/** Non-finite values where a merge would spread them into the base weights. */
export class NonFiniteError extends BoftError {}
