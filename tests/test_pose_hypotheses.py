"""Several localizer hypotheses (PoseModel.loc_peaks / infer(hypotheses=k)): the peaks are the map's local maxima,
the first is the single-hypothesis answer, and the pose returned is the one the chosen peak's crops give (only the
chosen peak is refined)."""
import torch

from pose_model import geometry as G
from pose_model.model import ModelMeta, PoseModel


def _model_and_batch(seed: int = 0):
    torch.manual_seed(seed)
    m = PoseModel(ModelMeta((120, 160), (480, 640), 32, 0.75, 0.03, 8, 8, 32), torch.eye(3)[None]).eval()
    full = torch.rand(3, 3, 480, 640)
    frames = torch.nn.functional.interpolate(full, size=(120, 160), mode="area")
    K = torch.tensor([[600.0, 0, 320], [0, 600, 240], [0, 0, 1]]).expand(3, 3, 3)
    return m, frames, full, K


def test_first_peak_is_the_single_answer_and_peaks_are_local_maxima():
    m, frames, _, _ = _model_and_batch()
    with torch.no_grad():
        out = m.localizer(frames)
        c1, s1, p1 = m.loc_decode(out)
        c, s, p = m.loc_peaks(out, 4)
    assert c.shape == (3, 4, 2) and s.shape == (3, 4) and p.shape == (3, 4)
    assert torch.allclose(c[:, 0], c1) and torch.allclose(s[:, 0], s1) and torch.allclose(p[:, 0], p1)
    assert (p[:, :-1] >= p[:, 1:]).all()  # sorted
    # the scores are the 4 largest 3×3 local maxima of the probability map, found here by brute force
    prob = out["logits"].flatten(1).softmax(-1).view_as(out["logits"])
    for b in range(3):
        H, W = prob.shape[1:]
        maxima = sorted((float(prob[b, y, x]) for y in range(H) for x in range(W)
                         if prob[b, y, x] >= prob[b, max(0, y - 1):y + 2, max(0, x - 1):x + 2].max()), reverse=True)
        assert torch.allclose(p[b], torch.tensor(maxima[:4]))


def test_the_returned_pose_is_the_chosen_peaks_own():
    m, frames, full, K = _model_and_batch(1)
    src = lambda box, n: G.crop_images(full, box, n, antialias=2)  # noqa: E731
    with torch.no_grad():
        out = m.infer(frames, src, K, refine_iters=1, hypotheses=3)
        c, s, p = m.loc_peaks(m.localizer(frames), 3)
        j = out["hypothesis"]
        box = G.box_around(c[torch.arange(3), j], s[torch.arange(3), j] * m.meta.crop_factor)
        alone = m.infer(frames, src, K, refine_iters=1, boxes=box)
        single = m.infer(frames, src, K, refine_iters=1, hypotheses=1)
    assert torch.allclose(out["t_m"], alone["t_m"], atol=1e-5) and torch.allclose(out["R"], alone["R"], atol=1e-5)
    # the choice maximises log p − w · keypoint residual over the 3 peaks, each seen once (its first crop)
    res = torch.stack([m.infer(frames, src, K, refine_iters=0, boxes=G.box_around(c[:, i], s[:, i] * m.meta.crop_factor))
                       ["kp_residual"] for i in range(3)], 1)
    score = p.log() - m.KP_VERIFY_WEIGHT * res
    assert torch.equal(score.argmax(1), j)
    # where the first peak wins, the answer is the single-hypothesis one
    first = j == 0
    assert torch.allclose(out["t_m"][first], single["t_m"][first], atol=1e-5)
