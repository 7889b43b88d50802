"""Keypoint + PnP head, the crop that follows the pose, and the tune-session-only fine-tune."""
import json

import numpy as np
import pytest
import torch

from core.io import UserError
from core.objects import load_object_spec
from pose_model import geometry as G
from pose_model.model import ModelMeta, PoseModel
from pose_model.predict import gt_crop_box

K_REAL = torch.tensor([[610.0, 0, 320], [0, 610, 240], [0, 0, 1]], dtype=torch.float64)  # the real rig's camera


def random_rotations(n: int, seed: int) -> torch.Tensor:
    q = torch.randn(n, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
                        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1).reshape(n, 3, 3)


def real_like_case(n: int, crop_px: int, seed: int = 0):
    """n poses like the real photos (30 mm cube 0.27–0.40 m away), their ground-truth crop boxes and crop K."""
    spec = load_object_spec("aruco-cube")
    meta = ModelMeta((120, 160), (480, 640), crop_px, 0.75, 0.03, 8, 8, 16, size_xyz_m=tuple(spec.size_m))
    m = PoseModel(meta, torch.as_tensor(spec.symmetries)).double()
    g = torch.Generator().manual_seed(seed)
    R = random_rotations(n, seed)
    z = 0.27 + 0.13 * torch.rand(n, generator=g, dtype=torch.float64)
    t = torch.stack([(torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * 0.2 * z,
                     (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * 0.15 * z, z], -1)
    K = K_REAL.expand(n, 3, 3)
    box = torch.as_tensor(np.stack([gt_crop_box(spec, R[i].numpy(), t[i].numpy(), K_REAL.numpy(), 0.75)
                                    for i in range(n)]))
    return m, R, t, K, box, G.crop_K(K, box, crop_px)


def rot_err_deg(Ra: torch.Tensor, Rb: torch.Tensor) -> torch.Tensor:
    cos = (((Ra.transpose(-1, -2) @ Rb).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.arccos(cos))


def test_pnp_from_exact_keypoints_recovers_the_pose():
    m, R, t, K, box, Kc = real_like_case(64, 64)
    kp = m.kp_targets(R, t, Kc)[:, 0]                         # identity symmetry first: the true corners
    assert torch.allclose(m.geo_syms[0], torch.eye(3, dtype=torch.float64))
    # start far from the truth (the direct head's typical errors): 15° and 8 % in depth
    R0 = R @ torch.linalg.matrix_exp(torch.tensor([[0, -0.26, 0], [0.26, 0, 0], [0, 0, 0]], dtype=torch.float64))
    R_p, t_p, ok = m.pnp(kp, Kc, R0, t * 1.08)
    assert ok.all()
    assert rot_err_deg(R_p, R).max() < 0.1
    assert ((t_p - t).norm(dim=-1) * 1000).max() < 0.1


def test_pnp_with_half_pixel_noise_within_the_derived_bound():
    """Bound. N = 9 keypoints with i.i.d. pixel noise σ, spread r (RMS distance from their centroid, px).
    Scale (hence depth) is a least-squares fit of N radial components: σ_z / z ≈ σ / (r √N). The image
    position is fit from 2N coordinates: σ_xy ≈ z σ / (f √N). Rotation: a corner at distance ~r moves ≈ r·δθ px
    for a rotation δθ in the image plane, and (the cube is as deep as it is wide) ≈ r·δθ for out-of-plane
    rotations too: σ_θ ≈ σ / (r √N) rad per axis. Median of |error| ≤ 3 × these (a 3-D error norm is ≈ 1.6 σ, the
    rest is slack for the weak coupling of out-of-plane rotation and depth)."""
    n, crop_px, sigma = 200, 64, 0.5
    m, R, t, K, box, Kc = real_like_case(n, crop_px, seed=1)
    kp = m.kp_targets(R, t, Kc)[:, 0]
    noise = torch.randn(kp.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * sigma / crop_px
    R_p, t_p, ok = m.pnp(kp + noise, Kc, R, t)
    assert ok.all()
    uv = (kp + 0.5) * crop_px - 0.5
    r = ((uv - uv.mean(1, keepdim=True)) ** 2).sum(-1).mean(-1).sqrt()          # (n,) px
    f = Kc[:, 0, 0]
    N = 9
    bound_z = 3 * t[:, 2] * sigma / (r * N ** 0.5)
    bound_xy = 3 * t[:, 2] * sigma / (f * N ** 0.5)
    bound_rot = 3 * torch.rad2deg(sigma / (r * N ** 0.5))
    dz = (t_p[:, 2] - t[:, 2]).abs()
    dxy = (t_p[:, :2] - t[:, :2]).norm(dim=-1)
    dr = rot_err_deg(R_p, R)
    assert dz.median() < bound_z.median(), (dz.median(), bound_z.median())
    assert dxy.median() < bound_xy.median(), (dxy.median(), bound_xy.median())
    assert dr.median() < bound_rot.median(), (dr.median(), bound_rot.median())
    # and the noise does cost something (the check can fail): errors are not all zero
    assert dz.median() > 0.05 * bound_z.median()


class _OffsetRegressor(torch.nn.Module):
    """A stand-in for the network, for the geometry of the crop loop alone: it reads the crop box the loop chose
    (recorded by crop_source) and answers the true pose with a fixed relative depth error, as its outputs."""

    def __init__(self, m, R, t, K, rel_depth_err: float):
        super().__init__()
        self.m, self.R, self.t, self.K, self.e = m, R, t, K, rel_depth_err
        self.box = None

    def forward(self, crops):
        n = self.m.meta.crop_px
        R_allo, off, code, Kc = self.m.reg_targets(self.R, self.t * (1 + self.e), self.K, self.box)
        return {"rot6d": G.matrix_to_rot6d(R_allo), "offset": off, "depth_code": code,
                "kp": self.m.kp_targets(self.R, self.t * (1 + self.e), Kc)[:, 0]}


@pytest.mark.parametrize("head", ["direct", "pnp"])
def test_crop_follows_and_resizes_with_the_estimate(head):
    """From a localizer box 12 % off-centre and 30 % too large, one refinement re-centres AND re-sizes the crop to
    the renderer's framing of the estimate; re-centring alone keeps the wrong size."""
    m, R, t, K, box_gt, Kc = real_like_case(16, 64, seed=3)
    side = box_gt[:, 2] * 1.3
    centre = G.project(t, K) + 0.12 * side[:, None]
    loc_box = G.box_around(centre, side)
    for e, tol in ((0.0, 1e-6), (0.02, 0.05)):
        reg = _OffsetRegressor(m, R, t, K, e)
        m.regressor = reg

        def src(box, n):
            reg.box = box
            return torch.zeros(len(box), 3, n, n, dtype=torch.float64)
        out = m.infer(None, src, K, refine_iters=1, boxes=loc_box, resize_crop=True, head=head)
        # the box the last pass used is the ground-truth framing, up to the regressor's depth error
        assert ((out["box"][:, 2] / box_gt[:, 2]) - 1).abs().max() < tol + 1e-9
        assert (G.box_around(G.project(t, K), out["box"][:, 2])[:, :2] - out["box"][:, :2]).abs().max() < 1e-6
        assert rot_err_deg(out["R"], R).max() < 1e-4
        same = m.infer(None, src, K, refine_iters=1, boxes=loc_box, resize_crop=False, head=head)
        assert torch.allclose(same["box"][:, 2], side)


class _TwoDepthRegressor(_OffsetRegressor):
    """The direct head reads the distance e_direct too far, the keypoints put the cube e_kp too far."""

    def __init__(self, m, R, t, K, e_direct, e_kp):
        super().__init__(m, R, t, K, e_direct)
        self.e_kp = e_kp

    def forward(self, crops):
        out = super().forward(crops)
        _, _, _, Kc = self.m.reg_targets(self.R, self.t, self.K, self.box)
        out["kp"] = self.m.kp_targets(self.R, self.t * (1 + self.e_kp), Kc)[:, 0]
        return out


def test_heads_take_their_translation_from_the_right_place():
    """pnp-rot: the direct head's distance; pnp: the keypoints'; pnp-mean: the mean of the two."""
    m, R, t, K, box_gt, _ = real_like_case(8, 64, seed=5)
    reg = _TwoDepthRegressor(m, R, t, K, -0.04, 0.02)
    m.regressor = reg

    def src(box, n):
        reg.box = box
        return torch.zeros(len(box), 3, n, n, dtype=torch.float64)
    for head, e in (("pnp-rot", -0.04), ("pnp", 0.02), ("pnp-mean", -0.01)):
        out = m.infer(None, src, K, refine_iters=0, boxes=box_gt, head=head)
        assert out["pnp_ok"].all()
        assert (out["t_m"] - t * (1 + e)).abs().max() < 1e-5, head
        assert rot_err_deg(out["R"], R).max() < 1e-4


def test_finetune_reads_only_tune_session_scenes(tmp_path):
    from core.bop import write_models, write_scene
    from pose_model.config import make_config
    from pose_model.finetune import finetune
    from pose_model.train import train
    from render.dataset import SyntheticDataset
    from render.generate import GenerateConfig, generate_dataset
    import cv2
    ds_dir = tmp_path / "ds"
    generate_dataset(GenerateConfig(object="aruco-cube", n=24, seed=5, frame_width=96, crop_px=64), ds_dir,
                     workers=1, progress=False)
    ckpt = train(make_config("quick", data=str(ds_dir), out=str(tmp_path / "sim"), device="cpu", epochs=1,
                             max_samples=24), progress=False)
    ds = SyntheticDataset(ds_dir)
    H, W = ds.manifest["full_hw"]
    root = tmp_path / "bop"
    for sid, session, ids in ((1, "data", range(0, 12)), (2, "data", range(12, 18)), (3, "test1", range(18, 24))):
        images = [{"im_id": i, "K": ds.labels[i]["K_full"], "width": W, "height": H,
                   "rgb": cv2.resize(ds.frames[i], (W, H), interpolation=cv2.INTER_LINEAR),
                   "gts": [(ds.spec.obj_id, ds.labels[i]["R"], ds.labels[i]["t_m"] * 1000)]} for i in ids]
        write_scene(root, sid, images, session=session)
    write_models(root, [ds.spec])
    from eval.real_dataset import real_to_dataset
    bad = real_to_dataset(root, [1, 3], ds.spec, tmp_path / "data_bad", frame_width=96, crop_px=64)
    with pytest.raises(UserError, match="tune session"):
        finetune(ckpt, bad, tmp_path / "ft_bad", root, epochs=1, device="cpu")
    assert not (tmp_path / "ft_bad").exists()           # refused before anything was trained or written
    with pytest.raises(UserError, match="real_source"):
        finetune(ckpt, ds_dir, tmp_path / "ft_bad", root, epochs=1, device="cpu")   # not real photos
    data = real_to_dataset(root, [2, 1], ds.spec, tmp_path / "data_tune", frame_width=96, crop_px=64)
    # a rerun reuses the finished dataset when it was built the same way; built otherwise, it is refused
    stamp = (data / "manifest.json").stat().st_mtime_ns
    assert real_to_dataset(root, [1, 2], ds.spec, data, frame_width=96, crop_px=64) == data
    assert (data / "manifest.json").stat().st_mtime_ns == stamp
    with pytest.raises(UserError, match=r"data_tune: holds photos of .*bop scenes \[1, 2\], crop_px 64, not of "
                                        r".*bop scenes \[1, 2\], crop_px 48; use another output folder"):
        real_to_dataset(root, [1, 2], ds.spec, data, frame_width=96, crop_px=48)
    with pytest.raises(UserError, match=r"holds photos of .*bop scenes \[1, 2\], not of .*bop scenes \[1\];"):
        real_to_dataset(root, [1], ds.spec, data, frame_width=96, crop_px=64)
    assert (data / "manifest.json").stat().st_mtime_ns == stamp
    out = finetune(ckpt, data, tmp_path / "ft", root, epochs=2, batch_size=8, device="cpu")
    card = json.loads((out.parent / "model_card.json").read_text())
    assert card["init_from"] == str(ckpt) and card["pipeline"] == "oracle" and card["epochs_done"] == 2
    assert card["dataset"]["path"] == str(data) and card["dataset"]["n"] == 18
    # co-trained (the default) with the sim model's own training set: half of every epoch's samples
    assert card["mix_dataset"] == {"path": str(ds_dir), "content_hash": ds.manifest["content_hash"]}
    steps = [r["step"] for r in torch.load(out, weights_only=False)["history"]]
    n_fit = 18 - 2                                      # the fine-tune's validation split (10 %) is left out
    assert steps == [2 * n_fit // 8, 4 * n_fit // 8]
    # the default keeps every loss of the sim training: localizer, rotation, keypoints, symmetry classifier
    assert {k: card["config"][k] for k in ("w_loc", "w_rot", "w_kp", "w_cls")} == \
        {"w_loc": 1.0, "w_rot": 1.0, "w_kp": 5.0, "w_cls": 1.0}
    # learning without forgetting (w_keep): the rotation and keypoints the regressor reads stay the source's, where
    # a fine-tune that fits centre and depth only lets them drift
    depth_only = dict(train_rotation=False, train_classifier=False, train_localizer=False)
    plain = finetune(ckpt, data, tmp_path / "ft_plain", root, epochs=2, batch_size=8, device="cpu", **depth_only)
    assert json.loads((plain.parent / "model_card.json").read_text())["config"]["w_rot"] == 0.0
    kept = finetune(ckpt, data, tmp_path / "ft_keep", root, epochs=2, batch_size=8, device="cpu", w_keep=100.0,
                    **depth_only)
    hist = torch.load(kept, weights_only=False)["history"]
    assert all(r["train_keep"] > 0 for r in hist)
    assert "train_keep" not in torch.load(plain, weights_only=False)["history"][0]
    from pose_model.data import to_float
    from pose_model.predict import PoseEstimator
    models = {k: PoseEstimator.load(c, "cpu").model for k, c in (("sim", ckpt), ("plain", plain), ("kept", kept))}
    nets = {k: m.regressor for k, m in models.items()}
    crops = torch.nn.functional.interpolate(to_float(torch.from_numpy(ds.crops[:16]), torch.device("cpu")),
                                            size=models["sim"].meta.crop_px)
    with torch.no_grad():
        kp = {k: net(crops)["kp"] for k, net in nets.items()}
    drift = {k: float((kp[k] - kp["sim"]).abs().mean()) for k in ("plain", "kept")}
    assert drift["kept"] < 0.75 * drift["plain"], drift  # (the batch-norm statistics still move with the photos)
    with pytest.raises(UserError, match="w_keep 1.0: .*needs init_from"):
        train(make_config("quick", data=str(ds_dir), out=str(tmp_path / "keepbad"), device="cpu", w_keep=1.0),
              progress=False)
    alone = finetune(ckpt, data, tmp_path / "ft_alone", root, epochs=2, batch_size=8, device="cpu", co_train=False)
    card = json.loads((alone.parent / "model_card.json").read_text())
    assert card["mix_dataset"] is None and card["config"]["mix_data"] is None
    assert [r["step"] for r in torch.load(alone, weights_only=False)["history"]] == [n_fit // 8, 2 * n_fit // 8]
    gone = torch.load(ckpt, weights_only=False)
    gone["config"]["data"] = str(tmp_path / "moved")
    torch.save(gone, tmp_path / "gone.pt")
    with pytest.raises(UserError, match="config.data: the sim model's training set .*moved.* is not there"):
        finetune(tmp_path / "gone.pt", data, tmp_path / "ft_gone", root, epochs=1, device="cpu")
    other = real_to_dataset(root, [1], ds.spec, tmp_path / "data_48", frame_width=96, crop_px=48)
    with pytest.raises(UserError, match="mix_data .*data_48: crop_px: 48, but --data has 64"):
        train(make_config("quick", data=str(ds_dir), out=str(tmp_path / "mixbad"), device="cpu", mix_data=str(other)),
              progress=False)
    # the fine-tune started from the sim model's weights (not from scratch), and moved them
    sim = torch.load(ckpt, weights_only=False)["model"]
    ft = torch.load(out, weights_only=False)["model"]
    k = "regressor.head.weight"
    assert 0 < (ft[k] - sim[k]).abs().max() < 0.5 * sim[k].abs().max()
    # the default trains the localizer too; the depth-only fine-tune leaves it as the sim model had it
    loc_keys = [n for n in sim if n.startswith("localizer.") and sim[n].is_floating_point()]
    frozen = torch.load(plain, weights_only=False)["model"]
    assert loc_keys and any(not torch.equal(ft[n], sim[n]) for n in loc_keys)
    assert all(torch.equal(frozen[n], sim[n]) for n in loc_keys)


def test_old_checkpoint_format_gets_a_clear_error(tmp_path):
    from pose_model.model import load_checkpoint
    p = tmp_path / "old.pt"
    torch.save({"format": "sim2real-pose/1", "model": {}}, p)
    with pytest.raises(UserError, match="older format sim2real-pose/1.*retrain"):
        load_checkpoint(p)
