/**
 * The adapted layers as pure functions of engine arrays (`layers` in boft): BOFT's and OFT's Linear, their Cayley
 * blocks and merge, and the frozen Linear they wrap. jax-js ownership: each consumes its array arguments.
 */
export { boftLinear, boftConv2d, boftBlocks, boftMerge, type BoftLayerShape, type BoftParams } from "../methods/boft/layer.js";
export { oftLinear, oftConv2d, oftBlocks, oftMerge, type OftLayerShape, type OftParams } from "../methods/oft/layer.js";
export { linear, conv2d, defaultConvGeometry, type LinearWeights } from "../methods/base-layers.js";
