"""ADR with render workers (Akkaya et al. 2019, Algorithm 1): boundary jobs are rendered AT the pinned value with
the other parameters inside the current ranges, scored in eval mode on the whole pose task before they enter the
training buffer, and a toy task with a known threshold pulls the range to that threshold."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from randomizer import ADR, ADRConfig
from randomizer.space import space_from_dict


def test_toy_task_range_converges_to_its_threshold():
    """Success iff the pinned value is below 0.63 (a known threshold): the high bound ends within one Δ of it,
    from below and above, and every boundary draw carries exactly the boundary value."""
    space = space_from_dict({"params": {"x": {"kind": "continuous", "acts_on": "render", "nominal": 0.0,
                                              "bounds": [0.0, 1.0]}}})
    cfg = ADRConfig(p_b=0.5, m=3, t_L=0.4, t_H=0.7, delta_frac=0.1)
    adr = ADR(space, cfg, seed=0)
    rng = np.random.default_rng(0)
    his = []
    for step in range(3000):
        d = adr.propose()
        if d.boundary is None:
            continue
        assert d.render_ranges["x"] == (d.value, d.value) == (adr.hi["x"],) * 2  # AT the boundary
        x = space.sample(rng, d.render_ranges)["x"]
        assert x == d.value
        adr.report(d, float(x < 0.63))
        his.append(adr.hi["x"])
    settled = his[len(his) // 2:]
    assert all(0.63 - 0.1 - 1e-9 <= h <= 0.63 + 0.1 + 1e-9 for h in settled), (min(settled), max(settled))
    assert min(settled) < 0.63 < max(settled) + 1e-9  # it probes past the threshold and comes back


@pytest.fixture(scope="module")
def nominal_data(tmp_path_factory):
    from render.generate import GenerateConfig, generate_dataset
    out = tmp_path_factory.mktemp("adrbuf") / "ds"
    generate_dataset(GenerateConfig(object="aruco-cube", n=16, seed=4, frame_width=64, crop_px=48, shard_size=8),
                     out, workers=1, progress=False)
    return out


def test_boundary_jobs_are_rendered_at_the_boundary_and_scored_before_training(nominal_data):
    from pose_model.config import make_config
    from pose_model.data import PoseData, split_indices
    from pose_model.pipelines import make_pipeline
    from pose_model.train import _load_dataset, build_model
    from pose_model.model import ModelMeta
    ds = _load_dataset(str(nominal_data))
    cfg = make_config("quick", data=str(nominal_data), out="unused", device="cpu")
    data = PoseData.from_dataset(ds)
    train_idx, _ = split_indices(len(data), 0.25)
    m = ds.manifest
    meta = ModelMeta(frame_hw=tuple(m["frame_hw"]), full_hw=tuple(m["full_hw"]), crop_px=cfg.crop_px,
                     crop_factor=cfg.crop_factor, size_m=float(max(ds.spec.size_m)), loc_width=cfg.loc_width,
                     reg_width=cfg.reg_width, reg_hidden=cfg.reg_hidden)
    model = build_model(meta, ds.spec.symmetries, 0)
    model.train()
    pipe = make_pipeline("adr", None, 0, torch.device("cpu"))
    # ADR with only one render parameter, already opened part way, always pinning a boundary
    name = "light_intensity" if "light_intensity" in pipe.space.params else pipe.space.names("render")[0]
    p = pipe.space.params[name]
    pipe.adr = ADR(pipe.space, ADRConfig(p_b=1.0, m=1, params=(name,)), seed=0)
    if p.kind != "choice":
        pipe.adr.lo[name] = float(p.nominal) - 0.5 * (float(p.nominal) - p.low)
        pipe.adr.hi[name] = float(p.nominal) + 0.5 * (p.high - float(p.nominal))
    before = data.frames[torch.as_tensor(train_idx)].clone()
    pipe.scenes_per_job = 1
    pipe.attach(ds.params, train_idx)
    pipe.bind(model, data, cfg, m)
    try:
        pipe.service()  # step 0: submits its jobs, due lag_steps later
        assert not pipe.last_jobs
        jobs = []
        for _ in range(pipe.lag_steps):
            pipe.step += 1
            pipe.service(timeout_s=120.0)  # waits for the jobs due now
            jobs += pipe.last_jobs
            assert bool(pipe.last_jobs) == (pipe.step == pipe.lag_steps)  # collected exactly when due
    finally:
        pipe.close()
    assert len(jobs) == pipe.jobs_per_step * pipe.n_workers
    for draw, params, ok in jobs:
        assert draw.boundary is not None and draw.boundary[0] == name
        assert all(pr[name] == draw.value for pr in params)  # rendered AT the pinned boundary value
        assert ok is not None and ok.dtype == torch.bool and len(ok) == len(params)  # scored before training
    assert model.training  # scoring ran in eval mode and restored train mode
    assert not torch.equal(data.frames[torch.as_tensor(train_idx)], before)  # the job entered the buffer
    assert pipe.adr.n_reports >= 1
    t = pipe.throughput()
    assert t["samples_rendered"] > 0 and t["boundary_samples_scored"] > 0
