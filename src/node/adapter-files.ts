/**
 * A PEFT adapter folder on disk: adapter_config.json + adapter_model.safetensors, read and written exactly as
 * PEFT's save_pretrained / from_pretrained do.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { ConfigError, FormatError } from "../errors.js";
import { type ParsedAdapterConfig, type AdapterConfigExtra, parseAdapterConfig, toAdapterConfigJson } from "../formats/peft-config.js";
import { type AdapterKeyGroups, groupAdapterKeys, ADAPTER_CONFIG, ADAPTER_WEIGHTS } from "../formats/peft-adapter.js";
import type { AdapterMethod } from "../methods/adapter.js";
import { SafetensorsReader, saveSafetensors } from "./safetensors-file.js";
import { atomicWriteFile } from "./atomic.js";
import type { StDType } from "../formats/dtype.js";
import type { HostTensor } from "../engine/index.js";

export { ADAPTER_CONFIG, ADAPTER_WEIGHTS };

/**
 * An adapter folder opened by openAdapter: its parsed config, its tensors' keys sorted by role, and a reader that
 * reads tensors on demand. Call close() when done.
 */
export interface OpenAdapter {
  dir: string;
  config: ParsedAdapterConfig;
  reader: SafetensorsReader;
  groups: AdapterKeyGroups;
  close(): void;
}

/** Opens an adapter folder (or its adapter_model.safetensors, with adapter_config.json beside it). */
export function openAdapter(path: string): OpenAdapter {
  const stat = fs.statSync(path, { throwIfNoEntry: false });
  if (!stat) throw new FormatError(`${path}: no such adapter folder or file`);
  const dir = stat.isDirectory() ? path : nodePath.dirname(path);
  const weights = stat.isDirectory() ? nodePath.join(dir, ADAPTER_WEIGHTS) : path;
  const configPath = nodePath.join(dir, ADAPTER_CONFIG);
  if (!fs.existsSync(configPath)) throw new FormatError(`${dir}: no ${ADAPTER_CONFIG} (a PEFT adapter folder holds ${ADAPTER_CONFIG} and ${ADAPTER_WEIGHTS})`);
  if (!fs.existsSync(weights)) throw new FormatError(`${dir}: no ${ADAPTER_WEIGHTS}`);
  let config: ParsedAdapterConfig;
  try {
    config = parseAdapterConfig(fs.readFileSync(configPath, "utf8"), configPath);
  } catch (e) {
    // Config errors carry PEFT's own wording, which does not say which file; name it.
    if (e instanceof ConfigError && !e.message.includes(configPath)) throw new ConfigError(`${configPath}: ${e.message}`);
    throw e;
  }
  const reader = new SafetensorsReader(weights);
  try {
    const groups = groupAdapterKeys(config.kind, reader.names(), weights);
    return { dir, config, reader, groups, close: () => reader.close() };
  } catch (e) {
    reader.close();
    throw e;
  }
}

/**
 * Writes an adapter folder: `tensors` by PEFT key (e.g. "base_model.model.fc1.boft_R"), stored as `dtype` (float32
 * by default: what PEFT trains in and loads safely), metadata {"format": "pt"}, config as PEFT writes it. Each file
 * is replaced atomically.
 *
 * @example
 * saveAdapter("out/adapter", { kind: "LORA", config: loraConfig({ r: 4, targetModules: ["fc1"] }) }, {
 *   "base_model.model.fc1.lora_A.weight": tensor(a, [4, 8]), "base_model.model.fc1.lora_B.weight": tensor(b, [16, 4]) });
 */
export function saveAdapter(dir: string, method: AdapterMethod, tensors: Readonly<Record<string, HostTensor>>, extra: AdapterConfigExtra = {}, dtype: StDType = "F32"): void {
  fs.mkdirSync(dir, { recursive: true });
  const configText = toAdapterConfigJson(method, extra);
  saveSafetensors(
    nodePath.join(dir, ADAPTER_WEIGHTS),
    Object.entries(tensors).map(([name, t]) => ({ name, dtype, shape: t.shape, data: t.data })),
    { format: "pt" },
  );
  atomicWriteFile(nodePath.join(dir, ADAPTER_CONFIG), configText);
}
