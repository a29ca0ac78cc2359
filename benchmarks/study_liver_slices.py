"""How well whole-study classification picks the liver slices, against the phantom's label volumes.

Phantom studies (dome to below the tip, 4-5 mm slices) of every class, and studies of the same anatomy with no
liver at all. A slice holds liver when its label map has at least MIN_LIVER_AREA_MM2 (1 cm^2) of it. For
:func:`liverlib.study_classify.pick_liver_slices` and for its first step alone (find_crop's verdict per slice,
before the longest run and the width check) the benchmark reports sensitivity, specificity and precision
over slices, how many slices that cut a lesion were left out, how many studies without liver were refused,
and where the misses lie (near the dome, near the tip, in between).

    python -m benchmarks.study_liver_slices [--studies 16] [--size 512] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from benchmarks.common import machine_info, write_result


def _rates(tp: int, fp: int, fn: int, tn: int) -> dict:
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "sensitivity": round(tp / max(tp + fn, 1), 4),
            "specificity": round(tn / max(tn + fp, 1), 4), "precision": round(tp / max(tp + fp, 1), 4)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=16, help="studies with liver (classes in turn)")
    parser.add_argument("--no-liver", type=int, default=8, help="studies without liver")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--smoke", action="store_true", help="2 + 1 studies of 128 px")
    args = parser.parse_args(argv)
    if args.smoke:
        args.studies, args.no_liver, args.size = 2, 1, 128
    from liverlib.config import CLASS_NAMES
    from liverlib.phantom.studies import make_study
    from liverlib.study_classify import pick_liver_slices

    start = time.perf_counter()
    counts = {"pick_liver_slices": np.zeros(4, int), "find_crop_per_slice": np.zeros(4, int)}
    lesion_slices = lesion_missed = 0
    misses = {"within_20mm_of_dome": 0, "within_30mm_of_tip": 0, "elsewhere": 0}
    per_study = []
    for i in range(args.studies):
        cls = CLASS_NAMES[i % len(CLASS_NAMES)]
        study = make_study(cls, seed=(args.seed, i), size=args.size)
        truth = np.zeros(len(study.z_mm), bool)
        truth[study.liver_slices] = True
        pick = pick_liver_slices(study.volume().hu)
        chosen = np.zeros_like(truth)
        chosen[pick.indices] = True
        for name, flags in (("pick_liver_slices", chosen), ("find_crop_per_slice", pick.found)):
            counts[name] += [(flags & truth).sum(), (flags & ~truth).sum(), (~flags & truth).sum(),
                             (~flags & ~truth).sum()]
        lesion = np.zeros_like(truth)
        lesion[study.lesion_slices] = True
        lesion_slices += int(lesion.sum())
        lesion_missed += int((lesion & ~chosen).sum())
        for k in np.flatnonzero(truth & ~chosen):
            z = study.z_mm[k]
            key = ("within_20mm_of_dome" if z - study.liver_dome_mm <= 20 else
                   "within_30mm_of_tip" if study.liver_tip_mm - z <= 30 else "elsewhere")
            misses[key] += 1
        per_study.append({"class": cls, "n_slices": len(truth), "liver_slices": int(truth.sum()),
                          "picked": len(pick.indices), "correct": int((chosen & truth).sum()),
                          "extent": round(pick.extent, 3)})
    refused, extents = 0, []
    for i in range(args.no_liver):
        study = make_study(CLASS_NAMES[i % len(CLASS_NAMES)], seed=(args.seed, 1000 + i), size=args.size,
                           liver=False)
        pick = pick_liver_slices(study.volume().hu)
        refused += not pick.indices
        extents.append(round(pick.extent, 3))
    result = {
        "studies": args.studies, "size": args.size, "seed": args.seed,
        "slices": {name: _rates(*map(int, c)) for name, c in counts.items()},
        "lesion_slices": lesion_slices, "lesion_slices_left_out": lesion_missed,
        "missed_liver_slices_by_place": misses,
        "no_liver_studies": args.no_liver, "no_liver_studies_refused": refused,
        "no_liver_run_extents": extents,
        "liver_run_extents": sorted(s["extent"] for s in per_study),
        "per_study": per_study, "seconds": round(time.perf_counter() - start, 1), "machine": machine_info(),
    }
    write_result("study_liver_slices_smoke" if args.smoke else "study_liver_slices", result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("machine", "per_study")}, indent=2))
    return result


if __name__ == "__main__":
    main()
