"""Exact streaming for causal models: push audio or codes chunk by chunk.

Each layer of the official SEANet gets a streaming twin that carries what the
next chunk needs: a conv keeps the tail of its input (its receptive field), a
transposed conv the input frames its next outputs still read, the LSTM its (h, c), a
residual block the outputs one branch produced ahead of the other. The
concatenated outputs equal the one-shot ``encode`` / ``decode`` of the whole
signal, including both ends:

* start: the official causal conv reflect-pads ``k - s`` samples on the left,
  i.e. reads ``x[1 .. k - s]`` — a few samples *ahead*; a frame is emitted once
  every sample it reads has arrived;
* end: :meth:`flush` applies the one-shot right padding (the ``extra``
  samples that complete the last window, reflected), which depends on the
  total length, so the last frames of each strided conv wait for ``flush``.

Algorithmic latency of the 24 kHz model (measured in ``tests/test_streaming.py``):
the encoder releases code frame ``i`` as soon as samples up to ``(i + 1) * 320``
have arrived, except at the start, where the last conv (k = 7) reflect-pads
its left edge with frames 1-6: the first 7 frames come out together after
2240 samples (93 ms). The decoder likewise needs 7 code frames before it
releases its first 2240 samples, then 320 samples per frame; its ``flush``
adds nothing. The encoder's ``flush`` releases the last, padded frames.
"""
from __future__ import annotations

import numpy as np

from . import geometry
from . import quantization as rvq
from .errors import EncodecError
from .geometry import overlap_weights
from .seanet import ELU, LSTM, Conv, ConvTranspose, ResBlock


