"""``encodec-np demo``: the codec on a clip at every bandwidth, offline (see :mod:`encodec_np.demo`)."""
from __future__ import annotations

import sys
from pathlib import Path

from tqdm import tqdm

from ..demo import DEMO_CLIP, format_table, plot_spectrograms, run_demo
from ..errors import EncodecError
from ..io.audio import read_for_model, write_audio
from ..io.hub import EMBEDDED
from .options import add_model_option, add_run_options, load_codec, say, wants_bars


def add_demo_parser(sub, common) -> None:
    """Add ``demo`` to the subparsers ``sub`` (``common``: the options every command takes)."""
    p = sub.add_parser(
        "demo", parents=[common], help="encode and decode a clip at every bandwidth; print quality and speed",
        description="Fully offline: runs the codec on a short clip at each of its bandwidths, prints kbps, "
                    "tokens/s, SI-SNR, log-mel distance and speed (x real time), and writes the decoded "
                    "WAVs and a spectrogram comparison (PNG, needs the demo extra: matplotlib) to --out.")
    p.add_argument("--input", metavar="AUDIO", default=None,
                   help="your own audio file (default: the speech clip shipped in the package)")
    add_model_option(p)
    p.set_defaults(model=EMBEDDED)
    p.add_argument("--out", metavar="DIR", default="encodec-demo", help="output folder (default ./encodec-demo)")
    add_run_options(p)


def _bar(args, total: int):
    """A tqdm bar over the bandwidths on stderr, or None (-q, or not a terminal)."""
    if not wants_bars(args):
        return None

    return tqdm(total=total, desc="demo", unit="bandwidth", file=sys.stderr, leave=False)


def cmd_demo(args) -> int:
    """Run ``encodec-np demo``: the table on stdout, the WAVs and spectrograms in ``--out``; returns the exit code."""
    src = Path(args.input) if args.input else DEMO_CLIP
    if not src.is_file():
        raise EncodecError(f"{src} does not exist" + ("" if args.input else " (the package data is missing; "
                                                      "reinstall encodec-np or pass --input FILE)"))
    out = Path(args.out)
    names = ["original.wav", "spectrograms.png"]
    model = load_codec(args, args.model)
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
    say(args, f"{model.name} on {src.name} ({wav.shape[-1] / model.sample_rate:.1f} s, "
               f"{model.sample_rate} Hz, {model.backend} backend)\n{format_table(rows)}\n"
               f"wrote {len(rows) + 1} WAVs" + (" and spectrograms.png" if plotted else "") + f" to {out}/")
    if not plotted:
        print("hint: pip install 'encodec-np[demo]' (matplotlib) for the spectrogram comparison "
              "(spectrograms.png)", file=sys.stderr)
    return 0
