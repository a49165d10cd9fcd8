/**
 * The folder versions of the public API's file functions: the same names as in `boft`, taking a folder path where
 * `boft` takes a map of files (a map still works).
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { ConfigError } from "../errors.js";
import {
  type AdapterFiles,
  type FileMap,
  type LoadCausalLmOptions,
  type FromPretrainedOptions,
  ADAPTER_CONFIG,
  ADAPTER_WEIGHTS,
  savePretrained as saveToBytes,
  fromPretrained as fromFiles,
  loadAdapter as loadFromFiles,
  loadCausalLm as loadFromFileMap,
  causalLmModel,
  peftFromSource,
  addSource,
} from "../api/files.js";
import type { Model } from "../api/model.js";
import { type PeftModel, peftState } from "../api/peft.js";
import { atomicWriteFile } from "./atomic.js";
import { openAdapter } from "./adapter-files.js";
import { folderFiles } from "./hf-model.js";
import { FormatError } from "../errors.js";

/**
 * Saves the adapter as PEFT's save_pretrained does. With `dir`: writes adapter_config.json and
 * adapter_model.safetensors there (each file replaced atomically; the folder is created). Returns the files' contents.
 *
 * @example await savePretrained(peft, "out/adapter");
 */
export async function savePretrained(p: PeftModel, dir?: string, o: { adapterName?: string } = {}): Promise<AdapterFiles> {
  const files = await saveToBytes(p, o);
  if (dir !== undefined) {
    if (typeof dir !== "string" || dir === "") throw new ConfigError("savePretrained: the folder must be a path");
    if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) throw new FormatError(`${dir}: exists and is not a folder`);
    fs.mkdirSync(dir, { recursive: true });
    atomicWriteFile(nodePath.join(dir, ADAPTER_WEIGHTS), files[ADAPTER_WEIGHTS]);
    atomicWriteFile(nodePath.join(dir, ADAPTER_CONFIG), files[ADAPTER_CONFIG]);
  }
  return files;
}

/**
 * `model` with the adapter saved in folder `dir` (or given as files) on it (PEFT's PeftModel.from_pretrained).
 * `dir` may also be the adapter_model.safetensors file, with adapter_config.json beside it.
 */
export async function fromPretrained(model: Model, dir: string | FileMap | AdapterFiles, o: FromPretrainedOptions = {}): Promise<PeftModel> {
  if (typeof dir !== "string") return fromFiles(model, dir, o);
  const a = openAdapter(dir);
  try {
    return peftFromSource(model, a, o);
  } finally {
    a.close();
  }
}

/** Adds the adapter saved in folder `dir` (or given as files) to `p`, active (PEFT's load_adapter). Returns warnings. */
export async function loadAdapter(p: PeftModel, dir: string | FileMap | AdapterFiles, o: { adapterName?: string } = {}): Promise<string[]> {
  if (typeof dir !== "string") return loadFromFiles(p, dir, o);
  const a = openAdapter(dir);
  try {
    return addSource(peftState(p), a, o.adapterName ?? "default");
  } finally {
    a.close();
  }
}

/**
 * A Llama / Mistral / Qwen2 model from a Hugging Face folder (config.json, model.safetensors or its shards,
 * tokenizer.json, …), or from its files as in `boft`. The folder is recorded as base_model_name_or_path.
 *
 * @example const lm = await loadCausalLm("models/SmolLM2-135M");
 */
export async function loadCausalLm(folder: string | FileMap, o: LoadCausalLmOptions = {}): Promise<Model> {
  if (typeof folder !== "string") return loadFromFileMap(folder, o);
  const stat = fs.statSync(folder, { throwIfNoEntry: false });
  if (!stat?.isDirectory()) throw new FormatError(`${folder}: not a folder. Point at a Hugging Face model folder (config.json, model.safetensors, tokenizer.json).`);
  return causalLmModel(folderFiles(folder), o, o.nameOrPath === undefined ? folder : o.nameOrPath);
}
