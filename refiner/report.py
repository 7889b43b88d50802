"""`refine check`: label preservation and realism of a trained refiner, before vs after, in one report."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.device import pick_device
from core.io import UserError, atomic_write_json, atomic_write_png, atomic_write_text, code_version
from refiner import data as rdata
from refiner.apply import load_refiner, refine_images, sample_grid
from refiner.label_check import aruco_dictionary_of, label_preservation
from refiner.realism import domain_classifier_accuracy, kid, random_features


def check_refiner(ckpt: str | Path, data_dir: str | Path, real: str, out_dir: str | Path,
                  sessions: tuple[str, ...] = (), include: tuple[str, ...] = (), exclude: tuple[str, ...] = (),
                  n: int = 300, n_patches: int = 600, classifier_steps: int = 300, seed: int = 0,
                  device: str = "auto") -> dict:
    """Writes out_dir/report.json, report.md, samples.png; returns the report dict (with 'summary')."""
    from render.dataset import SyntheticDataset

    dev = pick_device(device)
    R, meta = load_refiner(ckpt, dev)
    ds = SyntheticDataset(data_dir)
    if int(ds.manifest.get("crop_px", -1)) != meta["crop_px"]:
        raise UserError(f"{meta['path']}: crop_px: refiner trained on {meta['crop_px']}-px crops, "
                        f"{ds.root} has {ds.manifest.get('crop_px')}-px crops")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(ds), min(n, len(ds)), replace=False))
    syn = ds.crops[idx]
    masks = ds.crop_masks[idx]
    ref = refine_images(R, syn)
    labels = label_preservation(syn, ref, masks, aruco_dictionary_of(ds.spec))

    # realism on real images the refiner did not see
    files, source = rdata.list_real_images(real, sessions, include, exclude)
    seen = {str(Path(meta["real"]["root"]) / f) for f in meta["real"]["files"]}
    held = [f for f in files if str(f) not in seen]
    if len(held) < 2:
        raise UserError(f"{real}: fewer than 2 real images that the refiner did not train on "
                        f"(it saw sessions {', '.join(meta['real']['sessions'])}); choose other --sessions")
    imgs = rdata.load_real_images(held)
    patch = meta["patch_px"]
    scales = rdata.crop_scales(ds.labels[idx], meta["crop_px"]) if meta["config"].get("scale_match", True) else None
    cam_w = float(ds.manifest["full_hw"][1])
    half = len(idx) // 2
    tr, te = np.arange(half), np.arange(half, len(idx))
    real_tr = rdata.sample_real_patches(imgs[0::2], n_patches, patch, np.random.default_rng(seed + 1), scales, cam_w)
    real_te = rdata.sample_real_patches(imgs[1::2], n_patches, patch, np.random.default_rng(seed + 2), scales, cam_w)

    def patches(crops: np.ndarray, ids: np.ndarray, s: int, size: int, bg: bool) -> np.ndarray:
        # same seed ⇒ same windows for synthetic and refined (paired)
        return rdata.sample_synthetic_patches(crops, n_patches, size, np.random.default_rng(s), ids,
                                              masks if bg else None)

    # background-only windows (no cube pixel) at half the patch size: the cube's markers never appear in
    # most real patches, so whole-patch accuracy saturates on content; this row isolates image statistics
    bg_px = max(8, patch // 2)
    real_tr_bg = rdata.sample_real_patches(imgs[0::2], n_patches, bg_px, np.random.default_rng(seed + 6), scales, cam_w)
    real_te_bg = rdata.sample_real_patches(imgs[1::2], n_patches, bg_px, np.random.default_rng(seed + 7), scales, cam_w)
    realism = {}
    for name, crops in (("synthetic", syn), ("refined", ref)):
        p_tr, p_te = patches(crops, tr, seed + 3, patch, False), patches(crops, te, seed + 4, patch, False)
        acc = domain_classifier_accuracy(real_tr, p_tr, real_te, p_te, steps=classifier_steps, seed=seed, device=dev)
        k_mean, k_std = kid(random_features(real_te, seed, dev), random_features(p_te, seed, dev), seed=seed)
        b_tr, b_te = patches(crops, tr, seed + 8, bg_px, True), patches(crops, te, seed + 9, bg_px, True)
        acc_bg = domain_classifier_accuracy(real_tr_bg, b_tr, real_te_bg, b_te, steps=classifier_steps, seed=seed,
                                            device=dev)
        realism[name] = {"domain_classifier_accuracy": acc, "kid": k_mean, "kid_std": k_std,
                         "domain_classifier_accuracy_background": acc_bg}
    atomic_write_png(Path(out_dir) / "samples.png",
             sample_grid(R, syn[:8], rdata.sample_real_patches(imgs, min(8, len(syn)), patch,
                                                              np.random.default_rng(seed + 5), scales, cam_w), dev))
    overlap = len(files) - len(held)
    rep = {
        "refiner": meta["path"], "refiner_sha256": meta["sha256"], "lam": meta["lam"], "k_g": meta["k_g"],
        "k_d": meta["k_d"], "steps": meta["steps_done"], "data": str(ds.root), "n_samples": int(len(idx)),
        "refiner_real_sessions": meta["real"]["sessions"],
        "realism_real": {"root": source["root"], "sessions": source["sessions"], "n_images": len(held),
                         "excluded_seen_by_refiner": overlap},
        "label_preservation": labels, "realism": realism, "seed": seed, "code_version": code_version(),
    }
    lp, rs = labels, realism
    lines = [
        f"refiner {meta['path']} (λ={meta['lam']}, K_g={meta['k_g']}, K_d={meta['k_d']}, {meta['steps_done']} steps; "
        f"trained on real sessions {', '.join(meta['real']['sessions'])}); realism measured on {len(held)} real images "
        f"of sessions {', '.join(source['sessions'])}" + (f" ({overlap} seen by the refiner excluded)" if overlap else ""),
        f"realism: domain-classifier accuracy {rs['synthetic']['domain_classifier_accuracy']:.3f} → "
        f"{rs['refined']['domain_classifier_accuracy']:.3f} (0.5 = indistinguishable); "
        f"(background-only {bg_px}-px windows: {rs['synthetic']['domain_classifier_accuracy_background']:.3f} → "
        f"{rs['refined']['domain_classifier_accuracy_background']:.3f}); "
        f"KID {rs['synthetic']['kid']:.4f} → {rs['refined']['kid']:.4f}",
        f"labels ({lp['n_samples']} crops): edge chamfer median {lp['edge_chamfer_px'].get('median', float('nan')):.3f} px "
        f"(1-px shift reference {lp['edge_chamfer_px_reference_1px_shift'].get('median', float('nan')):.3f} px); "
        f"silhouette edge recall {lp['silhouette_edge_recall_synthetic'].get('mean', float('nan')):.3f} → "
        f"{lp['silhouette_edge_recall_refined'].get('mean', float('nan')):.3f}",
    ]
    if "aruco" in lp:
        a = lp["aruco"]
        lines.append(f"ArUco markers detected {a['markers_synthetic']} → {a['markers_refined']}; corner shift median "
                     f"{a['corner_shift_px'].get('median', float('nan')):.3f} px over {a['corner_shift_px'].get('n', 0)} markers")
    rep["summary"] = "\n".join(lines)
    atomic_write_json(Path(out_dir) / "report.json", rep)
    atomic_write_text(Path(out_dir) / "report.md", "# Refiner check\n\n" + "\n\n".join(lines) + "\n")
    return rep
