"""Pretrained download + cache (encodec_np.io.hub) against a loopback HTTP server.

Nothing here leaves 127.0.0.1 or writes to the real home cache: each test gets
its own served folder, cache folder and environment.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import socket
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

import encodec_np
from encodec_np.config import RVQConfig
from encodec_np.errors import CheckpointError, EncodecError
from encodec_np.io import hub
from encodec_np.validate import expected_param_shapes

PAYLOAD = b"not really a checkpoint, but its sha256 is known\n" * 1000


def named_for(data: bytes, stem: str, suffix: str = ".th") -> str:
    """A file name carrying the sha256 prefix of ``data``, as Meta names its files."""
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}{suffix}"


class Server:
    """A threaded HTTP server on 127.0.0.1 serving ``root``, counting GET requests."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            timeout = 10  # a stuck client cannot hold a handler thread forever

            def do_GET(self):
                server.requests.append(self.path)
                if self.path.startswith("/truncated"):  # promise more bytes than sent, then hang up
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(PAYLOAD)))
                    self.end_headers()
                    self.wfile.write(PAYLOAD[:100])
                    self.close_connection = True
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Isolated cache variables: nothing may fall through to ~/.cache."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ENCODEC_NP_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("ENCODEC_NP_BASE_URL", raising=False)
    monkeypatch.setattr(hub, "_verified", set())
    return monkeypatch


@pytest.fixture
def server(tmp_path, env):
    root = tmp_path / "served"
    root.mkdir()
    srv = Server(root)
    env.setenv("ENCODEC_NP_BASE_URL", srv.url)
    yield srv
    srv.close()


@pytest.fixture
def payload_name(server, env):
    """``"tiny"`` maps to a served file whose name carries the payload's hash prefix."""
    filename = named_for(PAYLOAD, "tiny")
    (server.root / filename).write_bytes(PAYLOAD)
    env.setitem(hub.CHECKPOINTS, "tiny", filename)
    return filename


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- download & cache
def test_download_lands_in_cache(tmp_path, server, payload_name):
    cache = tmp_path / "cache"
    path = hub.pretrained_path("tiny", cache_dir=cache, progress=False)
    assert path == cache / payload_name
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in cache.iterdir()) == [payload_name]  # no temp files left
    assert server.requests == [f"/{payload_name}"]


def test_second_call_uses_cache(tmp_path, server, payload_name):
    cache = tmp_path / "cache"
    first = hub.pretrained_path("tiny", cache_dir=cache, progress=False)
    second = hub.pretrained_path("tiny", cache_dir=cache, progress=False)
    hub._verified.clear()  # a fresh process re-hashes the cached file, still without downloading
    third = hub.pretrained_path("tiny", cache_dir=cache, progress=False)
    assert first == second == third
    assert len(server.requests) == 1


