"""The fuzzing harness behind ``fuzz_checkpoint.py`` and ``fuzz_ecdc.py``.

Cases are seeded mutations of small valid files. Each runs in a worker
process under an address-space limit (:data:`MEMORY_LIMIT` over the worker's
baseline) and a wall-clock limit (:data:`TIME_LIMIT`); a worker that dies
(a segfault) is restarted after the case that killed it. Each case ends as

* ``ok``: the reader accepted it (a mutation can leave a file valid);
* ``refused``: :class:`~encodec_np.errors.EncodecError` (or ``CheckpointError``), the contract;
* ``raw``: any other exception; ``memory``: ``MemoryError``; ``timeout``; ``crash``: the
  process died. These four are defects: the inputs are saved under ``--out`` to reproduce.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

MEMORY_LIMIT = 1 << 30
TIME_LIMIT = 5.0
DEFECTS = ("raw", "memory", "timeout", "crash")
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 2 ** 26, 2 ** 31 - 1, 2 ** 32 - 1, 2 ** 63 - 1)


class _Timeout(BaseException):
    """Raised by the alarm: a BaseException, so the code under test cannot swallow it."""


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """One to four random byte-level mutations of ``data``."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(7)
        at = rng.randrange(len(out)) if out else 0
        if kind == 0 and out:                       # flip a bit
            out[at] ^= 1 << rng.randrange(8)
        elif kind == 1 and out:                     # an interesting byte
            out[at] = rng.choice((0, 1, 0x7F, 0x80, 0xFF))
        elif kind == 2 and len(out) >= at + 4:      # an interesting little-endian integer
            width = rng.choice((2, 4, 8))
            value = rng.choice(INTERESTING) & ((1 << 8 * width) - 1)
            out[at:at + width] = value.to_bytes(width, "little")
        elif kind == 3:                             # truncate
            del out[at:]
        elif kind == 4:                             # insert random bytes
            out[at:at] = rng.randbytes(rng.randint(1, 16))
        elif kind == 5 and out:                     # delete a run
            del out[at:at + rng.randint(1, 64)]
        else:                                       # duplicate a run
            out[at:at] = out[at:at + rng.randint(1, 256)]
    return bytes(out)


def mutate_json(value, rng: random.Random, depth: int = 0):
    """A JSON value with one field changed to a hostile or random one."""
    hostile = [None, True, -1, 0, 10 ** 9, 10 ** 30, 1e308, float("inf"), float("nan"), "x", "", [], {},
               [1] * 1000, "a" * 10_000]
    if isinstance(value, dict) and value and depth < 3 and rng.random() < 0.8:
        key = rng.choice(sorted(value))
        out = dict(value)
        if rng.random() < 0.15:
            del out[key]
        else:
            out[key] = mutate_json(value[key], rng, depth + 1)
        return out
    if isinstance(value, list) and value and rng.random() < 0.5:
        out = list(value)
        at = rng.randrange(len(out))
        out[at] = mutate_json(out[at], rng, depth + 1)
        return out
    if isinstance(value, (int, float)) and not isinstance(value, bool) and rng.random() < 0.5:
        return value * rng.choice((-1, 0, 2, 1000, 10 ** 6))
    return rng.choice(hostile)


def _limit_memory() -> None:
    vm = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (vm + MEMORY_LIMIT, resource.RLIM_INFINITY))


def _on_alarm(signum, frame):
    raise _Timeout()


def run_worker(target, start: int, stop: int, seed: int, tmp: Path) -> None:
    """Run cases ``start..stop-1`` of ``target``; print one JSON line per case."""
    from encodec_np.errors import EncodecError

    state = target.prepare(tmp)
    _limit_memory()
    signal.signal(signal.SIGALRM, _on_alarm)
    for index in range(start, stop):
        data, name = target.make_case(state, random.Random(f"{seed}:{index}"))
        print(json.dumps({"case": index, "started": True}), flush=True)
        signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT)
        try:
            target.load(state, data, name, tmp)
            outcome, detail = "ok", ""
        except _Timeout:
            outcome, detail = "timeout", ""
        except EncodecError as exc:
            outcome, detail = "refused", str(exc)[:200]
        except MemoryError:
            outcome, detail = "memory", ""
        except Exception as exc:
            outcome, detail = "raw", f"{type(exc).__name__}: {str(exc)[:200]}"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        print(json.dumps({"case": index, "outcome": outcome, "detail": detail}), flush=True)


def main(target, description: str) -> int:
    """The command line of a fuzz script: ``--cases N --seed S --workers W --out DIR``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--format", choices=target.FORMATS, default=target.FORMATS[0])
    parser.add_argument("--out", type=Path, default=Path("fuzz-failures"))
    parser.add_argument("--worker", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    target.FORMAT = args.format
    if args.worker:
        with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as tmp:
            run_worker(target, *args.worker, args.seed, Path(tmp))
        return 0
    t0 = time.perf_counter()
    counts, defects = Counter(), []
    bounds = [args.cases * i // args.workers for i in range(args.workers + 1)]
    pending = [(bounds[i], bounds[i + 1]) for i in range(args.workers) if bounds[i] < bounds[i + 1]]
    running = {}

    def spawn(start, stop):
        cmd = [sys.executable, sys.argv[0], "--format", args.format, "--seed", str(args.seed),
               "--worker", str(start), str(stop)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        running[proc] = (start, stop)

    for start, stop in pending:
        spawn(start, stop)
    while running:
        proc = next(iter(running))
        start, stop = running.pop(proc)
        last = start - 1
        for line in proc.stdout:
            row = json.loads(line)
            if "outcome" in row:
                counts[row["outcome"]] += 1
                if sum(counts.values()) % 10_000 == 0:
                    print(f"  {sum(counts.values())} cases, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
                last = row["case"]
                if row["outcome"] in DEFECTS:
                    defects.append(row)
        proc.wait()
        if last + 1 < stop:  # died inside case last + 1
            defects.append({"case": last + 1, "outcome": "crash", "detail": f"exit {proc.returncode}"})
            counts["crash"] += 1
            if last + 2 < stop:
                spawn(last + 2, stop)
    if defects:
        args.out.mkdir(parents=True, exist_ok=True)
        state = target.prepare(args.out)
        for row in defects:
            data, name = target.make_case(state, random.Random(f"{args.seed}:{row['case']}"))
            (args.out / f"{args.format}-{row['case']}-{row['outcome']}-{name}").write_bytes(data)
    total = sum(counts.values())
    print(f"{Path(sys.argv[0]).name} --format {args.format}: {total} cases (seed {args.seed}) in "
          f"{time.perf_counter() - t0:.0f} s: " + ", ".join(f"{k} {counts[k]}" for k in
                                                           ("ok", "refused", *DEFECTS)))
    for row in defects[:20]:
        print(f"  case {row['case']}: {row['outcome']} {row['detail']}")
    return 1 if defects else 0
