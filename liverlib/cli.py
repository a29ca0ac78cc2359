"""The ``liverlib`` command line: ``liverlib --help`` lists the subcommands.

Every error a user can fix is printed to stderr as one sentence, with exit status 2 for bad arguments
and 1 for everything else; no traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from liverlib.aggregate import DEFAULT_RULE, RULES
from liverlib.config import CHECKPOINT_METRICS, load_config, profiles_with
from liverlib.errors import LiverlibError


def _cmd_config(args: argparse.Namespace) -> int:
    cfg = load_config(args.profile)
    print(cfg.describe())
    return 0


def _cmd_phantom(args: argparse.Namespace) -> int:
    from liverlib.phantom import write_phantom_dataset
    from liverlib.study_cli import phantom_studies
    from liverlib.imaging.windowing import parse_window

    if args.format in ("dicom-series", "nifti"):
        return phantom_studies(args)
    classes = tuple(c.strip().lower() for c in args.classes.split(",") if c.strip()) if args.classes else None
    start = time.perf_counter()
    manifest = write_phantom_dataset(
        args.out, n=args.n, seed=args.seed, size=args.size, fmt=args.format,
        augmented_copies=args.augmented_copies, classes=classes, window=parse_window(args.window),
        overwrite=args.overwrite, workers=args.workers, slices_per_patient=args.slices_per_patient,
        progress=not args.quiet)
    elapsed = time.perf_counter() - start
    print(f"wrote {args.n} synthetic slices to {Path(args.out)} in {elapsed:.1f} s; manifest: {manifest}")
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    import json

    from liverlib.audit import audit_folder
    from liverlib.nearcopy import DEFAULT_THRESHOLD

    result = audit_folder(args.data_dir, split_strategy=args.split, seed=args.seed,
                          threshold=args.threshold or DEFAULT_THRESHOLD)
    if args.json:
        print(json.dumps(result.as_json()))
        return 0
    print(f"{result.images} images, {args.split if result.split_strategy != 'as given by the folders' else 'given'} "
          f"split: {result.near_duplicate_pairs_across_splits} near-duplicate pair(s) across train and test, "
          f"{result.flagged_test_images} test image(s) with a near-copy in training")
    for row in result.pairs.head(args.show).itertuples(index=False):
        print(f"  {row.test_file}  ~  {row.train_file}  (distance {row.distance:.3f})")
    if len(result.pairs) > args.show:
        print(f"  ... {len(result.pairs) - args.show} more (use --json for all)")
    return 0


def _imbalance_changes(args: argparse.Namespace) -> dict:
    """The configuration changes of --class-weights and --balanced-sampling: either one, asked for, replaces the
    profile's other correction for class imbalance; both at once are left for RunConfig to refuse."""
    weights, sampling = args.class_weights, args.balanced_sampling
    changes = {k: v for k, v in (("class_weighting", weights), ("balanced_sampling", sampling)) if v is not None}
    if sampling and weights is None:
        changes["class_weighting"] = False
    if weights and sampling is None:
        changes["balanced_sampling"] = False
    return changes


