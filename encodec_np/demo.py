"""The demo: hear and measure the codec, offline (``encodec-np demo``, in :mod:`encodec_np.cli.demo`).

Encodes and decodes a short clip (by default the speech clip shipped in the
package, see ``assets/ATTRIBUTION.txt``) at every bandwidth of the model
(by default the small model shipped in the package), prints a table of
bit rate, tokens per second, SI-SNR, log-mel distance and encode/decode speed,
and writes the decoded WAVs and a spectrogram comparison PNG to ``--out``.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .io.hub import ASSETS
from .metrics import mel_distance, si_snr

DEMO_CLIP = ASSETS / "demo_speech_24k.flac"


def run_demo(model, wav: np.ndarray, progress=None) -> list[dict]:
    """Encode and decode ``wav [C, T]`` at each of ``model``'s bandwidths.

    One short warm-up call first keeps JIT compilation out of the timings.
    The model is left at its last bandwidth.

    Parameters
    ----------
    model : EncodecModel
    wav : [C, T] float
        At the model's sample rate and channels.
    progress : optional
        Anything with ``update(1)`` (a tqdm bar), called after each bandwidth.

    Returns
    -------
    list of dict
        One per bandwidth: ``kbps``, ``tokens_per_s``, ``si_snr`` (dB),
        ``mel_db`` (log-mel distance, dB), ``encode_rtf`` / ``decode_rtf``
        (seconds of audio per second of compute) and ``audio [C, T]``.
    """
    x = wav[None]
    seconds = wav.shape[-1] / model.sample_rate
    model.set_target_bandwidth(model.target_bandwidths[0])
    model.decode(model.encode(x[..., :min(wav.shape[-1], model.sample_rate)]))  # warm-up (JIT)
    rows = []
    for bw in model.target_bandwidths:
        model.set_target_bandwidth(bw)
        t0 = time.perf_counter()
        frames = model.encode(x)
        t1 = time.perf_counter()
        y = model.decode(frames)[0, :, :wav.shape[-1]]
        t2 = time.perf_counter()
        rows.append({"kbps": bw, "tokens_per_s": model.num_codebooks * model.frame_rate,
                     "si_snr": si_snr(wav, y), "mel_db": mel_distance(wav, y, model.sample_rate),
                     "encode_rtf": seconds / (t1 - t0), "decode_rtf": seconds / (t2 - t1), "audio": y})
        if progress is not None:
            progress.update(1)
    return rows


def format_table(rows: list[dict]) -> str:
    """:func:`run_demo`'s rows as the demo's text table, one line per bandwidth under a header.

    Parameters
    ----------
    rows : list of dict
        As :func:`run_demo` returns them.
    """
    lines = ["  kbps  tokens/s  SI-SNR dB  log-mel dist dB  encode xRT  decode xRT"]
    for r in rows:
        lines.append(f"{r['kbps']:6g}  {r['tokens_per_s']:8d}  {r['si_snr']:9.2f}  {r['mel_db']:15.2f}  "
                     f"{r['encode_rtf']:10.1f}  {r['decode_rtf']:10.1f}")
    return "\n".join(lines)


def spectrogram_figure(wav: np.ndarray, rows: list[dict], sample_rate: int):
    """The comparison figure: the original and each decoding, with a shared dB colour bar.

    Parameters
    ----------
    wav : [C, T] float
        The original (its first channel is drawn).
    rows : list of dict
        :func:`run_demo`'s rows (``kbps``, ``si_snr``, ``mel_db``, ``audio [C, T]``).
    sample_rate : int

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.signal import stft

    signals = [("original", wav[0])] + [
        (f"{r['kbps']:g} kbps: SI-SNR {r['si_snr']:.1f} dB, log-mel distance {r['mel_db']:.1f} dB", r["audio"][0])
        for r in rows]
    fig, axes = plt.subplots(len(signals), 1, figsize=(10, 1.8 * len(signals)), sharex=True, squeeze=False,
                             layout="constrained")  # makes room for the colour bar and its labels
    for ax, (title, s) in zip(axes[:, 0], signals):
        f, t, z = stft(s, fs=sample_rate, nperseg=512, noverlap=384)
        mesh = ax.pcolormesh(t, f / 1000, 20 * np.log10(np.abs(z) + 1e-6), vmin=-100, vmax=-10, shading="auto")
        ax.set_ylabel("kHz")
        ax.set_title(title, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("seconds")
    fig.colorbar(mesh, ax=axes[:, 0].tolist(), label="dB", fraction=0.03, pad=0.01)
    return fig


def plot_spectrograms(path: Path, wav: np.ndarray, rows: list[dict], sample_rate: int) -> bool:
    """Write :func:`spectrogram_figure` as a PNG at ``path``; False without matplotlib.

    Parameters
    ----------
    path : Path
        The PNG to write (under a temporary name, then renamed).
    wav, rows, sample_rate
        As for :func:`spectrogram_figure`.
    """
    try:
        fig = spectrogram_figure(wav, rows, sample_rate)
    except ImportError:
        return False
    import matplotlib.pyplot as plt

    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(path)
    return True
