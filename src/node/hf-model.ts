/**
 * A local Hugging Face causal-LM folder (Llama, Mistral, Qwen2) → our model (src/models/hf-load.ts reads and checks
 * the files; this gives it the folder).
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { FormatError } from "../errors.js";
import type { TextTokenizer } from "../formats/hf-tokenizer.js";
import { type HfFiles, type HfModel, type LoadHfModelOptions, loadHfFiles, loadHfTokenizer as tokenizerOf } from "../models/hf-load.js";
import { openCheckpoint } from "./safetensors-file.js";

export type { HfModel, LoadHfModelOptions, LlamaOutput } from "../models/hf-load.js";

/** A model folder as HfFiles. */
export function folderFiles(folder: string): HfFiles {
  return {
    where: folder,
    text: (name) => {
      const path = nodePath.join(folder, name);
      return fs.existsSync(path) ? fs.readFileSync(path, "utf8") : null;
    },
    weights: () => openCheckpoint(folder),
  };
}

/** Loads a model folder (config.json, model.safetensors or its shards, tokenizer.json). */
export function loadHfModel(folder: string, o: LoadHfModelOptions = {}): HfModel {
  const stat = fs.statSync(folder, { throwIfNoEntry: false });
  if (!stat?.isDirectory()) throw new FormatError(`${folder}: not a folder. Point at a Hugging Face model folder (config.json, model.safetensors, tokenizer.json).`);
  return loadHfFiles(folderFiles(folder), o);
}

/** A folder's tokenizer: tokenizer.json, with tokenizer_config.json and chat_template.jinja when present. */
export function loadHfTokenizer(folder: string): TextTokenizer {
  return tokenizerOf(folderFiles(folder));
}
