#!/usr/bin/env python3
"""Static instruction counts of a streaming kernel's main loop, from nvdisasm output.

Why: the small-M W4A16 kernel (kernels/w4a16_cuda.cu, w4a16_small_m_kernel) is
judged per 512-byte code tile, and a regression can hide in where ptxas puts
an instruction rather than in how many there are (kernels/dev/w4a16_notes.md,
"M = 1..4 regression on w4-m16"). No GPU needed.

Usage (nvdisasm: CUDA toolkit, or pip install nvidia-cuda-nvdisasm):
    nvcc -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a --expt-relaxed-constexpr \
         -Ilibquant -Iformats -Ikernels -cubin -Xptxas -v kernels/w4a16_cuda.cu -o x.cubin
    nvdisasm -c x.cubin > x.sass
    python3 kernels/dev/sass_loop_count.py x.sass w4a16_small_m_kernelILi1ELi1ELb1ELb0E 6

Arguments: the disassembly, a substring of the mangled kernel name (first
match), and the ring depth (tiles unrolled per loop round: w4s_depth).
Prints, per matching kernel: all instructions, those before and after the main
loop (the innermost backward branch around every HMMA), the loop's
instructions on the power-of-two group path (the skipped 32-bit division of
small_group, an else block holding I2F, left out) per tile, the opcode mix,
and where the first tile's LDS.128 sit relative to its first HMMA.
"""
import collections
import re
import sys


def load(path, name_part):
    """Instructions and label positions of the first function whose name contains name_part."""
    ins, labels, on, name = [], {}, False, None
    for line in open(path):
        if line.startswith(".text."):
            if name is not None and on:
                break
            on = name_part in line
            if on:
                name = line.strip()[6:].rstrip(":")
            continue
        if not on:
            continue
        m = re.match(r"^(\.L_x_\d+):", line.strip())
        if m:
            labels[m.group(1)] = len(ins)
            continue
        m = re.match(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?);", line)
        if m:
            ins.append(m.group(2).strip())
    return name, ins, labels


def op(s):
    s = re.sub(r"^@!?U?P\w+\s+", "", s)
    return s.split()[0] if s else ""


def target(s, labels):
    m = re.search(r"\(\s*(\.L_x_\d+)\s*\)", s)
    return labels.get(m.group(1)) if m else None


def main():
    path, part, depth = sys.argv[1], sys.argv[2], int(sys.argv[3])
    name, ins, labels = load(path, part)
    if name is None:
        sys.exit("no kernel matching %s in %s" % (part, path))
    hm = [k for k, i in enumerate(ins) if op(i).startswith("HMMA")]
    loops = [(target(i, labels), k) for k, i in enumerate(ins) if op(i) == "BRA" and (target(i, labels) or 1e9) <= k]
    around = [l for l in loops if l[0] <= hm[0] and l[1] >= hm[-1]]
    if not around:  # HMMA outside the loop too (straight-line last tiles): the loop holding the most of them
        loops = [l for l in loops if l[0] is not None]
        most = max(sum(1 for k in hm if l[0] <= k <= l[1]) for l in loops) if loops else 0
        around = [l for l in loops if most and sum(1 for k in hm if l[0] <= k <= l[1]) == most]
        if not around:
            sys.exit("no loop around an HMMA in %s" % name)
        hm = [k for k in hm if around[0][0] <= k <= around[0][1]]
    lo, hi = min(around, key=lambda l: l[1] - l[0])
    skip = set()
    for k in range(lo, hi + 1):
        t = target(ins[k], labels) if op(ins[k]) == "BRA" and ins[k].startswith("@") else None
        if t and k < t < k + 60 and op(ins[t - 1]) == "BRA" and not ins[t - 1].startswith("@"):
            if any(op(ins[j]).startswith("I2F") for j in range(k + 1, t)):
                skip.update(range(k + 1, t))
    real = lambda i: op(i) != "NOP"
    body = [ins[j] for j in range(lo, hi + 1) if j not in skip and real(ins[j])]
    lds = [k - hm[0] for k in range(max(0, hm[0] - 120), hm[3]) if op(ins[k]) == "LDS.128"]
    print(name)
    print("  instructions %d, before the loop %d, after it %d" % (
        sum(map(real, ins)), sum(map(real, ins[:lo])), sum(map(real, ins[hi + 1:]))))
    print("  loop (power-of-two groups) %d = %.1f per tile" % (len(body), len(body) / depth))
    mix = collections.Counter(op(i).split(".")[0] for i in body)
    print("  mix", ", ".join("%s %d" % kv for kv in mix.most_common()))
    print("  first tile: LDS.128 at %s, HMMA at %s (instructions from the first HMMA)" % (
        lds, [k - hm[0] for k in hm[:4]]))


if __name__ == "__main__":
    main()
