/**
 * How the page turns its form into a training run, through the public API only. The browser tests run the same
 * function in Node, so a page run and a Node run of one request see the same data, seeds and options.
 */
import { causalLmDataset, finetune, getPeftModel, type Model, type PeftModel, type TrainEvent } from "boft";
import type { TrainRequest } from "./protocol.js";

/** Checks the request and the model before anything is trained; returns one clear message per problem. */
export function requestProblems(model: Model, r: TrainRequest): string[] {
  const out: string[] = [];
  if (!model.tokenizer) out.push("the model has no tokenizer.json, so text cannot be tokenized");
  if (!Number.isInteger(r.steps) || r.steps < 1) out.push(`steps must be a positive integer (got ${r.steps})`);
  if (!(r.lr > 0)) out.push(`learning_rate must be > 0 (got ${r.lr})`);
  if (!Number.isInteger(r.batchSize) || r.batchSize < 1) out.push(`batch size must be a positive integer (got ${r.batchSize})`);
  if (!Number.isInteger(r.seqLen) || r.seqLen < 2) out.push(`sequence length must be an integer ≥ 2 (got ${r.seqLen})`);
  if (!Number.isInteger(r.maxNewTokens) || r.maxNewTokens < 1) out.push(`new tokens must be a positive integer (got ${r.maxNewTokens})`);
  if (!r.text.trim()) out.push("the training text is empty");
  return out;
}

/** A fresh adapter from the request's adapter_config.json body on `model` (the model itself is not changed). */
export function adapterFor(model: Model, r: TrainRequest): PeftModel {
  return getPeftModel(model, r.adapterConfig, { seed: r.seed });
}

/** Trains `peft`'s adapter on the request's text: random windows of seqLen tokens, AdamW at lr, the library defaults otherwise. */
export function trainOnText(peft: PeftModel, r: TrainRequest, signal?: AbortSignal): AsyncGenerator<TrainEvent, void> {
  const ids = peft.baseModel.tokenizer!.encode(r.text);
  const data = causalLmDataset(ids, { seqLen: r.seqLen });
  return finetune(peft, data, { steps: r.steps, lr: r.lr, batchSize: r.batchSize, seed: r.seed, signal });
}
