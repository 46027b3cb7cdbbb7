"""Golden vectors: every intermediate of one encode/decode pass, for porters.

A porter (to C, Rust, a GPU, another framework) loads the ``.npz`` written by
:func:`export_golden` and compares layer by layer:

==========================  ====================  ==================================================
key                         shape                 what
==========================  ====================  ==================================================
``input``                   [B, C, T]             the audio the vectors describe (see segments below)
``scale``                   [B, 1]                RMS scale (normalizing models only)
``encoder_input``           [B, C, T]             ``input / scale`` (normalizing models only)
``act/<layer>``             [B, ch, t]            output of every layer, official names:
                                                  ``act/encoder.model.0`` ... and residual-block
                                                  internals ``act/encoder.model.1.block.0`` ...
                                                  (the shortcut branch is not traced separately)
``embeddings``              [B, D, F]             encoder output (= last ``act/encoder.*``)
``codes``                   [B, K, F] int64       RVQ codes at ``bandwidth``
``residual_norms``          [B, K, F]             L2 norm of the residual codebook ``k`` quantizes
``code_margin``             [B, K, F]             official score of the best code minus the
                                                  second best (>= 0; near 0 means a near tie,
                                                  where another summation order may pick
                                                  another index)
``quantized``               [B, D, F]             sum of the selected codebook vectors
``decoded``                 [B, C, F * hop]       decoder output (times ``scale`` if normalizing)
``meta/...``                0-d                   ``sample_rate``, ``bandwidth`` (0.0: all codebooks),
                                                  ``model_name``, ``num_codebooks``, ``hop_length``,
                                                  ``frame_rate``, ``dtype``, ``backend``,
                                                  ``segment_only``, ``segment_length`` (0: none),
                                                  ``input_length``, ``version``
==========================  ====================  ==================================================

Segments: models with segments (48 kHz: 1 s segments, 1 % overlap) are
described for their **first segment only** (``meta/segment_only`` is True and
``input`` is ``x[..., :segment_length]``). Every later segment goes through
exactly the same steps on its own slice and scale; overlap-add is the only
step between segments, and :func:`encodec_np.geometry.linear_overlap_add` is
small enough to port by reading. ``decoded`` is the segment's decoder output
before overlap-add (with a single segment, overlap-add divides ``w * y`` by
``w`` and may change the last bit).

The scores in ``code_margin`` use the official formula
``-(|x|^2 - 2 x.e + |e|^2)`` (:func:`encodec_np.ops.code_distances`) in the
model's dtype, along the residual path of the returned codes.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import ops as reference_ops
from .quantization import CODEBOOKS

GOLDEN_VERSION = 1


def golden_vectors(model, x: np.ndarray, bandwidth: float | None = None) -> dict[str, np.ndarray]:
    """Run ``model`` on ``x [B, C, T]`` at ``bandwidth`` and return every intermediate.

    The model's own bandwidth setting is restored afterwards. See the module
    docstring for the keys.

    Parameters
    ----------
    model : EncodecModel
    x : [B, C, T] float ndarray
        Models with segments see only the first segment.
    bandwidth : float, optional
        One of ``model.target_bandwidths``; ``None`` uses all codebooks.

    Returns
    -------
    dict of str → ndarray
    """
    x = model.check_audio(x)
    input_length = x.shape[-1]
    seg = model.segment_length
    if seg is not None:
        x = x[:, :, :seg]
    dtype = model.dtype
    out: dict[str, np.ndarray] = {"input": x.copy()}

    scale = None
    encoder_input = x
    if model.normalize:  # as EncodecModel.encode_segment
        mono = x.mean(axis=1, keepdims=True)
        scale = dtype.type(1e-8) + np.sqrt((mono ** 2).mean(axis=2, keepdims=True))
        encoder_input = x / scale
        out["scale"] = scale.reshape(-1, 1).copy()
        out["encoder_input"] = encoder_input.copy()

    def trace(name: str, activation: np.ndarray) -> None:
        out[f"act/{name}"] = np.array(activation, copy=True)

    previous = model.bandwidth
    model.set_target_bandwidth(bandwidth)
    try:
        emb = model.encode_embeddings(encoder_input, trace=trace)
        codes = model.quantize(emb)
        num_codebooks = model.num_codebooks
    finally:
        model.bandwidth = previous
    norms, margins = residual_path(emb, codes, model.params[CODEBOOKS])
    quantized = model.dequantize(codes)
    decoded = model.decode_embeddings(quantized, trace=trace)
    if scale is not None:
        decoded = decoded * scale.reshape(-1, 1, 1)

    out.update({
        "embeddings": emb.copy(), "codes": codes.astype(np.int64), "residual_norms": norms,
        "code_margin": margins, "quantized": quantized.copy(), "decoded": decoded,
        "meta/sample_rate": np.array(model.sample_rate),
        "meta/bandwidth": np.array(0.0 if bandwidth is None else float(bandwidth)),
        "meta/model_name": np.array(str(model.name)),
        "meta/num_codebooks": np.array(num_codebooks),
        "meta/hop_length": np.array(model.config.seanet.hop_length),
        "meta/frame_rate": np.array(model.frame_rate),
        "meta/dtype": np.array(dtype.name),
        "meta/backend": np.array(str(model.backend)),
        "meta/segment_only": np.array(seg is not None),
        "meta/segment_length": np.array(seg or 0),
        "meta/input_length": np.array(input_length),
        "meta/version": np.array(GOLDEN_VERSION),
    })
    return out


def residual_path(emb: np.ndarray, codes: np.ndarray, codebooks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Residual norms and best-minus-second-best scores along the path of ``codes``.

    Parameters
    ----------
    emb : [B, D, F]
    codes : [B, K, F] int
    codebooks : [>= K, bins, D]

    Returns
    -------
    residual_norms : [B, K, F]
        The norm of what codebook ``k`` quantizes, in ``emb``'s dtype.
    code_margin : [B, K, F]
        The best score minus the second best (:func:`encodec_np.ops.code_distances`).
    """
    b, d, f = emb.shape
    k = codes.shape[1]
    residual = emb.transpose(0, 2, 1).reshape(b * f, d).copy()
    flat_codes = codes.transpose(1, 0, 2).reshape(k, b * f)
    norms = np.empty((k, b * f), dtype=emb.dtype)
    margins = np.empty((k, b * f), dtype=emb.dtype)
    for q in range(k):
        book = codebooks[q]
        norms[q] = np.sqrt((residual ** 2).sum(axis=1))
        scores = reference_ops.code_distances(residual, book)
        top2 = np.partition(scores, scores.shape[1] - 2, axis=1)[:, -2:]
        margins[q] = top2[:, 1] - top2[:, 0]
        residual = residual - book[flat_codes[q]]
    shape = (k, b, f)
    return norms.reshape(shape).transpose(1, 0, 2).copy(), margins.reshape(shape).transpose(1, 0, 2).copy()


def export_golden(model, x: np.ndarray, path, bandwidth: float | None = None) -> Path:
    """Write :func:`golden_vectors` to ``path`` as a compressed ``.npz`` (exactly that name).

    Loads back with ``np.load(path)`` (no pickles).

    Parameters
    ----------
    model, x, bandwidth
        As for :func:`golden_vectors`.
    path : str or Path

    Returns
    -------
    Path
    """
    path = Path(path)
    vectors = golden_vectors(model, x, bandwidth)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **vectors)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