def _cmd_train(args: argparse.Namespace) -> int:
    from liverlib.data import load_dataset
    from liverlib.splits import split_for
    from liverlib.train import train

    config = load_config(args.profile, data_dir=args.data)
    changes = {k: v for k, v in (("epochs", args.epochs), ("seed", args.seed), ("head_only_epochs", args.head_only_epochs),
                                 ("batch_size", args.batch_size), ("checkpoint_metric", args.keep_epoch_by))
               if v is not None}
    changes.update(_imbalance_changes(args))
    if args.mixed_precision:
        changes["mixed_precision"] = True
    if args.xla:
        changes["xla"] = True
    if args.fine_tune:
        stages = tuple(s.strip() for s in args.fine_tune.split(",") if s.strip())
        unknown = set(stages) - {"conv1", "conv2", "conv3", "conv4", "conv5", "head"}
        if unknown:
            raise LiverlibError(f"unknown stage(s) {', '.join(sorted(unknown))} in --fine-tune; "
                                "use conv1 ... conv5 and head")
        changes["fine_tune_stages"] = tuple(dict.fromkeys(stages + ("head",)))
    config = config.replace(**changes)
    if args.out and args.out.exists() and any(args.out.iterdir()) and not (args.resume or args.overwrite):
        raise LiverlibError(f"{args.out} already holds a run; pass --resume to continue it or --overwrite to start again")
    print(config.describe())
    dataset = load_dataset(config=config)
    print(dataset.report.summary())
    manifest = split_for(dataset, config)
    result = train(config, manifest, args.out, resume=args.resume, overwrite=args.overwrite, weights=args.weights,
                   verbose=2)
    metrics = result.card["metrics"]
    print(f"run folder: {result.run_dir}")
    print("validation: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
    return 0


def _cmd_classify(args: argparse.Namespace) -> int:
    import json

    from liverlib.classify import display_name, get_classifier
    from liverlib.imaging.decode import read_file
    from liverlib.study_cli import iter_study_inputs, report_study
    from liverlib.imaging.windowing import parse_window

    window = parse_window(args.window) if args.window else None
    classifier = get_classifier(args.model)  # once per call; a bad run folder stops here with one message
    failures = 0
    rows = []
    for kind, path in iter_study_inputs(args.files):
        if kind == "study":  # a DICOM series folder, a NIfTI volume or a zip: one answer per study
            failures += report_study(path, args)
            continue
        try:
            if path.is_dir():
                raise LiverlibError(f"folder {path} holds no image files (.png, .jpg, .bmp, .tif, .dcm)")
            if not path.exists():
                raise LiverlibError(f"{path} does not exist")
            result = classifier(read_file(path), path.name, window=window, gradcam=False)
        except LiverlibError as exc:
            failures += 1
            message = " ".join(str(exc).split())
            if args.json:
                print(json.dumps({"file": str(path), "error": message}), flush=True)
            else:
                print(f"{display_name(path)}: error: {message}", file=sys.stderr, flush=True)
            continue
        if args.json:
            print(json.dumps({**result.as_json(), "file": str(path)}), flush=True)
        else:
            rows.append((str(path), result))
    if rows:
        width = max(len(p) for p, _ in rows)
        names = classifier.class_names
        print(f"{'file':<{width}}  {'predicted':<10} " + " ".join(f"{n:>9}" for n in names) + "  warnings")
        for p, r in rows:
            print(f"{p:<{width}}  {r.predicted_class:<10} "
                  + " ".join(f"{r.probabilities[n]:>9.3f}" for n in names) + f"  {'; '.join(r.warnings)}")
    if not args.json:
        if rows:  # files were classified, so the forward pass has been chosen
            print(f"forward pass: {classifier.fast.backend}", file=sys.stderr)
        print(classifier.disclaimer(), file=sys.stderr)
    return 1 if failures else 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from liverlib.evaluate import evaluate_run, headline_table, table2
    from liverlib.study_cli import patient_summary

    evaluation = evaluate_run(args.model, args.data, args.out, split=args.split, n_boot=args.boot, rule=args.rule)
    m = evaluation.metrics
    print(f"{m['n_images']} images ({m['split']} split"
          + (f", {m['n_groups']} patients" if m["n_groups"] else "") + f"); 95% intervals: bootstrap over "
          f"{m['bootstrap']['unit']}s, {m['bootstrap']['resamples']} resamples")
    print(headline_table(m, m["ci95"]).round(3).to_string())
    print()
    print(table2(m, m["ci95"]).round(3).to_string())
    print("\n" + patient_summary(m))
    if m.get("synthetic_data"):
        print("\nmeasured on SYNTHETIC phantom data, not patients")
    print(f"report: {evaluation.out_dir}")
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    import os

    from liverlib.data import load_dataset
    from liverlib.splits import split_for
    from liverlib.tuning import paper_comparison, tune

    if args.chief or args.worker:
        os.environ["KERASTUNER_TUNER_ID"] = "chief" if args.chief else args.worker
        os.environ["KERASTUNER_ORACLE_IP"] = args.oracle_ip
        os.environ["KERASTUNER_ORACLE_PORT"] = str(args.oracle_port)
    config = load_config(args.profile, data_dir=args.data).replace(**_imbalance_changes(args))
    print(config.describe())
    dataset = load_dataset(config=config)
    manifest = split_for(dataset, config)
    result = tune(config, manifest, args.out, objective=args.objective, overwrite=args.overwrite)
    if result.run_dir is None:
        print(f"worker {os.environ.get('KERASTUNER_TUNER_ID')}: the search is finished")
        return 0
    print(result.trials.to_string(index=False))
    print()
    print(paper_comparison(result.best).to_string())
    print(f"best run folder: {result.run_dir}")
    return 0


def _cmd_app(args: argparse.Namespace) -> int:
    from liverlib.app_server import launch  # Voila, sized for uploads up to the app's limit (whole studies)

    return launch(args.model, args.port, args.ip, args.max_upload_mb)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _profile_and_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", choices=("quick", "laptop", "paper"), default=None,
                   help="run profile (default: $LIVERLIB_PROFILE or laptop)")
    p.add_argument("--data", default=None, help="dataset folder (default: $LIVERLIB_DATA_DIR or the phantom)")


