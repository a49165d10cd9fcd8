/**
 * Parameter counts per adapted layer, in the paper's terms and PEFT's.
 *   stored:    what the adapter file holds (BOFT m·n·b + out: full b×b blocks plus s; OFT packed triangles; LoRA r·(n+out))
 *   effective: degrees of freedom (BOFT ½(b−1)·n·m + out: only the skew part of each block counts; OFT and LoRA = stored)
 *   span:      how many inputs one output of the rotation mixes (BOFT b·2^(m−1), OFT b)
 */
export interface ParamCount {
  stored: number;
  effective: number;
  span: number;
}

/**
 * BOFT's counts for one layer: n inputs, out outputs, block size b, m butterfly factors.
 *
 * @example boftCount({ n: 4096, out: 4096, blockSize: 8, nFactors: 2 }) // { stored: 69632, effective: 32768, span: 16 }
 */
export function boftCount(s: { n: number; out: number; blockSize: number; nFactors: number }): ParamCount {
  const { n, out, blockSize: b, nFactors: m } = s;
  return { stored: m * n * b + out, effective: ((b - 1) * n * m) / 2 + out, span: Math.min(n, b * 2 ** (m - 1)) };
}

/** OFT's counts for one layer: r blocks of size b (one stored block when blockShare). */
export function oftCount(s: { r: number; blockSize: number; blockShare: boolean }): ParamCount {
  const b = s.blockSize;
  const stored = (s.blockShare ? 1 : s.r) * ((b * (b - 1)) / 2);
  return { stored, effective: stored, span: b };
}

/** LoRA's counts for one layer: rank r between n inputs and out outputs. */
export function loraCount(s: { n: number; out: number; r: number }): ParamCount {
  const stored = s.r * (s.n + s.out);
  return { stored, effective: stored, span: s.n };
}
