"""SimGAN refiner (Shrivastava et al. 2017): make synthetic crops look like unlabelled real photos.

Public surface:
- model:       Refiner, PatchDiscriminator, HistoryBuffer
- train:       RefinerConfig, make_config(profile, **overrides), train_refiner(cfg) -> Path (refiner.pt)
- apply:       load_refiner(ckpt, device), refine_images(R, uint8 (n,H,W,3)),
               refine_dataset(ckpt, data_dir, out_dir, device, frames="copy") -> Path
               sample_grid(R, crops, real_patches, device) (synthetic | refined | diff | real rows)
- data:        list_real_images(real, sessions, include, exclude) (unlabelled real images)
- label_check: label_preservation(...) and its small metrics; realism: domain_classifier_accuracy, kid
- report:      check_refiner(...) (`refine check`)
- commands:    COMMANDS = [refine_group] (`sim2real refine train|apply|check`)
"""
from refiner.apply import load_refiner, refine_dataset, refine_images
from refiner.model import HistoryBuffer, PatchDiscriminator, Refiner

_TRAIN_NAMES = ("RefinerConfig", "make_config", "train_refiner")


def __getattr__(name: str):
    # training is imported on first use only: loading and applying a refiner never imports it
    if name in _TRAIN_NAMES:
        from refiner import train
        return getattr(train, name)
    raise AttributeError(f"module 'refiner' has no attribute {name!r}")


__all__ = ["Refiner", "PatchDiscriminator", "HistoryBuffer", "RefinerConfig", "make_config", "train_refiner",
           "load_refiner", "refine_images", "refine_dataset"]
