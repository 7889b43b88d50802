"""The one registry of pipelines: name → which dataset it trains on, whether images are randomized on the fly,
and the class (pose_model/pipelines.py) that plugs it into the training loop. Torch-free, so the CLI, `train`
and the benchmark all read it cheaply."""
from __future__ import annotations

from dataclasses import dataclass

from core.io import UserError

# The pose heads a trained model can report (PoseModel.infer): PnP's rotation with the direct translation (the
# default), keypoints + PnP, the direct 6-D/depth regression, PnP's rotation with the mean of both translations.
# Here, torch-free, for the CLI and the config.
HEADS = ("pnp-rot", "pnp", "direct", "pnp-mean")


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    dataset: str        # randomization level of the synthetic dataset it expects (nominal, dr, adr-pool), or
                        # "refined" (a SimGAN-refined set of REFINED_FROM renders) or "real" (labelled real photos)
    image_dr: bool      # image-level randomization (kornia, the space's 'dr' image ranges) on the fly
    cls: str            # class name in pose_model/pipelines.py
    about: str
    synthetic: bool = True   # trained on synthetic data only (a sim-to-real method; a row of the benchmark)
    loc_dataset: str | None = None  # the localizer's frames come from a dataset of this level (train --loc-data);
                                    # None: from `dataset`, like the regressor's crops


PIPELINES: dict[str, PipelineSpec] = {p.name: p for p in [
    PipelineSpec("none", "nominal", False, "NonePipeline", "nominal renders, as rendered"),
    PipelineSpec("image-dr", "nominal", True, "DRPipeline", "nominal renders + image-level randomization (control)"),
    PipelineSpec("render-dr", "dr", False, "NonePipeline",
                 "render-time domain randomization only (Tobin et al.: textures, lights, distractors, camera)"),
    PipelineSpec("dr", "dr", True, "DRPipeline", "render-time + image-level domain randomization"),
    PipelineSpec("adr", "nominal", False, "ADRPipeline",
                 "automatic domain randomization: render workers draw from ranges that move with success"),
    PipelineSpec("hybrid-dr", "nominal", True, "DRPipeline",
                 "image-dr's regressor; its localizer trained on render-time-DR frames (clutter, textures)",
                 loc_dataset="dr"),
    PipelineSpec("simgan", "refined", False, "SimGANPipeline", "SimGAN-refined render-time-DR renders"),
    PipelineSpec("simgan+dr", "refined", True, "SimGANDRPipeline",
                 "SimGAN-refined render-time-DR renders + image-level randomization (dr + the refiner)"),
    PipelineSpec("oracle", "real", True, "DRPipeline", "labelled real photos of the tune session (a reference)",
                 synthetic=False),
]}
# The rendered set a SimGAN refiner trains on and refines (in the benchmark): the render-time-randomized one, whose
# scenes hold clutter, textures and lights as the photos do, so the discriminator is left with appearance. On nominal
# renders (an empty table, one light) it separated scene content — a gap no pixel-level refiner may close — and the
# simgan row stayed above the mean-pose floor (tune session, refiner/README.md "What the refiner refines").
REFINED_FROM = "dr"
# The sim model the benchmark's real-label rows (the fine-tune, the depth scale) start from: chosen on the tune
# session (the evidence is beside its use, benchmark/run.py).
FINETUNE_FROM = "render-dr"
SIM_PIPELINES = tuple(n for n, p in PIPELINES.items() if p.synthetic)


def pipeline_spec(name: str, flag: str = "--pipeline") -> PipelineSpec:
    if name not in PIPELINES:
        raise UserError(f"{flag} {name}: expected one of {', '.join(PIPELINES)}")
    return PIPELINES[name]
