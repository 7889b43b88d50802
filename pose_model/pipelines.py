"""How each sim-to-real pipeline plugs into the training loop.

A pipeline decides (1) which dataset it accepts, (2) which samples make each batch, (3) how the images
are randomized on the fly, and (4) what it learns from the task's success (ADR). The training loop only
calls `check_dataset`, `batches`, `augment`, `report`, `state_dict`/`load_state_dict` and `card`.

Which dataset each pipeline expects and whether it randomizes images is the registry's word
(pose_model/registry.py); a dataset of another kind gets one warning.
- none:      images as rendered.
- dr, image-dr, oracle: randomizer.ImageRandomizer with the space's 'dr' image ranges, on the training device
             (dr on render-time-randomized data, image-dr on nominal renders, oracle on real photos).
- adr:       randomizer.ADR: every step draws ranges (one boundary pinned with probability p_b), picks the
             batch from a pool rendered with `--randomization adr-pool` inside the draw's render ranges
             (randomizer.pool_indices), randomizes images inside its image ranges, and reports the
             fraction of boundary samples the pose task solved.
- simgan:    a dataset refined by refiner/ (its manifest has `refined_by`), images as stored.
- simgan+dr: the refined dataset plus the 'dr' image randomization.
"""
from __future__ import annotations

import sys

from typing import Any, Iterator

import numpy as np
import torch

from core.io import UserError
from pose_model.registry import PipelineSpec, pipeline_spec


def warn(msg: str) -> None:
    """A one-line warning on stderr (not Python's warnings machinery, which also prints the source line)."""
    print(f"warning: {msg}", file=sys.stderr, flush=True)


def dataset_level(manifest: dict) -> str:
    """What a dataset holds, in the registry's terms: its randomization level, or 'refined' for a SimGAN-refined
    set (render/dataset.py writes `randomization.level`; refiner/apply.py adds `refined_by`)."""
    if manifest.get("refined_by"):
        return "refined"
    return manifest["randomization"]["level"]


class Pipeline:
    """Base: images as stored (randomized on the fly when the registry says image_dr)."""

    def __init__(self, spec: PipelineSpec, space: tuple[Any, str], seed: int, device: torch.device) -> None:
        self.spec, self.name, self.randomize_images = spec, spec.name, spec.image_dr
        self.seed, self.device = seed, device
        self.space, self.space_source = None, space[1]
        self.randomizer = None
        if self.randomize_images:
            from randomizer import ImageRandomizer
            self.space = space[0]
            self.randomizer = ImageRandomizer(self.space, self.space.ranges("dr", acts_on="image")).to(device)

    # (1) ------------------------------------------------------------------------------------------
    def check_dataset(self, manifest: dict, data_dir: str) -> None:
        level = dataset_level(manifest)
        if level != self.spec.dataset:
            warn(f"{data_dir}: holds {level!r} data; pipeline {self.name!r} expects {self.spec.dataset!r} "
                 f"(see `sim2real train --help`)")

    # (2) ------------------------------------------------------------------------------------------
    def batches(self, train_idx: np.ndarray, batch_size: int, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, Any]]:
        perm = rng.permutation(train_idx)
        for i in range(0, len(perm) - batch_size + 1 if len(perm) >= batch_size else 1, batch_size):
            yield perm[i:i + batch_size], None

    def steps_per_epoch(self, n_train: int, batch_size: int) -> int:
        return max(1, n_train // batch_size)

    # (3) ------------------------------------------------------------------------------------------
    def set_epoch_seed(self, seed: int) -> None:
        if self.randomizer is not None and hasattr(self.randomizer, "set_seed"):
            self.randomizer.set_seed(seed)

    def augment(self, x: torch.Tensor, ctx: Any) -> torch.Tensor:
        if self.randomizer is None:
            return x
        return self.randomizer(x).clamp_(0, 1)

    # (4) ------------------------------------------------------------------------------------------
    def report(self, ctx: Any, success: torch.Tensor) -> None:
        pass

    def end_epoch(self, out_dir) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, d: dict) -> None:
        pass

    def card(self) -> dict:
        d: dict[str, Any] = {"pipeline": self.name}
        if self.space is not None:
            d["image_ranges"] = self.space.ranges("dr", acts_on="image")
            d["space"] = self.space_source
        return d


