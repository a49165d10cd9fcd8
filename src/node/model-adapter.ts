/**
 * PEFT adapter folders ↔ an AdaptedModel's adapters: `loadAdapter` puts a saved adapter (ours or PEFT's) on a
 * model as PEFT's PeftModel.from_pretrained does; `saveModelAdapter` writes one as PeftModel.save_pretrained does.
 * The model side is src/models/peft-load.ts; this reads and writes the folder.
 */
import type { FloatDType } from "../engine/index.js";
import type { AdapterConfigExtra } from "../formats/peft-config.js";
import { withDefaultTargets } from "../methods/method.js";
import type { AdaptedModel } from "../models/adapted.js";
import { type LoadedAdapter, addLoadedAdapter, adapterTensors } from "../models/peft-load.js";
import { openAdapter, saveAdapter } from "./adapter-files.js";

export type { LoadedAdapter };

/** Adds the adapter saved in folder `dir` to `m` (see addLoadedAdapter). */
export function loadAdapter<I, O>(m: AdaptedModel<I, O>, dir: string, o: { name?: string; dtype?: FloatDType } = {}): LoadedAdapter<I, O> {
  const a = openAdapter(dir);
  try {
    return addLoadedAdapter(m, a, o);
  } finally {
    a.close();
  }
}

/**
 * Writes adapter `name` (default: the active one) as a PEFT folder: adapter_model.safetensors (F32) and
 * adapter_config.json. For a causal LM pass `{ baseModelNameOrPath, taskType: "CAUSAL_LM" }`. target_modules null is
 * written resolved to the model type's defaults, as PEFT does. Borrows the model; returns the tensor keys.
 */
export async function saveModelAdapter<I, O>(m: AdaptedModel<I, O>, dir: string, extra: AdapterConfigExtra = {}, name: string | null = m.active): Promise<string[]> {
  const tensors = await adapterTensors(m, name);
  const method = m.adapters[name!].method;
  saveAdapter(dir, withDefaultTargets(method, m.def.type), tensors, extra);
  return Object.keys(tensors);
}
