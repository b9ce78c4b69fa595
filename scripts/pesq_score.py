#!/usr/bin/env python3
"""PESQ-WB of a recording against the speech that was sent.

usage: pesq_score.py REFERENCE.wav RECORDING.wav LAG_MS
Both 48 kHz; the recording is cut at LAG_MS (found by the caller) to the reference's length,
both are resampled to 16 kHz, and P.862.2 wideband PESQ is printed (MOS-LQO).
Needs the PyPI packages numpy, scipy, soundfile and pesq (scripts/bench.sh installs them).
"""
import sys

import numpy as np
import soundfile as sf
from pesq import pesq
from scipy.signal import resample_poly


def mono(path):
    x, rate = sf.read(path)
    if rate != 48000:
        sys.exit(f"{path}: expected 48 kHz, got {rate}")
    return x.mean(axis=1) if x.ndim > 1 else x


ref, deg = mono(sys.argv[1]), mono(sys.argv[2])
start = max(0, int(round(float(sys.argv[3]) * 48)))
seg = deg[start:start + len(ref)]
seg = np.pad(seg, (0, len(ref) - len(seg)))
print(f"{pesq(16000, resample_poly(ref, 1, 3), resample_poly(seg, 1, 3), 'wb'):.3f}")
