/** The paper experiments, re-exported as one namespace (`experiments` in boft). */
export * from "../experiments/expressivity.js";
export { randomRotation, normalMatrix, type RandomRotation } from "../experiments/random-rotation.js";