class _Conv:
    """Streaming ``SConv1d`` (causal): input samples in, final output frames out."""

    def __init__(self, layer: Conv, params, ops):
        if not layer.causal or layer.group_norm:
            raise EncodecError("streaming needs a causal model without GroupNorm")
        self.layer, self.ops = layer, ops
        p = f"{layer.name}.conv."
        self.weight, self.bias = params[p + "conv.weight"], params[p + "conv.bias"]
        self.k, self.s, self.d = layer.kernel_size, layer.stride, layer.dilation
        self.span = (self.k - 1) * self.d + 1
        self.left = self.span - self.s  # causal: all of padding_total on the left
        self.buf = None                 # x[base:received]
        self.base = self.received = self.emitted = 0

    def _padded(self, q0: int, q1: int) -> np.ndarray:
        """Padded positions [q0, q1) before the right end; the left pad by :func:`geometry.source_index`."""
        start = q0 - self.left - self.base
        if start >= 0:  # past the start: a plain slice of the buffer
            return self.buf[..., start:q1 - self.left - self.base]
        # Inside the left pad, so nothing was trimmed yet (base is 0).
        mode = geometry.MODES[self.layer.pad_mode]
        known = self.buf.shape[-1]
        zero = np.zeros_like(self.buf[..., 0])
        pad = [self.buf[..., i] if i >= 0 else zero
               for i in (geometry.source_index(p, known, self.left, known, mode) for p in range(q0, self.left))]
        return np.concatenate([np.stack(pad, axis=-1), self.buf[..., :q1 - self.left]], axis=-1)

    def push(self, x: np.ndarray) -> np.ndarray:
        self.buf = x if self.buf is None else np.concatenate([self.buf, x], axis=-1)
        self.received += x.shape[-1]
        # Frame i reads x[i*s - left .. i*s - left + span - 1] = x[.. (i + 1) * s - 1]
        # (span - left == s), so frames below received // s are final; at the start
        # a reflect pad also reads x[left - i*s], which may not have arrived yet.
        end = self.received // self.s
        if self.layer.pad_mode == "reflect":
            for i in range(self.emitted, min(end, -(-self.left // self.s))):
                if self.left - i * self.s >= self.received:
                    end = i
                    break
        ready = max(0, end - self.emitted)
        y = self._frames(ready)
        self._trim()
        return y

    def _frames(self, n: int) -> np.ndarray:
        if n == 0:
            return np.zeros(self.buf.shape[:-1][:1] + (self.weight.shape[0], 0), self.buf.dtype)
        q0 = self.emitted * self.s
        q1 = q0 + (n - 1) * self.s + self.span
        if q0 - self.left == self.base and self.base + self.buf.shape[-1] - (q1 - self.left) < self.s:
            window = self.buf  # the whole buffer gives the same n frames, without a copy
        else:
            window = self._padded(q0, q1)
        self.emitted += n
        return self.ops.conv1d(window, self.weight, self.bias, self.s, self.d)

    def _trim(self):
        keep_from = max(0, self.emitted * self.s - self.left)
        if self.layer.pad_mode == "reflect" and self.emitted * self.s < self.left:
            keep_from = 0
        if keep_from > self.base:
            # A copy, not a view: a view would keep the whole pushed chunk alive.
            self.buf = self.buf[..., keep_from - self.base:].copy()
            self.base = keep_from

    def flush(self) -> np.ndarray:
        if self.buf is None or self.received == 0:
            return None
        length = self.received
        left, right = self.ops.conv_padding(length, self.k, self.s, self.d, True)
        total = (length + left + right - self.span) // self.s + 1
        n = total - self.emitted
        if n <= 0:
            return None
        if self.base == 0:  # everything is still here: pad exactly as one-shot (tiny inputs too)
            padded = self.ops.pad1d(self.buf, left, right, self.layer.pad_mode)
        else:
            tail = self.ops.pad1d(self.buf, 0, right, self.layer.pad_mode)
            padded = np.concatenate([np.zeros(tail.shape[:-1] + (self.base + left,), tail.dtype), tail], axis=-1)
        q0 = self.emitted * self.s
        window = padded[..., q0:q0 + (n - 1) * self.s + self.span]
        self.emitted += n
        return self.ops.conv1d(window, self.weight, self.bias, self.s, self.d)


class _ConvTranspose:
    """Streaming ``SConvTranspose1d`` (causal): keeps its last ``J - 1`` input frames, ``J = ceil(k / s)``.

    Output ``q * s + r`` reads frames ``q - J + 1 .. q``; recomputing it from
    the kept frames (rather than adding a stored partial output) repeats the
    one-shot arithmetic exactly, so the backends that sum in a fixed order
    stream bit for bit.
    """

    def __init__(self, layer: ConvTranspose, params, ops):
        if not layer.causal or layer.group_norm:
            raise EncodecError("streaming needs a causal model without GroupNorm")
        p = f"{layer.name}.convtr."
        self.weight, self.bias, self.ops = params[p + "convtr.weight"], params[p + "convtr.bias"], ops
        self.s, self.k = layer.stride, layer.kernel_size
        self.keep = -(-self.k // self.s) - 1
        self.skip, self.right = layer.trim()  # samples trimmed off each end of the whole output
        self.history = None  # the last ``keep`` input frames (zeros before the start, as one-shot pads)

    def push(self, x: np.ndarray) -> np.ndarray:
        if x.shape[-1] == 0:
            return np.zeros(x.shape[:1] + (self.weight.shape[1], 0), x.dtype)
        if self.history is None:
            self.history = np.zeros(x.shape[:-1] + (self.keep,), x.dtype)
        window = np.concatenate([self.history, x], axis=-1)
        self.history = window[..., window.shape[-1] - self.keep:].copy()
        y = self.ops.conv_transpose1d(window, self.weight, self.bias, self.s)
        # Positions of the new frames' own slots: every frame they read is in the window.
        return self._release(y[..., self.keep * self.s:window.shape[-1] * self.s])

    def _release(self, out):
        if self.skip:
            cut = min(self.skip, out.shape[-1])
            out, self.skip = out[..., cut:], self.skip - cut
        return out

    def flush(self):
        # After the last frame: the positions only the kept frames reach, which the
        # one-shot trims on the right, except the part a trim_right_ratio < 1 keeps.
        # The kept frames' output, (keep - 1)·s + k long, past the keep·s already released.
        tail = self.k - self.s
        if self.history is None or tail <= self.right:
            return None
        y = self.ops.conv_transpose1d(self.history, self.weight, self.bias, self.s)
        return self._release(y[..., self.keep * self.s:self.keep * self.s + tail - self.right])


class _Pointwise:
    def __init__(self, fn):
        self.fn = fn

    def push(self, x):
        return self.fn(x)

    def flush(self):
        return None


class _LSTM:
    def __init__(self, layer: LSTM, params, ops):
        self.weights, self.ops, self.state = layer.weights(params), ops, None

    def push(self, x):
        if x.shape[-1] == 0:
            return x
        y, self.state = self.ops.lstm(x, self.weights, self.state)
        return y + x

    def flush(self):
        return None


class _Sequence:
    """Layers in order; ``flush`` drains each layer into the ones after it."""

    def __init__(self, layers):
        self.layers = layers

    def push(self, x):
        for layer in self.layers:
            x = layer.push(x)
        return x

    def flush(self):
        out = None
        for layer in self.layers:
            if out is not None:  # what earlier layers released at the end still flows through
                out = layer.push(out)
            out = _concat(out, layer.flush())
        return out


class _ResBlock:
    """``shortcut(x) + block(x)``.

    The branches release frames at different times, so each keeps what it
    produced ahead of the other.
    """

    def __init__(self, layer: ResBlock, params, ops):
        self.block = _Sequence([_streaming(sub, params, ops) for sub in layer.block])
        self.shortcut = None if layer.shortcut is None else _Conv(layer.shortcut, params, ops)
        self.ahead_block = self.ahead_skip = None

    def _add(self, block, skip):
        self.ahead_block = _concat(self.ahead_block, block)
        self.ahead_skip = _concat(self.ahead_skip, skip)
        if self.ahead_block is None or self.ahead_skip is None:
            return None
        n = min(self.ahead_block.shape[-1], self.ahead_skip.shape[-1])
        out = self.ahead_skip[..., :n] + self.ahead_block[..., :n]
        self.ahead_block, self.ahead_skip = _rest(self.ahead_block, n), _rest(self.ahead_skip, n)
        return out

    def push(self, x):
        return self._add(self.block.push(x), x if self.shortcut is None else self.shortcut.push(x))

    def flush(self):
        return self._add(self.block.flush(), None if self.shortcut is None else self.shortcut.flush())


def _concat(a, b):
    if a is None or a.shape[-1] == 0:
        return b if b is not None else a
    if b is None or b.shape[-1] == 0:
        return a
    return np.concatenate([a, b], axis=-1)


def _rest(a, n):
    """``a[..., n:]`` as its own array (a view would keep all of ``a`` alive), or None if empty."""
    return a[..., n:].copy() if a.shape[-1] > n else None


def _streaming(layer, params, ops):
    if isinstance(layer, Conv):
        return _Conv(layer, params, ops)
    if isinstance(layer, ConvTranspose):
        return _ConvTranspose(layer, params, ops)
    if isinstance(layer, ELU):
        return _Pointwise(lambda x, alpha=layer.alpha: ops.elu(x, alpha))
    if isinstance(layer, LSTM):
        return _LSTM(layer, params, ops)
    if isinstance(layer, ResBlock):
        return _ResBlock(layer, params, ops)
    raise EncodecError(f"no streaming version of layer {layer!r}")


class _Stream:
    """Shared bookkeeping: the model, its bandwidth at construction, the closed flag.

    ``StreamingEncoder(model)`` / ``StreamingDecoder(model)`` build the class
    that fits the model: a causal stream (no segments: layer by layer) or a
    segment stream (48 kHz: whole segments, overlap-added).
    """

    def __init__(self, model):
        if getattr(model.ops, "ON_DEVICE", False):
            raise EncodecError(f"streaming runs on the CPU backends; this model uses {model.backend!r}: "
                               "load it with backend='numba' (or 'numpy') to stream")
        self.model = model
        self.bandwidth = model.bandwidth
        self.num_codebooks = model.num_codebooks
        self.closed = False

    def chunks(self, x: np.ndarray, step: int):
        """Push ``x`` ``step`` samples (or frames) at a time, then flush.

        Parameters
        ----------
        x : [B, C, T] audio (an encoder) or [B, K, F] codes (a causal decoder)
            The whole input, cut along its last axis.
        step : int
            Samples or frames per push.

        Yields
        ------
        What each :meth:`push` returns, then what :meth:`flush` returns: ``ceil(T / step) + 1`` items.
        """
        for i in range(0, x.shape[-1], step):
            yield self.push(x[..., i:i + step])
        yield self.flush()

    def _check_open(self):
        if self.closed:
            raise EncodecError("this stream was flushed; create a new one to start another signal")
        if self.model.bandwidth != self.bandwidth:
            raise EncodecError(f"the model's bandwidth changed mid-stream ({self.bandwidth} → "
                               f"{self.model.bandwidth}); a stream keeps the bandwidth it started with")

    def _close(self):
        self._check_open()
        self.closed = True


def _causal_net(model, layers) -> _Sequence:
    """The streaming twins of ``layers``; only causal models without normalization stream exactly."""
    if not model.config.seanet.causal or model.normalize:
        raise EncodecError(f"{model.name} is not causal: without segments, streaming is exact only "
                           "for causal models such as encodec_24khz")
    return _Sequence([_streaming(layer, model.params, model.ops) for layer in layers])


class StreamingEncoder(_Stream):
    """Push audio ``[B, C, n]`` (any n), get what is final.

    Causal models (24 kHz, :class:`CausalStreamingEncoder`): each push returns
    the final code frames ``[B, K, f]`` (f may be 0); their concatenation with
    :meth:`flush` equals ``model.encode(whole)[0][0]``. Models with segments
    (48 kHz, :class:`SegmentStreamingEncoder`): each push returns the list of
    ``(codes, scale)`` frames of the segments completed so far; all of them
    with :meth:`flush` equal ``model.encode(whole)``. The bandwidth is the
    model's at construction.
    """

    def __new__(cls, model):
        """The causal or the segment encoder, whichever fits ``model``."""
        if cls is StreamingEncoder:
            cls = CausalStreamingEncoder if model.segment_length is None else SegmentStreamingEncoder
        return super().__new__(cls)

    def __init__(self, model):
        super().__init__(model)
        self.batch = None

    def push(self, chunk: np.ndarray):
        """Encode the next chunk of the signal.

        Parameters
        ----------
        chunk : [B, C, n] float array
            The next ``n`` samples (any ``n``, 0 included); ``B`` stays the same for the whole stream.

        Returns
        -------
        [B, K, f] int codes of the frames this chunk completed (causal models), or the list of
        ``(codes [B, K, F], scale [B, 1])`` frames of the segments it completed (models with segments).
        """
        self._check_open()
        if not isinstance(chunk, np.ndarray) or chunk.ndim != 3:
            raise EncodecError("push expects audio of shape [B, C, n] as a NumPy array")
        if chunk.shape[-1] == 0:
            return self._nothing()
        if self.batch is not None and chunk.shape[0] != self.batch:
            raise EncodecError(f"batch size changed mid-stream ({self.batch} → {chunk.shape[0]})")
        chunk = self.model.check_audio(chunk)
        self.batch = chunk.shape[0]
        with self.model.thread_scope():
            return self._push(chunk)

    def flush(self):
        """The rest, with the one-shot end handling; the stream is closed after."""
        self._close()
        if self.batch is None:
            raise EncodecError("nothing was pushed: a stream needs at least one sample")
        with self.model.thread_scope():
            return self._flush()


class CausalStreamingEncoder(StreamingEncoder):
    """:class:`StreamingEncoder` of a causal model: layer by layer, each keeping what the next chunk needs."""

    def __init__(self, model):
        super().__init__(model)
        self.net = _causal_net(model, model.encoder_layers)

    def _codes(self, emb):
        if emb is None or emb.shape[-1] == 0:
            return np.zeros((self.batch or 0, self.num_codebooks, 0), np.int64)
        return rvq.encode(emb, self.model.params[rvq.CODEBOOKS], self.num_codebooks, self.model.ops)

    def _nothing(self):
        return self._codes(None)

    def _push(self, chunk):
        return self._codes(self.net.push(chunk))

    def _flush(self):
        return self._codes(self.net.flush())


class SegmentStreamingEncoder(StreamingEncoder):
    """:class:`StreamingEncoder` of a model with segments: each segment is encoded once all of it has arrived."""

    def __init__(self, model):
        super().__init__(model)
        self.pending = None  # audio from the next segment's start
        self.received = self.next_offset = 0

    def _nothing(self):
        return []

    def _push(self, chunk):
        self.pending = chunk if self.pending is None else np.concatenate([self.pending, chunk], axis=-1)
        self.received += chunk.shape[-1]
        return self._segments(final=False)

    def _flush(self):
        return self._segments(final=True)

    def _segments(self, final: bool) -> list:
        """Encode every segment whose samples have all arrived (every remaining one if ``final``)."""
        seg, stride = self.model.segment_length, self.model.segment_stride
        frames = []
        while self.next_offset < self.received and (final or self.next_offset + seg <= self.received):
            start = self.next_offset - (self.received - self.pending.shape[-1])
            frames.append(self.model.encode_segment(self.pending[..., start:start + seg]))
            self.next_offset += stride
        drop = self.next_offset - (self.received - self.pending.shape[-1])
        if drop > 0:
            self.pending = self.pending[..., drop:].copy()
        return frames


class StreamingDecoder(_Stream):
    """Push codes, get the audio that is final ``[B, C, m]``.

    Causal models (:class:`CausalStreamingDecoder`): push codes ``[B, K, f]``;
    the outputs with :meth:`flush` equal ``model.decode([(all codes, None)])``.
    Models with segments (:class:`SegmentStreamingDecoder`): push lists of
    ``(codes, scale)`` frames as :class:`StreamingEncoder` returns them; audio
    is released up to the start of the next segment (the overlap waits for
    it), and everything equals ``model.decode(all frames)``.
    """

    def __new__(cls, model):
        """The causal or the segment decoder, whichever fits ``model``."""
        if cls is StreamingDecoder:
            cls = CausalStreamingDecoder if model.segment_length is None else SegmentStreamingDecoder
        return super().__new__(cls)

    def __init__(self, model):
        super().__init__(model)
        self.shape = None

    def _empty(self, b=None):
        b = (self.shape[0] if self.shape else 0) if b is None else b
        return np.zeros((b, self.model.channels, 0), self.model.dtype)

    def _check_shape(self, shape):
        if self.shape is not None and shape != self.shape:
            raise EncodecError(f"codes shape changed mid-stream ({self.shape} → {shape})")
        self.shape = shape


class CausalStreamingDecoder(StreamingDecoder):
    """:class:`StreamingDecoder` of a causal model: layer by layer."""

    def __init__(self, model):
        super().__init__(model)
        self.net = _causal_net(model, model.decoder_layers)

    def push(self, codes):
        """Decode the next frames.

        Parameters
        ----------
        codes : [B, K, f] integer array
            The next ``f`` frames' codes (``f`` may be 0).

        Returns
        -------
        [B, C, m] float array
            The audio these frames completed (the last samples wait for :meth:`flush`).
        """
        self._check_open()
        codes = np.asarray(codes)
        if codes.ndim == 3 and codes.shape[-1] == 0:
            return self._empty(codes.shape[0])
        (codes, _), = self.model.check_frames([(codes, None)])
        self._check_shape(codes.shape[:2])
        with self.model.thread_scope():
            out = self.net.push(self.model.dequantize(codes))
        return out if out is not None else self._empty(codes.shape[0])

    def flush(self):
        """The remaining audio; the stream is closed after."""
        self._close()
        with self.model.thread_scope():
            out = self.net.flush()
        return out if out is not None else self._empty()


class SegmentStreamingDecoder(StreamingDecoder):
    """:class:`StreamingDecoder` of a model with segments: decoded segments overlap-added as they arrive."""

    def __init__(self, model):
        super().__init__(model)
        self.acc = self.weight_sum = self.ramp = None  # overlap-add state
        self.segments = self.released = 0

    def push(self, frames):
        """Decode the next segments.

        Parameters
        ----------
        frames : list of (codes [B, K, F], scale [B, 1] or None)
            The next segments' frames, as :meth:`EncodecModel.encode` gives them.

        Returns
        -------
        [B, C, m] float array
            The overlap-added audio up to the start of the last segment's overlap.
        """
        self._check_open()
        if not isinstance(frames, (list, tuple)):
            raise EncodecError("a segmented model's decoder takes a list of (codes, scale) frames")
        if not frames:
            return self._empty()
        frames = self.model.check_frames(list(frames))
        self._check_shape(frames[0][0].shape[:2])
        stride = self.model.segment_stride
        with self.model.thread_scope():
            for frame in frames:
                out = self.model.decode_segment(frame)
                n = out.shape[-1]
                if self.ramp is None:  # the weights come from the first segment, as official
                    self.ramp = overlap_weights(n, out.dtype)
                    self.acc = np.zeros(out.shape[:-1] + (0,), out.dtype)
                    self.weight_sum = np.zeros(0, out.dtype)
                start = self.segments * stride - self.released
                end = start + n
                if end > self.acc.shape[-1]:
                    grow = end - self.acc.shape[-1]
                    self.acc = np.concatenate([self.acc, np.zeros(self.acc.shape[:-1] + (grow,), out.dtype)], axis=-1)
                    self.weight_sum = np.concatenate([self.weight_sum, np.zeros(grow, out.dtype)])
                self.acc[..., start:end] += self.ramp[:n] * out
                self.weight_sum[start:end] += self.ramp[:n]
                self.segments += 1
        # Samples before the next segment's start are final.
        return self._release(self.segments * stride - self.released)

    def _release(self, n):
        n = max(0, min(n, self.acc.shape[-1]))
        out = self.acc[..., :n] / self.weight_sum[:n]
        self.acc, self.weight_sum = self.acc[..., n:], self.weight_sum[n:]
        self.released += n
        return out

    def flush(self):
        """The remaining audio; the stream is closed after."""
        self._close()
        return self._release(self.acc.shape[-1]) if self.acc is not None else self._empty()
