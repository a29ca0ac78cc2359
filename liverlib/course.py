"""Everything a chapter uses, behind one import: ``from liverlib import course as ll``.

d2l's chapters start with ``from d2l import tensorflow as d2l`` and then call ``d2l.train(...)``; ours start
with ``from liverlib import course as ll`` and call ``ll.train(...)``, ``ll.load_config()``,
``ll.evaluate_run(...)``. Each name lives in the module that owns it (the table below says which); this
module only points to it, and imports that module on first use, so a chapter that never trains never
imports TensorFlow, and ``import liverlib`` stays light.
"""

from __future__ import annotations

import importlib

_HOMES: dict[str, tuple[str, ...]] = {
    "backbone": ("resnet_depth",),
    "config": ("CLASS_NAMES", "PAPER_CLASS_SUPPORT", "PROFILE_NAMES", "estimate_training_seconds",
               "format_duration", "load_config"),
    "environment": ("speed_settings", "versions"),
    "teaching": ("quick_config", "shown_path"),
    "facts": ("fact", "glue"),
    "phantom": ("BY_NAME", "LESION_LABEL_MIN", "iter_patient_slices", "make_patient", "make_slice", "make_study",
                "read_manifest", "read_study_manifest", "render_slice", "write_phantom_dataset",
                "write_phantom_studies"),
    "imaging.windowing": ("WINDOWS", "window_hu", "window_to_uint8"),
    "imaging.dicom": ("write_ct_dicom",),
    "imaging.studies": ("read_study",),
    "classes": ("class_for_folder", "class_names_of", "normal_class"),
    "data": ("class_table", "load_dataset", "scan_dataset"),
    "audit": ("audit_folder", "audit_split"),
    "splits": ("make_split", "split_for", "split_table"),
    "crop": ("find_crop", "crop_grey"),
    "preprocess": ("load_images", "load_resized", "make_pipeline", "normalise", "prepare_grey",
                   "random_affine_layer", "to_model_input"),
    "blocks": (),
    "model": ("LAST_CONV_LAYER", "build_modified_resnet50", "copy_weights_by_name", "last_conv_layer", "layer_table"),
    "schedule": ("learning_rate_at", "piecewise_lr"),
    "train": ("balanced_class_weights", "balanced_rows", "train", "trained_run"),
    "runs": ("latest_run", "load_run", "read_card"),
    "tuning": ("PAPER_BEST", "drop_every", "hyperband_brackets", "paper_comparison", "plot_scores", "tune"),
    "metrics": ("expected_calibration_error", "reliability_table", "roc_curves", "scores"),
    "evaluate": ("apply_temperature", "bootstrap_ci", "confident_mistakes", "evaluate_run", "fit_temperature",
                 "headline_table", "patient_level", "recompute_accuracy"),
    "baselines": ("leakage_experiment", "nearest_neighbour", "run_baselines", "small_cnn", "summary_row"),
    "pointing": ("phantom_pointing_game",),
    "ablation": ("ablation_table", "before_after", "ceiling_table", "paired_seeds", "predicted_shares", "seed_runs",
                 "seeds_table"),
    "verdict": ("majority_class", "relation", "run_folder_baselines"),
    "lesion_size": ("sensitivity_by_lesion_size",),
    "batchnorm": ("share_travelled", "time_constant", "with_moving_statistics"),
    "literature": ("PAPER_REPORTED", "claim_checklist", "table2", "table3"),
    "classify": ("classify",),
    "study_classify": ("classify_study", "classify_volume", "pick_liver_slices"),
    "aggregate": ("RULES", "TOP_K", "aggregate", "normal_class_index"),
    "widget": ("classify_widget",),
    "study_widget": ("max_upload_bytes",),
    "plots": ("classification_figure", "confusion_figure", "montage", "plot_curves", "reliability_figure",
              "roc_figure", "show_ct", "show_hu_map", "show_labels", "tissue_table", "predicted_share_figure",
              "lesion_size_figure", "study_strip_figure", "seed_runs_figure"),
    "performance": ("chapter_facts", "course_cost_table", "course_stages", "gpu_estimates", "gpu_runs_table",
                    "headline_figures", "latency_table", "load_results", "measured_on",
                    "pipeline_table", "process_order_table", "scaling_table", "sweep_table",
                    "targets_table", "throughput_table", "training_hours", "training_images"),
    "explain": ("grad_cam", "overlay", "upsample"),
    "cli": (),
    "performance_figures": ("latency_figure", "scaling_figure", "throughput_figure"),
    "errors": ("LiverlibError",),
}
_WHERE = {name: module for module, names in _HOMES.items() for name in names}
# ``ll.blocks``, ``ll.windowing``...: whole modules, for a chapter that studies one (a sub-package's module by
# its own name), and the sub-packages themselves
_MODULE_PATHS = {module.rsplit(".", 1)[-1]: module for module in _HOMES} | {"imaging": "imaging", "phantom": "phantom"}
MODULES = tuple(_MODULE_PATHS)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"liverlib.{_WHERE[name]}"), name)
    if name in _MODULE_PATHS:
        return importlib.import_module(f"liverlib.{_MODULE_PATHS[name]}")
    raise AttributeError(f"liverlib.course has no {name!r}; it re-exports: {', '.join(sorted(_WHERE))}")


def __dir__():
    return sorted(set(_WHERE) | set(_MODULE_PATHS))


def where(name: str) -> str:
    """The module that owns a name of the course (``where("train")`` -> ``"liverlib.train"``)."""
    if name not in _WHERE:
        raise AttributeError(f"liverlib.course has no {name!r}")
    return f"liverlib.{_WHERE[name]}"
