"""Pose-model geometry: 6D rotations, allocentric↔egocentric, depth code, crop K, symmetric losses."""
import numpy as np
import torch

from core.camera import crop_K as crop_K_np
from core.camera import project_points
from core.objects import load_object_spec
from pose_model import geometry as G
from pose_model.model import ModelMeta, PoseModel


def random_rotations(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 4, generator=g, dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        torch.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        torch.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], -2)


def test_rot6d_round_trip():
    R = random_rotations(100)
    assert torch.allclose(G.rot6d_to_matrix(G.matrix_to_rot6d(R)), R, atol=1e-10)
    # any 6 numbers (not orthonormal) give a proper rotation
    x = torch.randn(50, 6, dtype=torch.float64)
    M = G.rot6d_to_matrix(x)
    assert torch.allclose(M @ M.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(50, 3, 3), atol=1e-10)
    assert torch.allclose(torch.linalg.det(M), torch.ones(50, dtype=torch.float64), atol=1e-10)


def test_allocentric_egocentric():
    R = random_rotations(64, 1)
    t = torch.randn(64, 3, dtype=torch.float64) * 0.1
    t[:, 2] = t[:, 2].abs() + 0.3
    Ra = G.ego_to_allo(R, t)
    assert torch.allclose(G.allo_to_ego(Ra, t), R, atol=1e-10)
    # the ray rotation takes the optical axis onto the ray
    Rr = G.ray_rotation(t)
    z = torch.tensor([0, 0, 1.0], dtype=torch.float64)
    assert torch.allclose(Rr @ z, t / t.norm(dim=-1, keepdim=True), atol=1e-10)
    # on the optical axis allocentric == egocentric
    t0 = torch.tensor([[0, 0, 0.4]], dtype=torch.float64)
    assert torch.allclose(G.ego_to_allo(R[:1], t0), R[:1], atol=1e-12)
    # the allocentric rotation is what the crop sees: a cube moved sideways and turned with the ray looks
    # the same (same allocentric R) from the camera
    Rb = G.ego_to_allo(G.ray_rotation(t[:1]) @ R[:1], t[:1])
    assert torch.allclose(Rb, R[:1], atol=1e-10)


def test_translation_from_centre_and_depth_exact():
    K = torch.tensor([[615.0, 0, 321.3], [0, 612.0, 238.9], [0, 0, 1]], dtype=torch.float64)
    R = random_rotations(32, 2)
    t = torch.randn(32, 3, dtype=torch.float64) * 0.08
    t[:, 2] = t[:, 2].abs() + 0.2
    box = G.box_around(G.project(t, K) + torch.randn(32, 2, dtype=torch.float64) * 5,
                       torch.rand(32, dtype=torch.float64) * 100 + 60)
    Kc = G.crop_K(K.expand(32, 3, 3), box, 64)
    # batched crop K == core.camera.crop_K
    for i in range(3):
        ref = crop_K_np(K.numpy(), *box[i].tolist(), 64)
        assert np.allclose(Kc[i].numpy(), ref, atol=1e-9)
    # targets → decode recovers t and R exactly
    spec = load_object_spec("aruco-cube")
    meta = ModelMeta((120, 160), (480, 640), 64, 0.75, 0.03, 8, 8, 16)
    m = PoseModel(meta, torch.as_tensor(spec.symmetries)).double()
    R_allo, off, code, Kc2 = m.reg_targets(R, t, K.expand(32, 3, 3), box)
    out = {"rot6d": G.matrix_to_rot6d(R_allo), "offset": off, "depth_code": code}
    R2, t2, _ = m.reg_decode(out, Kc2)
    assert torch.allclose(t2, t, atol=1e-10)
    assert torch.allclose(R2, R, atol=1e-10)
    # and the centre offset is where the cube centre projects in the crop
    uv = project_points(np.zeros((1, 3)), np.eye(3), t[0].numpy(), Kc2[0].numpy())[0]
    assert np.allclose((uv + 0.5) / 64 - 0.5, off[0].numpy(), atol=1e-9)


