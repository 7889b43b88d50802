"""Report figures: the seeds' spread (rows kept and left out, the empty case)."""
import cv2

from eval.plots import plot_seed_spread


def _row(te_seeds, re_seeds):
    st = lambda v: {"mean": sum(v) / len(v), "per_seed": v, "ci95": [min(v), max(v)]}   # noqa: E731
    return {"te_mm_median": st(te_seeds), "re_deg_median": st(re_seeds)}


def test_seed_spread_keeps_the_readable_rows(tmp_path):
    summary = {"a": _row([7.0, 9.0, 8.0], [5.0, 6.0, 4.0]), "b": _row([10.0, 12.0, 11.0], [8.0, 9.0, 7.0]),
               "c": _row([9.0, 8.0, 10.0], [5.0, 5.5, 6.0]), "none": _row([330.0, 340.0, 350.0], [120.0, 110.0, 90.0])}
    three = cv2.imread(str(plot_seed_spread(summary, ["a", "b", "c", "none"], tmp_path / "three.png")))
    one = cv2.imread(str(plot_seed_spread(summary, ["a", "none"], tmp_path / "one.png")))
    assert three is not None and one is not None
    assert three.shape[0] > one.shape[0]                 # one line per kept row: `none` is left out
    none_only = cv2.imread(str(plot_seed_spread(summary, ["none"], tmp_path / "empty.png")))
    assert none_only is not None and none_only.shape[0] < one.shape[0]