def test_progress_bar_goes_to_stderr(tmp_path, server, payload_name, capsys):
    hub.pretrained_path("tiny", cache_dir=tmp_path / "cache", progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert server.url in captured.err and payload_name in captured.err
    hub.pretrained_path("tiny", cache_dir=tmp_path / "other", progress=None)  # stderr is no terminal here
    assert capsys.readouterr().err == ""


def test_corrupted_download_leaves_nothing(tmp_path, server, env):
    filename = named_for(PAYLOAD, "tiny")
    (server.root / filename).write_bytes(PAYLOAD[:-1] + b"?")  # served bytes differ
    env.setitem(hub.CHECKPOINTS, "tiny", filename)
    cache = tmp_path / "cache"
    with pytest.raises(CheckpointError, match="corrupted.*retry"):
        hub.pretrained_path("tiny", cache_dir=cache, progress=False)
    assert list(cache.iterdir()) == []


def test_dropped_connection_leaves_nothing(tmp_path, server, env):
    filename = named_for(PAYLOAD, "truncated")
    env.setitem(hub.CHECKPOINTS, "tiny", filename)
    cache = tmp_path / "cache"
    with pytest.raises(EncodecError, match="could not download .*" + filename):
        hub.pretrained_path("tiny", cache_dir=cache, progress=False)
    assert list(cache.iterdir()) == []


def test_corrupt_cached_file_is_downloaded_again(tmp_path, server, payload_name):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / payload_name).write_bytes(b"truncated")
    with pytest.warns(RuntimeWarning, match="corrupt"):
        path = hub.pretrained_path("tiny", cache_dir=cache, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert len(server.requests) == 1


def test_http_404_names_the_url(tmp_path, server, env):
    env.setitem(hub.CHECKPOINTS, "tiny", named_for(PAYLOAD, "missing"))
    cache = tmp_path / "cache"
    with pytest.raises(EncodecError) as info:
        hub.pretrained_path("tiny", cache_dir=cache, progress=False)
    assert not isinstance(info.value, CheckpointError)
    assert server.url + named_for(PAYLOAD, "missing") in str(info.value)
    assert "404" in str(info.value)
    assert not cache.exists()


def test_unreachable_server_hints_at_local_file(tmp_path, env):
    filename = named_for(PAYLOAD, "tiny")
    env.setitem(hub.CHECKPOINTS, "tiny", filename)
    url = f"http://127.0.0.1:{closed_port()}/"
    env.setenv("ENCODEC_NP_BASE_URL", url)
    cache = tmp_path / "cache"
    with pytest.raises(EncodecError) as info:
        hub.pretrained_path("tiny", cache_dir=cache, progress=False)
    message = str(info.value)
    assert url + filename in message
    assert f"encodec_np.load_model('/path/to/{filename}')" in message
    assert str(cache) in message
    assert not cache.exists()


def test_unknown_name(env):
    with pytest.raises(EncodecError, match="encodec_24khz.*encodec_48khz"):
        hub.pretrained_path("encodec_96khz")
    with pytest.raises(EncodecError, match="Hugging Face"):
        hub.pretrained_path("encodec_32khz")


# --------------------------------------------------------------------------- helpers
def test_cache_dir_precedence(tmp_path, env):
    assert hub.resolve_cache_dir() == tmp_path / "home" / ".cache" / "encodec_np"
    env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.resolve_cache_dir() == tmp_path / "xdg" / "encodec_np"
    env.setenv("ENCODEC_NP_CACHE", str(tmp_path / "env"))
    assert hub.resolve_cache_dir() == tmp_path / "env"
    assert hub.resolve_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert hub.resolve_cache_dir(str(tmp_path / "arg")) == tmp_path / "arg"


def test_environment_cache_dir_is_used(tmp_path, server, payload_name, env):
    env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.pretrained_path("tiny", progress=False) == tmp_path / "xdg" / "encodec_np" / payload_name
    env.setenv("ENCODEC_NP_CACHE", str(tmp_path / "env"))
    assert hub.pretrained_path("tiny", progress=False) == tmp_path / "env" / payload_name
    assert not (tmp_path / "home").exists()


def test_verify_checksum(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(PAYLOAD)
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    assert hub.verify_checksum(path, digest[:8])
    assert hub.verify_checksum(path, digest.upper())
    assert not hub.verify_checksum(path, "00000000" if not digest.startswith("00000000") else "11111111")


def test_hash_prefix_of_official_names():
    assert {name: hub.hash_prefix(f) for name, f in hub.CHECKPOINTS.items()} == {
        "encodec_24khz": "d7cc33bc", "encodec_48khz": "7e698e3e",
        "encodec_lm_24khz": "1608e3c0", "encodec_lm_48khz": "7add9fc3"}
    assert hub.hash_prefix("tiny-abcdef12.safetensors") == "abcdef12"
    with pytest.raises(EncodecError):
        hub.hash_prefix("no_hash.th")


# --------------------------------------------------------------------------- end to end
def tiny_model() -> encodec_np.EncodecModel:
    cfg = encodec_np.encodec_24khz()
    cfg = cfg.replace(seanet=dataclasses.replace(cfg.seanet, n_filters=4, dimension=8, lstm=1),
                      quantizer=RVQConfig(dimension=8, n_q=32, bins=16))
    rng = np.random.default_rng(0)
    params = {k: (rng.standard_normal(shape) * 0.1).astype(np.float32)
              for k, shape in expected_param_shapes(cfg).items()}
    return encodec_np.EncodecModel(cfg, params, backend="numpy")


def test_from_pretrained_end_to_end(tmp_path, server, env):
    model = tiny_model()
    staged = tmp_path / "staged.safetensors"
    encodec_np.save_model(model, staged)
    filename = named_for(staged.read_bytes(), "tiny24", ".safetensors")
    staged.rename(server.root / filename)
    env.setitem(hub.CHECKPOINTS, "encodec_24khz", filename)
    cache = tmp_path / "cache"

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = encodec_np.EncodecModel.from_pretrained("encodec_24khz", cache_dir=cache, backend="numpy")
    assert (cache / filename).is_file()
    assert loaded.config == model.config
    assert loaded.params.keys() == model.params.keys()
    for key, value in model.params.items():
        np.testing.assert_array_equal(loaded.params[key], value)
    x = np.random.default_rng(1).standard_normal((1, 1, 640)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), model(x))

    env.setenv("ENCODEC_NP_CACHE", str(cache))  # load_model by name finds the same cached file
    again = encodec_np.load_model("encodec_24khz", backend="numpy")
    assert again.config == model.config
    assert len(server.requests) == 1
