"""Old module paths of the flat layout (encodec_np.moved)."""


def test_moved_modules_keep_their_old_import_paths():
    import importlib

    from encodec_np.moved import MOVED

    for old, new in MOVED.items():
        moved = importlib.import_module(f"encodec_np.{new}")
        assert importlib.import_module(f"encodec_np.{old}") is moved
        assert moved.__spec__.name == f"encodec_np.{new}"  # still one module, under its own name
    from encodec_np.checkpoint import read_checkpoint
    from encodec_np.ecdc import read_frames
    from encodec_np.tokenize import tokenize_dataset

    assert read_frames.__module__ == "encodec_np.format.ecdc"
    assert read_checkpoint.__module__ == "encodec_np.io.checkpoint"
    assert tokenize_dataset.__module__ == "encodec_np.dataset.run"