def test_loss_invariant_under_symmetries():
    spec = load_object_spec("plain-cube")
    syms = torch.as_tensor(spec.symmetries)
    assert len(syms) == 24
    meta = ModelMeta((120, 160), (480, 640), 64, 0.75, 0.03, 8, 8, 16)
    m = PoseModel(meta, syms).double()
    R = random_rotations(16, 3)
    Rp = random_rotations(16, 4)
    out = {"rot6d": G.matrix_to_rot6d(Rp), "offset": torch.zeros(16, 2, dtype=torch.float64),
           "depth_code": torch.zeros(16, dtype=torch.float64)}
    z2, z1 = torch.zeros(16, 2, dtype=torch.float64), torch.zeros(16, dtype=torch.float64)
    base, _ = m.reg_loss(out, R, z2, z1, (1, 1, 1))
    for g in syms:
        lg, _ = m.reg_loss(out, R @ g, z2, z1, (1, 1, 1))
        assert torch.allclose(lg, base, atol=1e-9)
        assert torch.allclose(G.sym_rotation_error_deg(Rp, R @ g, syms), G.sym_rotation_error_deg(Rp, R, syms),
                              atol=1e-6)
    # predicting a symmetric copy of the truth costs nothing; with no symmetries it does
    out_sym = dict(out, rot6d=G.matrix_to_rot6d(R @ syms[5]))
    assert m.reg_loss(out_sym, R, z2, z1, (1, 1, 1))[0].max() < 1e-3
    # with sym_split the cube's shape symmetries are learnt as geometry + a classification of the truth's
    # symmetry class: a symmetric copy costs nothing geometrically, only when the classifier names the wrong
    # class; and decoding a symmetric copy with the right class gives the true rotation back
    meta_split = ModelMeta((120, 160), (480, 640), 64, 0.75, 0.03, 8, 8, 16, sym_split=True)
    m1 = PoseModel(meta_split, torch.eye(3, dtype=torch.float64)[None]).double()
    assert len(m1.geo_syms) == 24 and m1.regressor.n_cls == 24
    assert PoseModel(meta, torch.eye(3, dtype=torch.float64)[None]).regressor.n_cls == 0  # the default: direct
    right = m1.sym_class_probs(R).log()
    wrong = right.roll(1, dims=-1)
    l_right = m1.reg_loss(dict(out_sym, sym_logits=right), R, z2, z1, (1, 1, 1))[0]
    l_wrong = m1.reg_loss(dict(out_sym, sym_logits=wrong), R, z2, z1, (1, 1, 1))[0]
    assert (l_wrong > l_right + 0.5).all()
    Kc = torch.tensor([[600.0, 0, 32], [0, 600, 32], [0, 0, 1]], dtype=torch.float64).expand(16, 3, 3)
    for k in range(24):  # whichever copy the geometric head chose
        _, _, R_allo = m1.reg_decode(dict(out_sym, rot6d=G.matrix_to_rot6d(R @ syms[k]), sym_logits=right), Kc)
        assert torch.allclose(R_allo, R, atol=1e-9)


