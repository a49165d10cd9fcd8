/**
 * BOFT's multiplicative dropout (PEFT MultiplicativeDropoutLayer): in training, pick one factor uniformly and
 * in it replace exactly ⌊p·D⌋ randomly chosen blocks by the identity. Returns the mask [m·D] (1 = replaced),
 * so the caller can blend q·(1−mask) + I·mask. `random` yields uniform numbers in [0, 1).
 */
export function multiplicativeDropoutMask(nFactors: number, blockNum: number, p: number, random: () => number): Float32Array {
  const mask = new Float32Array(nFactors * blockNum);
  const count = Math.floor(p * blockNum);
  if (count === 0) return mask;
  const factor = Math.min(nFactors - 1, Math.floor(random() * nFactors));
  // Partial Fisher–Yates: the first `count` entries of a random permutation of the blocks.
  const order = Array.from({ length: blockNum }, (_, d) => d);
  for (let k = 0; k < count; k++) {
    const j = k + Math.floor(random() * (blockNum - k));
    [order[k], order[j]] = [order[j], order[k]];
    mask[factor * blockNum + order[k]] = 1;
  }
  return mask;
}
