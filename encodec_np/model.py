"""``EncodecModel``: the official EnCodec API on NumPy arrays.

::

    x [B, C, T] ─┬─ segment (48 kHz: 1 s, 1 % overlap) ─ normalize (RMS scale)
                 └─ SEANet encoder ─ [B, D, F] ─ RVQ ─ codes [B, K, F]
    codes ─ RVQ decode ─ SEANet decoder ─ × scale ─ overlap-add ─ y [B, C, >= T]
"""
from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import numpy as np

from . import quantization as rvq
from .config import EncodecConfig
from .errors import EncodecError
from .geometry import linear_overlap_add
from .io.checkpoint import read_checkpoint, resolve_checkpoint
from .seanet import decoder_layers, encoder_layers, run_layers
from .streaming import StreamingDecoder, StreamingEncoder
from .validate import MAX_SCALE, check_params, float_array, resolve_dtype

EncodedFrame = Tuple[np.ndarray, Optional[np.ndarray]]


class EncodecModel:
    """EnCodec on NumPy arrays, mirroring ``encodec.EncodecModel``.

    Parameters
    ----------
    config : EncodecConfig
    params : dict of str → ndarray
        Folded weights named as in :func:`expected_param_shapes`.
    backend : str
        ``"numpy"`` (the reference), another name from
        :func:`encodec_np.available_backends`, or ``"auto"``.
    dtype : ``"float32"`` (default) or ``"float64"`` (oracle use).
    threads : int, optional
        Threads for this model's calls (default: all cores). The ``numba``
        backend runs its own parallel loops with single-threaded BLAS inside;
        the ``numpy`` backend caps BLAS threads.

    Causal models without segments (24 kHz) encode and decode inputs longer
    than :attr:`long_input_seconds` (10 s) through :mod:`encodec_np.streaming`,
    in chunks of :attr:`chunk_seconds` (1 s): the codes are identical to one
    pass over the whole input (tested), the working memory is that of a 1 s
    input whatever the length, and the time per second of audio does not grow.
    """

    def __init__(self, config: EncodecConfig, params: dict, *, backend: str = "auto",
                 dtype="float32", threads: Optional[int] = None):
        from encodec_np.kernels import backend_name, get_backend

        self.config = config
        self.dtype = resolve_dtype(dtype)
        self.ops = get_backend(backend)
        self.backend = backend_name(self.ops)
        check_params(config, params)
        self.params = {k: np.ascontiguousarray(v, dtype=self.dtype) for k, v in params.items()}
        self.encoder_layers = encoder_layers(config.seanet)
        self.decoder_layers = decoder_layers(config.seanet)
        self.bandwidth: Optional[float] = None
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise EncodecError(f"threads must be a positive integer or None, got {threads!r}")
        self.threads = threads
        #: Causal models: inputs longer than this (seconds) go through the streaming path ...
        self.long_input_seconds = 10.0
        #: ... in chunks of this many seconds. 1 s keeps the activations near 30 MB and
        #: measured as fast per second of audio as one 10 s pass (benchmarks/bench_streaming.py).
        self.chunk_seconds = 1.0
        #: Models with segments (48 kHz): this many full segments go through the network as one batch.
        #: 60 s of stereo, numba: batches of 2 ran at 5.9x / 5.6x (1 thread) and 11.4x / 10.3x
        #: (2 threads) with a 458 MB peak, batches of 8 at 5.8x / 5.5x and 10.3x / 9.4x with 674 MB.
        self.segment_batch = 2

    def thread_scope(self):
        """Context manager: this model's thread settings (:attr:`threads`) for the calls inside it."""
        from encodec_np.kernels import thread_scope
        return thread_scope(self.ops, self.threads)

    @classmethod
    def from_pretrained(cls, name: str, *, cache_dir=None, backend: str = "auto",
                        dtype="float32") -> "EncodecModel":
        """A model by name: shipped, Meta's (downloaded once and cached) or from the Hugging Face cache.

        Parameters
        ----------
        name : str
            Any of ``encodec_np.io.checkpoint.PRETRAINED_NAMES``:
            ``"encodec_np_small_24khz"`` (shipped in the package, offline),
            ``"encodec_24khz"``, ``"encodec_48khz"`` (Meta's files),
            ``"facebook/encodec_24khz"``, ``"facebook/encodec_32khz"``,
            ``"facebook/encodec_48khz"`` (Hugging Face snapshots); see
            :func:`~encodec_np.model.load_model`.
        cache_dir : str or Path, optional
            Where the checkpoint is cached; default ``$ENCODEC_NP_CACHE``, else
            ``$XDG_CACHE_HOME/encodec_np``, else ``~/.cache/encodec_np``.
        backend : str
            As for :class:`EncodecModel`.
        dtype : ``"float32"`` (default) or ``"float64"``.

        Raises
        ------
        EncodecError
            Unknown name, or the download failed; the message says how to load
            a local copy of the file instead.
        CheckpointError
            The download does not match its checksum.
        """
        return load_model(name, backend=backend, dtype=dtype, cache_dir=cache_dir)

    # ------------------------------------------------------------------ official attributes
    @property
    def name(self) -> str:
        """The model's name (``"encodec_24khz"`` ...), as written in ``.ecdc`` headers."""
        return self.config.name

    @property
    def sample_rate(self) -> int:
        """Audio samples per second."""
        return self.config.sample_rate

    @property
    def channels(self) -> int:
        """Audio channels (1 mono, 2 stereo)."""
        return self.config.channels

    @property
    def frame_rate(self) -> int:
        """Code frames per second."""
        return self.config.frame_rate

    @property
    def target_bandwidths(self) -> list[float]:
        """The bandwidths (kbps) :meth:`set_target_bandwidth` accepts."""
        return list(self.config.target_bandwidths)

    @property
    def normalize(self) -> bool:
        """Whether each segment is scaled to unit RMS before encoding (its scale travels with the codes)."""
        return self.config.normalize

    @property
    def segment_length(self) -> Optional[int]:
        """Samples per segment, or None for models that encode the whole input in one pass."""
        return self.config.segment_length

    @property
    def segment_stride(self) -> Optional[int]:
        """Samples between the starts of consecutive segments, or None without segments."""
        return self.config.segment_stride

    @property
    def bits_per_codebook(self) -> int:
        """Bits of one code: ``log2(bins)``."""
        return self.config.quantizer.bits_per_codebook

    @property
    def num_codebooks(self) -> int:
        """Codebooks used at the current bandwidth."""
        return rvq.num_codebooks(self.config.quantizer, self.frame_rate, self.bandwidth)

    def __repr__(self):
        return (f"EncodecModel(name={self.name!r}, sample_rate={self.sample_rate}, channels={self.channels}, "
                f"bandwidth={self.bandwidth}, backend={self.backend!r}, dtype={self.dtype.name!r})")

    def set_target_bandwidth(self, bandwidth: Optional[float]) -> None:
        """Use ``bandwidth`` kbps from now on: it sets :attr:`num_codebooks`.

        Parameters
        ----------
        bandwidth : float or None
            One of :attr:`target_bandwidths` (others raise :class:`EncodecError`); ``None`` uses every codebook.
        """
        if bandwidth is not None and bandwidth not in self.config.target_bandwidths:
            raise EncodecError(f"this model doesn't support the bandwidth {bandwidth}; "
                               f"select one of {self.target_bandwidths} (or None for all codebooks)")
        self.bandwidth = bandwidth

    # ------------------------------------------------------------------ network halves
    def encode_embeddings(self, x: np.ndarray, trace=None) -> np.ndarray:
        """SEANet encoder: ``x [B, C, T]`` (validated, model dtype) → ``[B, D, ceil(T / hop)]``.

        On a device backend (``cuda``) this, :meth:`dequantize` and
        :meth:`decode_embeddings` return device arrays; ``model.ops.to_host`` fetches them.

        Parameters
        ----------
        x : [B, C, T]
            Audio as :meth:`check_audio` returns it (not checked here).
        trace : callable, optional
            ``trace(layer_name, activation)`` after each layer (:func:`~encodec_np.seanet.run_layers`).
        """
        return run_layers(self.encoder_layers, self.ops.to_device(x), self.params, self.ops, trace)

    def decode_embeddings(self, emb: np.ndarray, trace=None) -> np.ndarray:
        """SEANet decoder: ``[B, D, F]`` → ``[B, C, F * hop]`` (a backend array).

        Parameters
        ----------
        emb : [B, D, F]
            Embeddings, e.g. from :meth:`dequantize`; a NumPy or backend array.
        trace : callable, optional
            As for :meth:`encode_embeddings`.
        """
        return run_layers(self.decoder_layers, emb, self.params, self.ops, trace)

    def quantize(self, emb: np.ndarray) -> np.ndarray:
        """RVQ at the current bandwidth: ``[B, D, F]`` → codes ``[B, K, F]`` int64.

        Parameters
        ----------
        emb : [B, D, F]
            Embeddings from :meth:`encode_embeddings`.

        Returns
        -------
        codes : [B, K, F] int64
            ``K`` is :attr:`num_codebooks`; a NumPy array on every backend.
        """
        return rvq.encode(emb, self.params[rvq.CODEBOOKS], self.num_codebooks, self.ops)

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        """Codes ``[B, K, F]`` → quantized embeddings ``[B, D, F]`` (a backend array).

        Parameters
        ----------
        codes : [B, K, F] int
            Any ``K`` up to the model's ``n_q``; not checked here (see :meth:`check_frames`).
        """
        return rvq.decode(codes, self.params[rvq.CODEBOOKS], self.ops)

    # ------------------------------------------------------------------ official API
    def encode(self, x: np.ndarray, progress: Optional[Callable[[int, int], None]] = None) -> List[EncodedFrame]:
        """Encode audio into a list of frames ``(codes [B, K, F] int64, scale [B, 1] or None)``.

        Models with segments (48 kHz) return one frame per segment, with the
        RMS scale of each segment when the model normalizes.

        Parameters
        ----------
        x : [B, C, T] float
            Audio at the model's rate and channels, nominally in [-1, 1].
        progress : callable, optional
            ``progress(done, total)``: after each chunk of a long input (causal
            models, see :attr:`long_input_seconds`), after each segment
            (models with segments), else before and after the single pass.
            The result does not depend on it.

        Returns
        -------
        list of (codes [B, K, F] int64, scale [B, 1] or None)
        """
        x = self.check_audio(x)
        length = x.shape[-1]
        if self.chunks_input(length):
            return [(self._encode_in_chunks(x, progress), None)]
        segments = [x[:, :, offset:offset + (self.segment_length or length)]
                    for offset in range(0, length, self.segment_stride or length)]
        return self._per_segment(self.encode_segment, segments, lambda parts: np.concatenate(parts, axis=0),
                                 _split_frame, progress)

    def _per_segment(self, run, items: list, stack, split, progress) -> list:
        """``[run(item) for item in items]``, consecutive same-shaped items run as one batch.

        Segments are independent, so up to :attr:`segment_batch` of them go
        through the network together (``stack`` joins items along the batch
        axis, ``split(result, n)`` cuts a result into ``n`` items); on the
        ``numba`` backend the results are the same bits as one at a time.
        Runs under the thread scope and reports progress as :meth:`encode` says.
        """
        if progress is not None and self.segment_length is None:
            progress(0, 1)
        out: list = []
        with self.thread_scope():
            start = 0
            while start < len(items):
                end = start + 1
                while (end < len(items) and end - start < self.segment_batch
                       and _batch_shape(items[end]) == _batch_shape(items[start])):
                    end += 1
                group = items[start:end]
                out.extend([run(group[0])] if len(group) == 1 else split(run(stack(group)), len(group)))
                start = end
                if progress is not None:
                    progress(start, len(items))
        return out

    def _streams(self) -> bool:
        """Causal models without segments process long inputs chunk by chunk (exactly)."""
        return (self.config.seanet.causal and self.segment_length is None and not self.normalize
                and not self.ops.ON_DEVICE)

    def chunks_input(self, samples: int) -> bool:
        """Whether an input of ``samples`` per channel goes through the chunked (streaming) path.

        The one place that decides it: :meth:`encode`, :meth:`decode` and the
        file helpers ask here.

        Parameters
        ----------
        samples : int
            Audio samples per channel (for decoding: frames times the hop).
        """
        return self._streams() and samples > self.long_input_seconds * self.sample_rate

    def _encode_in_chunks(self, x: np.ndarray, progress=None) -> np.ndarray:
        """Codes ``[B, K, F]`` of ``x [B, C, T]`` through :class:`StreamingEncoder`, chunk by chunk.

        ``progress(done, total)`` (optional) is called after each chunk.
        """
        frames = -(-x.shape[-1] // self.config.seanet.hop_length)
        return self._in_chunks(StreamingEncoder(self), x, int(self.chunk_seconds * self.sample_rate), frames,
                               progress)

    def _decode_in_chunks(self, codes: np.ndarray, progress=None) -> np.ndarray:
        """Audio ``[B, C, F * hop]`` of ``codes [B, K, F]`` through :class:`StreamingDecoder`."""
        samples = codes.shape[-1] * self.config.seanet.hop_length
        return self._in_chunks(StreamingDecoder(self), codes, int(self.chunk_seconds * self.frame_rate), samples,
                               progress)

    @staticmethod
    def _in_chunks(stream, x: np.ndarray, step: int, total_out: int, progress) -> np.ndarray:
        """Push ``x`` in ``step``-long chunks and flush, into one preallocated ``[..., total_out]`` array.

        A list of parts plus a concatenation would hold the output twice.
        """
        step = max(1, step)
        chunks = -(-x.shape[-1] // step)
        out, filled = None, 0
        for n, y in enumerate(stream.chunks(x, step)):
            if out is None:
                out = np.empty(y.shape[:-1] + (total_out,), y.dtype)
            out[..., filled:filled + y.shape[-1]] = y
            filled += y.shape[-1]
            if progress is not None and n < chunks:
                progress(n + 1, chunks)
        if filled != total_out:  # the streams' contract; a failure here is a bug, not bad input
            raise EncodecError(f"internal error: streaming gave {filled} outputs, expected {total_out}")
        return out

    def encode_segment(self, x: np.ndarray) -> EncodedFrame:
        """One pass of the network over ``x [B, C, T]`` (a whole input, or one segment of it).

        No validation or chunking: :meth:`encode` is the public entry; streams
        call this per segment.

        Parameters
        ----------
        x : [B, C, T]
            Audio in the model's dtype, as :meth:`check_audio` returns it.

        Returns
        -------
        (codes [B, K, F] int64, scale [B, 1] or None)
            The scale is the segment's RMS (plus 1e-8) when the model normalizes.
        """
        scale = None
        if self.normalize:
            mono = x.mean(axis=1, keepdims=True)
            scale = self.dtype.type(1e-8) + np.sqrt((mono ** 2).mean(axis=2, keepdims=True))
            x = x / scale
            scale = scale.reshape(-1, 1)
        return self.quantize(self.encode_embeddings(x)), scale

    def decode(self, encoded_frames: List[EncodedFrame],
               progress: Optional[Callable[[int, int], None]] = None) -> np.ndarray:
        """Decode frames from :meth:`encode` into audio ``[B, C, T']``.

        ``T'`` may exceed the encoded length (whole frames); trim as needed.

        Parameters
        ----------
        encoded_frames : list of (codes [B, K, F] int, scale [B, 1] or None)
        progress : callable, optional
            ``progress(done, total)``, as for :meth:`encode`.

        Returns
        -------
        [B, C, T'] float
        """
        frames = self.check_frames(encoded_frames)
        if self.segment_length is None and len(frames) != 1:
            raise EncodecError(f"this model has no segments: expected 1 frame, got {len(frames)}")
        if self.chunks_input(frames[0][0].shape[-1] * self.config.seanet.hop_length):
            return self._decode_in_chunks(frames[0][0], progress)
        outs = self._per_segment(self.decode_segment, frames, _stack_frames, _split_audio, progress)
        return outs[0] if self.segment_length is None else linear_overlap_add(outs, self.segment_stride)

    def decode_segment(self, frame: EncodedFrame) -> np.ndarray:
        """One pass of the decoder over a frame → audio ``[B, C, T]``.

        No validation, overlap-add or chunking: :meth:`decode` is the public entry.

        Parameters
        ----------
        frame : (codes [B, K, F] int, scale [B, 1] or None)
            As from :meth:`encode_segment`; the audio is multiplied by the scale.

        Returns
        -------
        [B, C, F * hop]
            A NumPy array.
        """
        codes, scale = frame
        out = self.ops.to_host(self.decode_embeddings(self.dequantize(codes)))
        if scale is not None:
            out = out * scale.reshape(-1, 1, 1)
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Encode then decode, trimmed to the input length: ``[B, C, T]`` → ``[B, C, T]``.

        Parameters
        ----------
        x : [B, C, T] float ndarray
            As for :meth:`encode`.
        """
        x = self.check_audio(x)
        return self.decode(self.encode(x))[:, :, :x.shape[-1]]

    forward = __call__

    # ------------------------------------------------------------------ validation
    def check_audio(self, x) -> np.ndarray:
        """Validate audio ``[B, C, T]`` and return it contiguous in the model dtype.

        Parameters
        ----------
        x : ndarray
            Must be a floating-point NumPy array ``[B, C, T]``, finite and not
            empty, with the model's channels; otherwise :class:`EncodecError`.

        Returns
        -------
        [B, C, T] in the model's dtype
        """
        x = float_array(x, "audio", 3, array_only=True)
        if x.shape[1] != self.channels:
            raise EncodecError(f"{self.name} expects {self.channels} channel(s), got {x.shape[1]}; "
                               "convert with encodec_np.convert_audio or mix/duplicate channels")
        return np.ascontiguousarray(x, dtype=self.dtype)

    def check_frames(self, encoded_frames) -> List[EncodedFrame]:
        """Validate frames for :meth:`decode`; codes become int64, scales the model dtype.

        Parameters
        ----------
        encoded_frames : list of (codes [B, K, F] int, scale [B, 1] or None)
            A non-empty list; every frame has the same ``B`` and ``K``, codes
            lie in ``[0, bins)``, and scales are given exactly when the model
            normalizes (positive, finite, at most :data:`MAX_SCALE`).
            Anything else raises :class:`EncodecError`.

        Returns
        -------
        list of (codes [B, K, F] int64, scale [B] or None)
        """
        if not isinstance(encoded_frames, (list, tuple)) or not encoded_frames:
            raise EncodecError("decode expects a non-empty list of (codes, scale) frames, as returned by encode")
        q = self.config.quantizer
        checked, batch, n_codebooks = [], None, None
        for i, frame in enumerate(encoded_frames):
            if not isinstance(frame, (list, tuple)) or len(frame) != 2:
                raise EncodecError(f"frame {i} must be a (codes, scale) pair")
            codes, scale = frame
            codes = np.asarray(codes)
            if codes.ndim != 3 or 0 in codes.shape:
                raise EncodecError(f"frame {i}: codes must have shape [B, K, F] with no empty axis, got {codes.shape}")
            if not np.issubdtype(codes.dtype, np.integer):
                raise EncodecError(f"frame {i}: codes must be integers, got dtype {codes.dtype}")
            b, k, _ = codes.shape
            if not 1 <= k <= q.n_q:
                raise EncodecError(f"frame {i}: {k} codebooks, but the model has 1 to {q.n_q}")
            if (batch, n_codebooks) != (None, None) and (b, k) != (batch, n_codebooks):
                raise EncodecError(f"frame {i}: shape {codes.shape} differs from frame 0 in batch or codebooks")
            batch, n_codebooks = b, k
            lo, hi = int(codes.min()), int(codes.max())
            if lo < 0 or hi >= q.bins:
                raise EncodecError(f"frame {i}: codes must lie in [0, {q.bins}), found [{lo}, {hi}]")
            if self.normalize:
                if scale is None:
                    raise EncodecError(f"frame {i}: {self.name} normalizes audio, so each frame needs its scale [B, 1]")
                scale = np.asarray(scale, dtype=self.dtype).reshape(-1)
                if scale.shape != (b,) or not np.isfinite(scale).all() or (scale <= 0).any() or (scale > MAX_SCALE).any():
                    raise EncodecError(f"frame {i}: scale must be {b} positive finite values up to {MAX_SCALE:g}, "
                                       f"got {scale}")
            elif scale is not None:
                raise EncodecError(f"frame {i}: {self.name} does not normalize; pass scale=None")
            checked.append((codes.astype(np.int64), scale))
        return checked


def _batch_shape(item) -> tuple:
    """The shape an item must share with others to join their batch: audio, or a frame's codes."""
    return item[0].shape if isinstance(item, tuple) else item.shape


def _split_frame(frame: EncodedFrame, n: int) -> List[EncodedFrame]:
    """One encoded batch of ``n`` segments → ``n`` frames."""
    codes, scale = frame
    size = codes.shape[0] // n
    return [(codes[i * size:(i + 1) * size], None if scale is None else scale[i * size:(i + 1) * size])
            for i in range(n)]


def _stack_frames(frames: List[EncodedFrame]) -> EncodedFrame:
    """``n`` frames of the same shape → one frame of ``n`` times the batch."""
    scales = [scale for _, scale in frames]
    return (np.concatenate([codes for codes, _ in frames], axis=0),
            None if scales[0] is None else np.concatenate(scales, axis=0))


def _split_audio(audio: np.ndarray, n: int) -> List[np.ndarray]:
    """Decoded audio of ``n`` stacked segments → ``n`` arrays."""
    return np.split(audio, n, axis=0)


def load_model(path_or_name=None, *, backend: str = "auto", dtype="float32",
               config: EncodecConfig | None = None, cache_dir=None, threads: int | None = None):
    """Load an :class:`~encodec_np.model.EncodecModel`.

    Parameters
    ----------
    path_or_name : str or Path, optional
        One of :data:`PRETRAINED_NAMES`, or a checkpoint path (Meta ``.th``,
        Hugging Face folder, ``.safetensors``):

        * ``None`` or ``"encodec_np_small_24khz"``: the small model shipped in
          the package, trained for this project (no download);
        * ``"encodec_24khz"``, ``"encodec_48khz"``: Meta's files, downloaded
          once into the cache and checked against their sha256;
        * ``"facebook/encodec_24khz"``, ``"facebook/encodec_32khz"``,
          ``"facebook/encodec_48khz"`` (any Hugging Face repository id): the
          snapshot in the Hugging Face cache, found offline, or downloaded
          with ``huggingface_hub`` when it is installed.
    backend : str
        ``"auto"``, ``"numpy"`` or another available backend.
    dtype : ``"float32"`` or ``"float64"``.
    config : EncodecConfig, optional
        Overrides the configuration inferred from the file.
    cache_dir : str or Path, optional
        Where Meta's files are cached (see :func:`resolve_checkpoint`).
    threads : int, optional
        Threads per call (default: all cores); see :class:`~encodec_np.model.EncodecModel`.

    Returns
    -------
    EncodecModel
    """
    cfg, params = read_checkpoint(resolve_checkpoint(path_or_name, cache_dir), config)
    return EncodecModel(cfg, params, backend=backend, dtype=dtype, threads=threads)