def test_symmetry_class_tolerates_geometric_error():
    """With a calibrated classifier, a geometric estimate 5° off (any of its 24 copies) decodes to the right copy
    nearly always: the soft class is smooth where two copies are equally near the identity (hard classes flip
    ≈ 12 % at this noise, measured)."""
    g = torch.Generator().manual_seed(0)
    meta = ModelMeta((120, 160), (480, 640), 64, 0.75, 0.03, 8, 8, 16, sym_split=True)
    m = PoseModel(meta, torch.eye(3, dtype=torch.float64)[None]).double()
    B = 2000
    R = random_rotations(B, 5)
    copies = m.geo_syms[torch.randint(0, 24, (B,), generator=g)]
    axis = torch.nn.functional.normalize(torch.randn(B, 3, generator=g, dtype=torch.float64), dim=-1)
    Kx = torch.zeros(B, 3, 3, dtype=torch.float64)  # Rodrigues: a 5° turn about a random axis
    Kx[:, 0, 1], Kx[:, 0, 2], Kx[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    Kx = Kx - Kx.transpose(1, 2)
    a = torch.deg2rad(torch.tensor(5.0, dtype=torch.float64))
    noise = torch.eye(3, dtype=torch.float64) + torch.sin(a) * Kx + (1 - torch.cos(a)) * (Kx @ Kx)
    R_geo = R @ copies @ noise
    I = torch.eye(3, dtype=torch.float64)[None]
    soft = m.sym_class_probs(R).log()
    hard = torch.nn.functional.one_hot(soft.argmax(-1), 24).double() * 20
    flips = {}
    for name, logits in (("soft", soft), ("hard", hard)):
        R_dec = R_geo @ m.sym_choice({"rot6d": G.matrix_to_rot6d(R_geo), "sym_logits": logits}).transpose(-1, -2)
        flips[name] = float((G.sym_rotation_error_deg(R_dec, R, I) > 10).double().mean())
    assert flips["soft"] < 0.01 and flips["hard"] > 0.02, flips


def test_crop_images_matches_crop_K():
    """A bright dot at a known pixel lands where crop_K says it should."""
    H, W = 120, 160
    img = torch.zeros(1, 1, H, W, dtype=torch.float64)
    img[0, 0, 40, 100] = 1.0
    box = torch.tensor([[80.0, 20.0, 40.0]], dtype=torch.float64)
    crop = G.crop_images(img, box, 80, antialias=1)  # 2× upsampling
    K = torch.eye(3, dtype=torch.float64)[None]
    Kc = G.crop_K(K, box, 80)
    uv = (Kc[0] @ torch.tensor([100.0, 40.0, 1.0], dtype=torch.float64))[:2]
    ys, xs = torch.nonzero(crop[0, 0] > 0, as_tuple=True)
    w = crop[0, 0][ys, xs]
    cx, cy = float((xs * w).sum() / w.sum()), float((ys * w).sum() / w.sum())
    assert abs(cx - float(uv[0])) < 1e-6 and abs(cy - float(uv[1])) < 1e-6


def test_crop_images_equals_affine_grid_sampling_and_average_pooling():
    """The outer-sum grid and the strided-slice pooling are F.affine_grid + grid_sample + avg_pool2d, faster: the
    same crops (to rounding) for boxes inside, across and outside the image, at every antialiasing factor."""
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(0)
    img = torch.rand(6, 3, 50, 70, generator=g, dtype=torch.float64)
    box = torch.tensor([[10.0, 5.0, 30.0], [-12.5, 20.0, 44.0], [60.0, 40.0, 25.0], [200.0, 0.0, 10.0],
                        [0.0, 0.0, 70.0], [33.3, 7.7, 3.1]], dtype=torch.float64)
    for aa in (1, 2, 3, 4, 8):
        n = 16 * aa
        theta = torch.zeros(6, 2, 3, dtype=torch.float64)
        theta[:, 0, 0], theta[:, 1, 1] = box[:, 2] / 70, box[:, 2] / 50
        theta[:, 0, 2], theta[:, 1, 2] = (2 * box[:, 0] + box[:, 2]) / 70 - 1, (2 * box[:, 1] + box[:, 2]) / 50 - 1
        grid = F.affine_grid(theta, [6, 3, n, n], align_corners=False)
        ref = F.avg_pool2d(F.grid_sample(img, grid, align_corners=False), aa)
        assert torch.allclose(G.crop_images(img, box, 16, antialias=aa), ref, atol=1e-12), aa
        assert torch.allclose(G.box_downsample(img[:, :, :48, :64], aa if aa != 3 else 4),
                              F.avg_pool2d(img[:, :, :48, :64], aa if aa != 3 else 4), atol=1e-12)


def test_localizer_targets_round_trip():
    meta = ModelMeta((120, 160), (480, 640), 64, 0.75, 0.03, 8, 8, 16)
    m = PoseModel(meta, torch.eye(3)[None])
    centre = torch.tensor([[10.3, 20.7], [600.2, 470.9], [320.0, 240.0]])
    side = torch.tensor([50.0, 120.0, 300.0])
    cell, off, logs = m.loc_targets(centre, side)
    gh, gw = 15, 20
    logits = torch.full((3, gh * gw), -20.0)
    logits[torch.arange(3), cell] = 20.0
    offset = torch.zeros(3, 2, gh * gw)
    offset[torch.arange(3), :, cell] = off
    ls = torch.zeros(3, gh * gw)
    ls[torch.arange(3), cell] = logs
    c2, s2, score = m.loc_decode({"logits": logits.view(3, gh, gw), "offset": offset.view(3, 2, gh, gw),
                                  "log_size": ls.view(3, gh, gw)})
    assert torch.allclose(c2, centre, atol=1e-3) and torch.allclose(s2, side, rtol=1e-5)
    assert (score > 0.99).all()
