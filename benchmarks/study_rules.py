"""Which rule should combine a study's slices? mean, top-k and noisy-OR compared on phantom studies.

A light slice classifier stands in for the ResNet-50 (training one here would take an hour of this CPU): a
logistic regression on the grey-level histogram and texture features of liverlib.baselines, trained on the
default phantom slice dataset (slices of 64 px, cropped to the liver region as the study classifier crops
them), its slice-level accuracy measured on held-out patients. Whole phantom studies of other patients (dome
to below the tip) then go through :func:`liverlib.study_classify.pick_liver_slices` and the same
preprocessing; each rule turns the chosen slices' probabilities into one answer per study, scored with
liverlib.metrics. Lesions appear on a few slices of a benign or malignant study, cirrhosis on all of them:
the rules differ exactly there.

    python -m benchmarks.study_rules [--studies 32] [--size 512] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine_info, write_result


def _classifier(images: np.ndarray, labels: np.ndarray, seed: int = 0):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, class_weight="balanced",
                                                               random_state=seed))
    return model.fit(_features(images), labels)


def _features(images: np.ndarray) -> np.ndarray:
    from liverlib.baselines import histogram_features, texture_features

    return np.hstack([histogram_features(images), texture_features(images)])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=32, help="phantom studies (classes in turn)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--crop", default="liver", choices=("none", "body", "liver"))
    parser.add_argument("--k", type=int, default=5, help="top-k's k")
    parser.add_argument("--smoke", action="store_true", help="400 training slices, 4 studies of 128 px")
    args = parser.parse_args(argv)
    from liverlib.aggregate import RULES, aggregate, normal_class_index
    from liverlib.config import CLASS_NAMES, load_config
    from liverlib.metrics import scores
    from liverlib.phantom import read_manifest, write_phantom_dataset
    from liverlib.phantom.studies import make_study
    from liverlib.preprocess import load_images, prepare_grey
    from liverlib.splits import make_split
    from liverlib.study_classify import pick_liver_slices
    from liverlib.imaging.windowing import WINDOWS

    start = time.perf_counter()
    config = load_config("laptop")
    data = config.phantom_dir  # the slice dataset the course trains on, made once
    if args.smoke:
        data = Path(config.artifacts_dir) / "data" / "study-rules-smoke"
        args.studies, args.size = 4, 128
    if not (data / "manifest.csv").exists():
        n, size = (400, 128) if args.smoke else (config.phantom_n, config.phantom_size)
        write_phantom_dataset(data, n=n, seed=config.phantom_seed, size=size, overwrite=True, progress=False)
    manifest = read_manifest(data / "manifest.csv")
    manifest = manifest[manifest["augmented_from"] == ""].reset_index(drop=True)
    size = config.image_size
    images = load_images([data / f for f in manifest["file"]], size, crop=args.crop, workers=2)
    labels = manifest["class"].map(list(CLASS_NAMES).index).to_numpy()
    split = make_split(manifest.assign(group=manifest["patient_id"]), (0.85, 0.0, 0.15), seed=0)
    train, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    model = _classifier(images[train], labels[train])
    held_out = np.zeros((len(test), len(CLASS_NAMES)))
    held_out[:, model.classes_] = model.predict_proba(_features(images[test]))
    slice_scores = scores(labels[test], held_out, CLASS_NAMES)
    model = _classifier(images, labels)  # the studies' patients are others: train on every slice
    normal = normal_class_index(CLASS_NAMES)

    y_true, study_probs, picked = [], {rule: [] for rule in RULES}, []
    window = WINDOWS["abdomen"]
    for i in range(args.studies):
        cls = CLASS_NAMES[i % len(CLASS_NAMES)]
        study = make_study(cls, seed=(777, i), size=args.size)
        pick = pick_liver_slices(study.volume().hu, window)
        greys = np.stack([prepare_grey(pick.greys[j], size, args.crop, window)[0] for j in pick.indices])
        probs = np.zeros((len(greys), len(CLASS_NAMES)))
        probs[:, model.classes_] = model.predict_proba(_features(greys))
        y_true.append(CLASS_NAMES.index(cls))
        picked.append(len(pick.indices))
        for rule in RULES:
            study_probs[rule].append(aggregate(probs, rule, normal, args.k)[0])
    y_true = np.asarray(y_true)
    result = {"slice_classifier": "logistic regression on grey-level histogram and texture features "
                                  "(liverlib.baselines)", "crop": args.crop, "input_size": size,
              "slice_level_held_out": {m: round(float(slice_scores[m]), 4)
                                       for m in ("accuracy", "balanced_accuracy", "macro_f1")},
              "train_slices": int(len(images)), "studies": args.studies, "study_size": args.size, "k": args.k,
              "liver_slices_per_study_median": float(np.median(picked)), "rules": {}}
    for rule in RULES:
        p = np.asarray(study_probs[rule])
        s = scores(y_true, p, CLASS_NAMES)
        result["rules"][rule] = {
            **{m: round(float(s[m]), 4) for m in ("accuracy", "balanced_accuracy", "macro_f1")},
            "recall": {c: round(float(s["per_class"][c]["recall"]), 3) for c in CLASS_NAMES},
            "predicted_counts": {c: int((p.argmax(axis=1) == j).sum()) for j, c in enumerate(CLASS_NAMES)}}
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["machine"] = machine_info()
    write_result("study_rules_smoke" if args.smoke else "study_rules", result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    return result


if __name__ == "__main__":
    main()
