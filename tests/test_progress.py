"""Progress callbacks (encodec_np.progress)."""
from encodec_np.progress import report, staged


def test_report_calls_only_a_callback():
    calls = []
    report(lambda *a: calls.append(a), "packing", 1, 3)
    report(None, "packing", 2, 3)  # no callback: nothing to call, no error
    assert calls == [("packing", 1, 3)]


def test_staged_turns_a_stage_callback_into_the_models_callback():
    calls = []
    assert staged(None, "encoding") is None
    model_progress = staged(lambda *a: calls.append(a), "encoding")
    model_progress(2, 5)
    assert calls == [("encoding", 2, 5)]
