"""``encodec-np demo``: hear and measure the codec, offline, in one command.

Encodes and decodes a short clip (by default the speech clip shipped in the
package, see ``assets/ATTRIBUTION.txt``) at every bandwidth of the model
(by default the small model shipped in the package), prints a table of
bit rate, tokens per second, SI-SNR, log-mel distance and encode/decode speed,
and writes the decoded WAVs and a spectrogram comparison PNG to ``--out``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from .cli import _add_model_option, _add_run_options, _load_codec, _say, _wants_bars
from .errors import EncodecError
from .hub import ASSETS, EMBEDDED
from .longfile import read_for_model

DEMO_CLIP = ASSETS / "demo_speech_24k.flac"


def add_demo_parser(sub, common) -> None:
    p = sub.add_parser(
        "demo", parents=[common], help="encode and decode a clip at every bandwidth; print quality and speed",
        description="Fully offline: runs the codec on a short clip at each of its bandwidths, prints kbps, "
                    "tokens/s, SI-SNR, log-mel distance and speed (x real time), and writes the decoded "
                    "WAVs and a spectrogram comparison (PNG, needs the demo extra: matplotlib) to --out.")
    p.add_argument("--input", metavar="AUDIO", default=None,
                   help="your own audio file (default: the speech clip shipped in the package)")
    _add_model_option(p)
    p.set_defaults(model=EMBEDDED)
    p.add_argument("--out", metavar="DIR", default="encodec-demo", help="output folder (default ./encodec-demo)")
    _add_run_options(p)


def _bar(args, total: int):
    """A tqdm bar over the bandwidths on stderr, or None (-q, or not a terminal)."""
    if not _wants_bars(args):
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="demo", unit="bandwidth", file=sys.stderr, leave=False)


def run_demo(model, wav: np.ndarray, progress=None) -> list[dict]:
    """Encode and decode ``wav [C, T]`` at each of ``model``'s bandwidths.

    Returns one dict per bandwidth: ``kbps``, ``tokens_per_s``, ``si_snr``
    (dB), ``mel_db`` (log-mel distance, dB), ``encode_rtf`` / ``decode_rtf``
    (seconds of audio per second of compute) and ``audio [C, T]``. One short
    warm-up call first keeps JIT compilation out of the timings.
    """
    from .metrics import mel_distance, si_snr

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
    fig, axes = plt.subplots(len(signals), 1, figsize=(10, 1.8 * len(signals)), sharex=True, squeeze=False)
    for ax, (title, s) in zip(axes[:, 0], signals):
        f, t, z = stft(s, fs=sample_rate, nperseg=512, noverlap=384)
        mesh = ax.pcolormesh(t, f / 1000, 20 * np.log10(np.abs(z) + 1e-6), vmin=-100, vmax=-10, shading="auto")
        ax.set_ylabel("kHz")
        ax.set_title(title, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    fig.colorbar(mesh, ax=axes[:, 0].tolist(), label="dB", fraction=0.03, pad=0.01)
    return fig


def plot_spectrograms(path: Path, wav: np.ndarray, rows: list[dict], sample_rate: int) -> bool:
    """Write :func:`spectrogram_figure` as a PNG at ``path``; False without matplotlib."""
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


def cmd_demo(args) -> int:
    from .audio import write_audio

    src = Path(args.input) if args.input else DEMO_CLIP
    if not src.is_file():
        raise EncodecError(f"{src} does not exist" + ("" if args.input else " (the package data is missing; "
                                                      "reinstall encodec-np or pass --input FILE)"))
    out = Path(args.out)
    names = ["original.wav", "spectrograms.png"]
    model = _load_codec(args, args.model)
    names += [f"decoded_{bw:g}kbps.wav" for bw in model.target_bandwidths]
    existing = [n for n in names if (out / n).exists()]
    if existing and not args.force:
        raise EncodecError(f"{out} already holds demo output ({', '.join(existing[:3])}...); "
                           "pass -f to overwrite it or choose another --out")
    wav = read_for_model(src, model)
    bar = _bar(args, len(model.target_bandwidths))
    try:
        rows = run_demo(model, wav, bar)
    finally:
        if bar is not None:
            bar.close()
    out.mkdir(parents=True, exist_ok=True)
    write_audio(out / "original.wav", wav, model.sample_rate)
    for r in rows:
        write_audio(out / f"decoded_{r['kbps']:g}kbps.wav", r["audio"], model.sample_rate)
    plotted = plot_spectrograms(out / "spectrograms.png", wav, rows, model.sample_rate)
    _say(args, f"{model.name} on {src.name} ({wav.shape[-1] / model.sample_rate:.1f} s, "
               f"{model.sample_rate} Hz, {model.backend} backend)\n{format_table(rows)}\n"
               f"wrote {len(rows) + 1} WAVs" + (" and spectrograms.png" if plotted else "") + f" to {out}/")
    if not plotted:
        print("hint: pip install 'encodec-np[demo]' (matplotlib) for the spectrogram comparison "
              "(spectrograms.png)", file=sys.stderr)
    return 0