class NonePipeline(Pipeline):
    pass


class DRPipeline(Pipeline):
    pass


class SimGANPipeline(Pipeline):

    def check_dataset(self, manifest: dict, data_dir: str) -> None:
        if not manifest.get("refined_by"):
            raise UserError(f"{data_dir}/manifest.json: refined_by: pipeline {self.name} needs a dataset refined "
                            f"by a SimGAN refiner (`sim2real refine apply --refiner CKPT --data DIR --out DIR`)")


class SimGANDRPipeline(SimGANPipeline):
    pass


class ADRPipeline(Pipeline):
    """OpenAI-style ADR: ranges move with the task's success on boundary samples."""

    def __init__(self, spec: PipelineSpec, space: tuple[Any, str], seed: int, device: torch.device) -> None:
        super().__init__(spec, space, seed, device)
        from randomizer import ADR, ADRConfig, ImageRandomizer
        self.space = space[0]
        self.adr = ADR(self.space, ADRConfig(), seed)
        self.randomizer = ImageRandomizer(self.space, self.space.ranges("nominal", acts_on="image")).to(device)
        self.params: list[dict] | None = None
        self.log_rows: list[dict] = []
        self.step = 0

    def attach(self, params: list[dict], train_idx: np.ndarray) -> None:
        self.params = params
        self.train_mask = np.zeros(len(params), bool)
        self.train_mask[train_idx] = True

    def batches(self, train_idx, batch_size, rng):
        from randomizer import pool_indices
        for _ in range(self.steps_per_epoch(len(train_idx), batch_size)):
            draw = self.adr.propose()
            # min_count tops a near-empty pool up with the nearest samples (early on, when ranges are points)
            pool = np.asarray(pool_indices(self.params, self.space, draw.render_ranges, draw.boundary,
                                           min_count=2 * batch_size), dtype=np.int64)
            pool = pool[self.train_mask[pool]] if len(pool) else pool
            if len(pool) == 0:  # nothing rendered inside these ranges yet: fall back to the whole split
                pool = train_idx
            yield rng.choice(pool, size=batch_size, replace=len(pool) < batch_size), draw

    def augment(self, x, draw):
        if hasattr(self.randomizer, "set_ranges"):
            self.randomizer.set_ranges(draw.image_ranges)
        else:
            from randomizer import ImageRandomizer
            self.randomizer = ImageRandomizer(self.space, draw.image_ranges).to(self.device)
        return self.randomizer(x).clamp_(0, 1)

    def report(self, draw, success):
        self.step += 1
        if draw.boundary is not None:
            self.adr.report(draw, float(success.float().mean()))
        if self.step % 10 == 0 or draw.boundary is not None:
            self.log_rows.append(dict(self.adr.log_row(self.step)))

    def end_epoch(self, out_dir) -> None:
        from randomizer import write_adr_log
        if self.log_rows:
            write_adr_log(self.log_rows, out_dir)

    def state_dict(self) -> dict:
        return {"adr": self.adr.state_dict(), "log_rows": self.log_rows, "step": self.step}

    def load_state_dict(self, d: dict) -> None:
        self.adr.load_state_dict(d["adr"])
        self.log_rows = list(d["log_rows"])
        self.step = d["step"]

    def card(self) -> dict:
        return {"pipeline": self.name, "adr_final_ranges": self.adr.ranges(), "adr_entropy": self.adr.entropy(),
                "space": self.space_source}


PIPELINE_CLASSES = {c.__name__: c for c in (NonePipeline, DRPipeline, ADRPipeline, SimGANPipeline, SimGANDRPipeline)}


def make_pipeline(name: str, space: tuple[Any, str] | None, seed: int, device: torch.device) -> Pipeline:
    """space: (randomizer.ParamSpace, where it came from) — see pose_model.train.space_for; None: the shipped
    default."""
    spec = pipeline_spec(name)
    if space is None:
        from randomizer.space import load_space
        space = (load_space(None), "randomizer/default.yaml")
    return PIPELINE_CLASSES[spec.cls](spec, space, seed, device)
