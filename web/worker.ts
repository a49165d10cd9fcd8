/**
 * The training worker: owns the engine (the only copy of jax-js on the page), the model and its adapter.
 */
import { initDevice } from "boft";
import type { FromWorker, ToWorker } from "./protocol.js";

const post = (m: FromWorker, transfer: Transferable[] = []) => (self as unknown as Worker).postMessage(m, transfer);

self.onmessage = async (e: MessageEvent<ToWorker>) => {
  const m = e.data;
  try {
    if (m.type === "init") {
      const device = await initDevice(m.device);
      post({ type: "ready", device, threads: crossOriginIsolated, note: "" });
    }
  } catch (err) {
    post({ type: "error", message: (err as Error).message, during: m.type });
  }
};
