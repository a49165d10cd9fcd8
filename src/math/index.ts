export * from "./butterfly.js";
export * from "./cayley.js";
export * from "./rotation.js";
export * from "./dropout.js";
export * from "./cayley-jit.js";
