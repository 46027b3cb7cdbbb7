"""Arithmetic-coding helpers shared by test_arithmetic and test_lm: seeded distributions, our coder's bytes."""
import io

import numpy as np

from encodec_np.errors import EncodecError
from encodec_np.format.arithmetic import ArithmeticCoder, ArithmeticDecoder


def random_pdfs(rng, steps, card, kind):
    """[steps, card] float32 distributions of a given shape family."""
    if kind == "uniform":
        logits = 1e-3 * rng.standard_normal((steps, card))
    elif kind == "flat":
        logits = rng.standard_normal((steps, card))
    elif kind == "peaked":
        logits = 25 * rng.standard_normal((steps, card))
    elif kind == "one-hot":       # one symbol holds (almost) all the mass
        logits = np.full((steps, card), -200.0)
        logits[np.arange(steps), rng.integers(0, card, steps)] = 0.0
    else:                         # "mixed": a few likely symbols, the rest below the 1e-8 floor
        logits = rng.standard_normal((steps, card)) - 30
        logits[:, rng.integers(0, card, 3)] += 30
    logits = logits.astype(np.float32)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def draw_symbols(rng, pdfs, how):
    if how == "uniform":          # ignore the pdf: rare symbols cost up to ~23 bits each
        return rng.integers(0, pdfs.shape[1], pdfs.shape[0])
    cum = np.cumsum(pdfs.astype(np.float64), axis=1)
    u = rng.random((pdfs.shape[0], 1)) * cum[:, -1:]
    return np.minimum((cum < u).sum(axis=1), pdfs.shape[1] - 1)


def our_encode(cdfs, symbols, coder_out=None):
    fo = io.BytesIO()
    coder = ArithmeticCoder(fo, record=True)
    if coder_out is not None:
        coder_out.append(coder)
    for cdf, s in zip(cdfs, symbols):
        coder.push(int(s), cdf)
    coder.flush()
    return fo.getvalue()


def our_decode(payload, cdfs):
    """Decoded symbols, or None when the decoder raises."""
    decoder = ArithmeticDecoder(io.BytesIO(payload))
    try:
        return [decoder.pull(cdf) for cdf in cdfs]
    except EncodecError:
        return None