def _imbalance_options(p: argparse.ArgumentParser, where: str) -> None:
    on = {f: ", ".join(profiles_with(f)) or "no profile" for f in ("class_weighting", "balanced_sampling")}
    p.add_argument("--class-weights", action=argparse.BooleanOptionalAction, default=None,
                   help=f"weight the loss by inverse class frequency{where}, replacing a profile's balanced sampling "
                        f"(default: the profile's; on in {on['class_weighting']})")
    p.add_argument("--balanced-sampling", action=argparse.BooleanOptionalAction, default=None,
                   help=f"draw each class equally often{where}, replacing a profile's class weights (default: the "
                        f"profile's; on in {on['balanced_sampling']}); --no-balanced-sampling alone trains with no "
                        "correction for class imbalance")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liverlib",
        description="Liver CT slice classification (benign, malignant, cirrhosis, normal) with a modified "
                    "ResNet-50: data, training, evaluation and a classifier, as a course and a toolkit.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("config", help="print the run configuration of a profile")
    p.add_argument("--profile", choices=("quick", "laptop", "paper"), default=None,
                   help="run profile (default: $LIVERLIB_PROFILE or laptop)")
    p.set_defaults(func=_cmd_config)

    p = sub.add_parser("phantom", help="write a SYNTHETIC abdominal CT phantom dataset (one folder per class)",
                       description="Generate synthetic axial CT slices of the upper abdomen for four liver "
                                   "classes. Synthetic data: no patient was involved.")
    p.add_argument("--out", required=True, help="folder to create (must be empty or absent unless --overwrite)")
    p.add_argument("--n", type=int, default=4741, help="number of slices (default: 4741, as the paper); for "
                   "dicom-series and nifti: number of patients, one whole study each")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same bytes")
    p.add_argument("--size", type=int, default=512, help="matrix size in pixels (default: 512)")
    p.add_argument("--format", choices=("png", "dicom", "dicom-series", "nifti"), default="png",
                   help="png: 8-bit windowed images; dicom: CT images carrying HU (default: png); dicom-series, "
                        "nifti: whole studies, dome to below the liver tip, one series folder or .nii.gz each")
    p.add_argument("--slice-spacing", type=float, default=None, metavar="MM",
                   help="studies only: slice spacing in mm (default: 4 or 5, drawn per patient)")
    p.add_argument("--window", default="abdomen",
                   help="display window for PNG and the DICOM window tags: abdomen, liver or 'L40/W400'")
    p.add_argument("--augmented-copies", type=int, default=0, metavar="K",
                   help="also write K augmented variants of every slice (before any split)")
    p.add_argument("--classes", default=None,
                   help="comma-separated subset of benign,cirrhosis,malignant,normal (default: all four)")
    p.add_argument("--slices-per-patient", type=int, default=None,
                   help="neighbouring slices per synthetic patient (default: up to 5)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_phantom)

    p = sub.add_parser("audit", help="find test images with a near-copy in the training set (leakage audit)",
                       description="Split a dataset folder (or use its train/valid/test folders) and report every "
                                   "test image that has a near-duplicate in the training split: augmented copies "
                                   "or neighbouring slices that would inflate test accuracy.")
    p.add_argument("data_dir", help="dataset folder (class folders, or train/valid/test folders)")
    p.add_argument("--split", choices=("grouped", "random"), default="grouped",
                   help="grouped: by patient or copy group (default); random: slice-level, leaky on purpose")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threshold", type=float, default=None, help="signature distance below which two images are "
                                                                  "near-copies (default: calibrated on the phantom)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--show", type=int, default=10, help="pairs to list without --json (default 10)")
    p.set_defaults(func=_cmd_audit)

    p = sub.add_parser("train", help="train the modified ResNet-50 (the paper's recipe) into a run folder",
                       description="Train on --data (default: the profile's synthetic phantom) with the profile's "
                                   "settings. A run killed at any moment continues with --resume.")
    _profile_and_data(p)
    p.add_argument("--out", type=Path, default=None, help="run folder (default: under the artifacts folder)")
    p.add_argument("--epochs", type=int, default=None, help="override the profile's number of epochs")
    p.add_argument("--batch-size", type=_positive_int, default=None,
                   help="override the profile's batch size (a GPU trains faster at 128-256; the paper used 46)")
    p.add_argument("--seed", type=int, default=None, help="override the profile's seed")
    p.add_argument("--weights", default=None,
                   help="backbone weights: 'imagenet' (Keras' published file, downloaded once into the Keras "
                        "cache and hash-checked; random initialisation when it cannot be had) or a weights file")
    _imbalance_options(p, "")
    p.add_argument("--head-only-epochs", type=int, default=None,
                   help="train only the head for this many epochs first (fine-tuning from ImageNet weights)")
    p.add_argument("--keep-epoch-by", choices=list(CHECKPOINT_METRICS), default=None,
                   help="which epoch's model the run keeps (and early stopping watches): the lowest validation "
                        "loss (the paper) or the highest validation macro-F1 (default: the profile's)")
    p.add_argument("--fine-tune", default=None, metavar="STAGES",
                   help="stages trained after the head-only epochs, e.g. conv5,conv4 (default: all)")
    p.add_argument("--mixed-precision", action="store_true",
                   help="float16 compute with float32 weights (GPUs; slower on CPUs)")
    p.add_argument("--xla", action="store_true", help="compile the training step with XLA (GPUs; slower on CPUs)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--overwrite", action="store_true", help="delete the run in --out and start again")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("classify", help="classify slices (PNG, JPEG, BMP, TIFF, DICOM) with a trained run",
                       description="Classify each FILE (folders: every image file inside) with the model of a run "
                                   "folder, applying the preprocessing its model card records. For teaching, "
                                   "not for diagnosis. Exit status 0 when every file was classified.")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="image files or folders of them; studies: DICOM series folders, .nii/.nii.gz, .zip")
    p.add_argument("--model", required=True, metavar="RUN", help="run folder (with model.keras and model_card.json)")
    p.add_argument("--json", action="store_true", help="one JSON object per file, one per line")
    p.add_argument("--window", default=None,
                   help="DICOM slices: window to apply, 'abdomen', 'liver' or 'L40/W400' (default: the card's)")
    p.add_argument("--rule", choices=RULES, default=DEFAULT_RULE, help="studies: how slices are combined")
    p.add_argument("--per-slice", action="store_true", help="studies: also one line per slice")
    p.set_defaults(func=_cmd_classify)

    p = sub.add_parser("evaluate", help="the full evaluation report of a run on its test split or a dataset",
                       description="Apply a run's model to its held-out test split (or to every image of --data "
                                   "when that is another dataset) and write metrics.json (accuracy, balanced "
                                   "accuracy, macro-F1, per-class precision/recall/specificity/F1, ROC-AUC, ECE, "
                                   "95%% bootstrap intervals), per_class.csv, predictions.csv and figures.")
    p.add_argument("--model", required=True, metavar="RUN", help="run folder")
    p.add_argument("--data", default=None, help="dataset folder (default: the run's own split)")
    p.add_argument("--out", default=None, help="report folder (default: RUN/evaluation)")
    p.add_argument("--split", default="test", choices=("test", "val", "train"),
                   help="which split of the run's data (default: test)")
    p.add_argument("--boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--rule", choices=RULES, default=DEFAULT_RULE, help="patient level: how slices are combined")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("tune", help="Hyperband search over the paper's space (resumable, distributable)",
                       description="keras-tuner Hyperband (factor 3) over dense units {128, 256, 512}, dropout "
                                   "0.3-0.7 and learning-rate decay 0.1-0.5. Running the same command again "
                                   "continues the search; --overwrite starts anew. For several machines, start one "
                                   "--chief and any number of --worker processes with the same --oracle-ip/--port.")
    _profile_and_data(p)
    p.add_argument("--out", type=Path, default=None, help="project folder (default: under the artifacts folder)")
    p.add_argument("--objective", choices=("val_accuracy", "val_macro_f1"), default="val_accuracy")
    _imbalance_options(p, " in every trial")
    p.add_argument("--overwrite", action="store_true", help="delete the search in --out and start again")
    role = p.add_mutually_exclusive_group()
    role.add_argument("--chief", action="store_true", help="run the oracle that hands trials to workers")
    role.add_argument("--worker", metavar="ID", default=None, help="run trials for the chief, e.g. tuner0")
    p.add_argument("--oracle-ip", default="127.0.0.1", help="the chief's address (default 127.0.0.1)")
    p.add_argument("--oracle-port", type=int, default=8000, help="the chief's port (default 8000)")
    p.set_defaults(func=_cmd_tune)

    p = sub.add_parser("app", help="serve the upload-and-classify page in the browser (Voila)",
                       description="Serve the classifier as a web page on this machine: upload slices or whole "
                                   "studies (.nii/.nii.gz, .zip of a DICOM series), see probabilities and "
                                   "Grad-CAM, no code shown.")
    p.add_argument("--model", default=None, metavar="RUN",
                   help="run folder (default: $LIVERLIB_MODEL, else the newest finished run of the profile)")
    p.add_argument("--port", type=int, default=8866)
    p.add_argument("--ip", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--max-upload-mb", type=float, default=None, metavar="MB",
                   help="largest upload (all its files together) in MB, for whole studies (default: "
                        "$LIVERLIB_APP_MAX_UPLOAD_MB, else 400)")
    p.set_defaults(func=_cmd_app)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except LiverlibError as exc:
        print(f"liverlib {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        hint = ("; continue with the same command and --resume" if args.command == "train"
                else "; nothing half-written was left behind")
        print(f"liverlib {args.command}: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
