/** The three adapter methods as one tagged type: the config of the method PEFT calls peft_type. */
import type { BoftConfig } from "./boft/config.js";
import type { OftConfig } from "./oft/config.js";
import type { LoraConfig } from "./lora/config.js";

export type AdapterMethod = { kind: "BOFT"; config: BoftConfig } | { kind: "OFT"; config: OftConfig } | { kind: "LORA"; config: LoraConfig };

export type MethodKind = AdapterMethod["kind"];
