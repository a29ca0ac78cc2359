"""Whole synthetic studies: an axial CT series through the upper abdomen of one phantom patient.

A study starts above the liver dome (lung bases, the heart on the diaphragm) and ends below the liver's
inferior tip, at the patient's slice spacing, so its first and last slices show no liver and each lesion
appears only on the slices that cut it. The liver's cross-section follows a cranio-caudal profile
(:func:`liver_profile`: rounded at the dome, tapering to the tip); within the liver everything is painted as
the slice dataset paints it (:mod:`liverlib.phantom.organs`, :mod:`liverlib.phantom.lesions`). This is a
separate generation path with its own random streams: the slice dataset (:mod:`liverlib.phantom.dataset`)
keeps its bytes.

::

    DIR/<class>/<patient_id>/slice000.dcm ...   --format dicom-series: one series (one study) per folder
    DIR/<class>/<patient_id>.nii.gz             --format nifti
    DIR/labels/<class>/<patient_id>.nii.gz      label volume (liverlib.phantom.tissues labels), same geometry
    DIR/manifest.csv                            one row per study: class, patient, slices, liver and lesion slices
    DIR/slices.csv                              one row per slice: position, liver and lesion area
    DIR/dataset.json, DIR/README.txt
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from liverlib.config import CLASS_NAMES
from liverlib.errors import LiverlibError
from liverlib.phantom import organs
from liverlib.phantom.acquisition import acquire
from liverlib.phantom.anatomy import LEVEL_SPAN_MM, make_patient
from liverlib.phantom.canvas import Canvas
from liverlib.phantom.dataset import (README_TEXT, _one_thread_per_worker, _progress, _replace_dir, _validate,
                                      class_counts)
from liverlib.phantom.lesions import paint_lesions
from liverlib.phantom.textures import PatientFields
from liverlib.phantom.tissues import BY_NAME, LESION_LABEL_MIN
from liverlib.imaging.windowing import WINDOWS

STUDY_FORMATS = ("dicom-series", "nifti")
STUDY_MANIFEST_COLUMNS = (
    "study", "class", "patient_id", "n_slices", "slice_spacing_mm", "pixel_spacing_mm", "size", "format",
    "n_liver_slices", "liver_slices", "n_lesion_slices", "lesion_slices", "liver_dome_z_mm", "liver_tip_z_mm",
    "first_z_mm", "labels", "seed", "synthetic",
)
SLICE_COLUMNS = ("study", "slice_index", "z_mm", "liver_area_mm2", "lesion_area_mm2", "n_lesions", "lesion_kinds")
SLICE_SPACINGS_MM = (4.0, 5.0)  # a portal-venous abdominal series: 30-60 slices from dome to below the tip
MIN_LIVER_AREA_MM2 = 100.0  # a slice "holds liver" from 1 cm^2 of it (a sliver at the dome is no liver slice)
DOME_MM, TIP_MM = 30.0, 45.0  # over how many mm the liver grows below its dome and narrows above its tip
_MIN_PROFILE = 0.08  # below this share of its full size the liver is not painted
_STREAM = 11  # the studies' random streams: [*patient seed, 11, ...], apart from every slice-dataset stream
_IN_LIVER = np.zeros(256, dtype=bool)
_IN_LIVER[[BY_NAME["liver"].label, BY_NAME["fibrosis"].label, BY_NAME["hepatic vessel"].label]] = True
_IN_LIVER[LESION_LABEL_MIN:] = True


@dataclass
class StudyPlan:
    """Where one study's slices lie and where the patient's liver begins and ends (mm, head to feet)."""

    patient: object  # liverlib.phantom.anatomy.Patient, its levels set to the study's slices
    z_mm: np.ndarray  # slice positions, head to feet (the slice dataset's z: level t x LEVEL_SPAN_MM)
    liver_dome_mm: float
    liver_tip_mm: float
    has_liver: bool = True
    thorax: dict = field(default_factory=dict)  # lung and heart HU

    @property
    def slice_spacing_mm(self) -> float:
        return float(self.z_mm[1] - self.z_mm[0]) if len(self.z_mm) > 1 else float(self.patient.slice_spacing_mm)


@dataclass
class PhantomStudy:
    """A rendered study: HU and label volumes ``[z, y, x]`` in the radiological view (IPL), head first."""

    patient_id: str
    liver_class: str
    hu: np.ndarray  # float32, acquired
    labels: np.ndarray  # uint8
    z_mm: np.ndarray
    pixel_spacing_mm: float
    slice_spacing_mm: float
    liver_dome_mm: float | None  # None for a study without liver
    liver_tip_mm: float | None
    slices: list[dict]  # per slice: z_mm, liver_area_mm2, lesion_area_mm2, lesions

    @property
    def liver_slices(self) -> list[int]:
        """Slices with at least :data:`MIN_LIVER_AREA_MM2` of liver (lesions included)."""
        return [i for i, s in enumerate(self.slices) if s["liver_area_mm2"] >= MIN_LIVER_AREA_MM2]

    @property
    def lesion_slices(self) -> list[int]:
        return [i for i, s in enumerate(self.slices) if s["lesion_area_mm2"] > 0]

    def affine(self) -> np.ndarray:
        """(z, y, x, 1) indices -> RAS+ mm, as liverlib.imaging.studies reads the written series: a slice at phantom
        depth z lies at scanner height -z (ImagePositionPatient), columns run to the patient's left."""
        sz, sxy = self.slice_spacing_mm, self.pixel_spacing_mm
        return np.array([[0, 0, -sxy, 0], [0, -sxy, 0, 0], [-sz, 0, 0, -float(self.z_mm[0])], [0, 0, 0, 1.0]])

    def volume(self):
        """The study as the :class:`~liverlib.imaging.volume.Volume` its files read back to (HU rounded as stored)."""
        from liverlib.imaging.volume import Volume

        stored = np.clip(np.round(np.asarray(self.hu, np.float32) + 1024.0), 0, 4095)  # as write_ct_dicom stores it
        hu = (stored - 1024.0).astype(np.float32)
        return Volume(hu=hu, spacing_mm=(self.slice_spacing_mm, self.pixel_spacing_mm, self.pixel_spacing_mm),
                      affine=self.affine(), source=f"phantom {self.patient_id}", description="synthetic phantom")


def liver_profile(plan: StudyPlan, z: float) -> float:
    """The liver's in-plane size at depth z as a share of the slice dataset's liver: 0 above the dome and
    below the tip, rising like a dome's cross-section over DOME_MM, narrowing over TIP_MM to the tip."""
    if not plan.has_liver:
        return 0.0
    d = float(np.clip((z - plan.liver_dome_mm) / DOME_MM, 0.0, 1.0))
    e = float(np.clip((plan.liver_tip_mm - z) / TIP_MM, 0.0, 1.0))
    return math.sqrt(d * (2.0 - d)) * e ** 0.8


def plan_study(liver_class: str, seed: int | tuple[int, ...], patient_id: str = "P00001", *,
               slice_spacing_mm: float | None = None, n_slices: int | None = None, liver: bool = True) -> StudyPlan:
    """Draw a patient (as the slice dataset does) and the extent of its study.

    The series starts 15-35 mm above the liver dome and ends 10-30 mm below the tip, at a slice spacing drawn
    from :data:`SLICE_SPACINGS_MM` (or ``slice_spacing_mm``; ``n_slices`` instead fixes the number of slices
    over the same extent). ``liver=False``: the same anatomy with no liver at all (and no lesions), for tests.
    """
    patient = make_patient(liver_class, 1, seed, patient_id=patient_id)
    rng = np.random.default_rng(list(patient.seed_entropy) + [_STREAM])
    dome, tip = float(rng.uniform(-8.0, 8.0)), float(rng.uniform(150.0, 178.0))
    top, bottom = dome - float(rng.uniform(15.0, 35.0)), tip + float(rng.uniform(10.0, 30.0))
    spacing = float(slice_spacing_mm or rng.choice(SLICE_SPACINGS_MM))
    thorax = {"lung_hu": float(rng.uniform(-880.0, -820.0)), "lung_mm": float(rng.uniform(15.0, 30.0))}
    if n_slices is not None:
        if n_slices < 2:
            raise LiverlibError(f"a study needs at least 2 slices, got {n_slices}")
        spacing = round((bottom - top) / (n_slices - 1), 3)
    if not 0.5 <= spacing <= 30.0:
        raise LiverlibError(f"slice spacing {spacing:g} mm is outside 0.5-30 mm")
    count = n_slices or int(math.floor((bottom - top) / spacing)) + 1
    z = np.round(top + spacing * np.arange(count), 3)
    patient = replace(patient, levels=z / LEVEL_SPAN_MM, slice_spacing_mm=spacing,
                      lesions=patient.lesions if liver else [])
    return StudyPlan(patient=patient, z_mm=z, liver_dome_mm=dome, liver_tip_mm=tip, has_liver=liver, thorax=thorax)


def _paint_thorax(scene, plan: StudyPlan, z: float) -> None:
    """Lung bases (posterior recesses reach ``lung_mm`` below the dome) and the heart resting on the diaphragm."""
    cv, a, hu, trunk = scene.cv, scene.anatomy, scene.hu, scene.trunk
    a_cav, b_cav, cy = trunk["a_cav"], trunk["b_cav"], a["body_cy"]
    soft = np.isin(cv.labels, [BY_NAME[n].label for n in ("fat", "spleen", "bowel wall", "luminal fluid", "gas")])
    where = trunk["cavity"] & soft
    q = float(np.clip((plan.liver_dome_mm + plan.thorax["lung_mm"] - z) / 45.0, 0.0, 1.0))
    if q > 0.05:
        r = q ** 0.75
        for side in (-1, 1):
            scene.organ(cv.paint_ellipse(side * 0.5 * a_cav, cy + 0.3 * b_cav, 0.42 * a_cav * r, 0.6 * b_cav * r,
                                         plan.thorax["lung_hu"], BY_NAME["air"].label, angle=side * 0.3, where=where))
    h = float(np.clip((plan.liver_dome_mm + 5.0 - z) / 35.0, 0.0, 1.0))
    if h > 0.15:
        r = math.sqrt(h)
        heart = cv.paint_ellipse(0.12 * a_cav, cy - 0.3 * b_cav, 0.42 * a_cav * r, 0.36 * b_cav * r, hu["muscle"],
                                 BY_NAME["muscle"].label, angle=-0.4, where=trunk["cavity"])
        scene.organ(heart)
        if heart is not None and r * 0.3 * b_cav > 10:
            cv.paint_ellipse(0.12 * a_cav, cy - 0.3 * b_cav, 0.42 * a_cav * r - 9, 0.36 * b_cav * r - 9, hu["aorta"],
                             BY_NAME["aorta"].label, angle=-0.4, where=heart)


def render_study_slice(plan: StudyPlan, index: int, size: int, fields: PatientFields) -> tuple[np.ndarray, np.ndarray,
                                                                                               dict]:
    """Slice ``index`` of a study: (acquired HU, labels, meta), painted in the order render_slice paints."""
    patient = plan.patient
    z = float(plan.z_mm[index])
    t = z / LEVEL_SPAN_MM
    spacing = patient.spacing_mm * 512 / size
    cv = Canvas(size, spacing)
    scene = organs.start_scene(cv, patient, fields, t)
    organs.paint_kidneys(scene)
    spleen = organs.paint_spleen(scene)
    organs.paint_gut(scene)
    _paint_thorax(scene, plan, z)
    profile = liver_profile(plan, z)
    lesion_info: list[dict] = []
    if profile >= _MIN_PROFILE:
        anatomy = {**patient.anatomy, "liver_scale": patient.anatomy["liver_scale"] * profile}
        scene.patient = replace(patient, anatomy=anatomy)
        liver = organs.liver_shape(scene)
        organs.paint_ascites(scene, liver, spleen)
        organs.paint_parenchyma(scene, liver)
        organs.paint_hepatic_vessels(scene, liver)
        scene.patient = patient
        lesion_info = paint_lesions(cv, patient, z, liver.mask, fields)
    else:
        empty = np.zeros((size, size), dtype=bool)
        organs.paint_ascites(scene, organs.LiverShape(box=(slice(0, 0), slice(0, 0)), in_box=empty, mask=empty),
                             spleen)
    rng = np.random.default_rng(list(patient.seed_entropy) + [_STREAM, 2, index])
    hu = acquire(cv.hu, patient, rng, spacing, scene.trunk["artefacts"])
    area = spacing * spacing
    meta = {"z_mm": round(z, 3), "liver_area_mm2": round(float(np.count_nonzero(_IN_LIVER[cv.labels])) * area, 1),
            "lesion_area_mm2": round(float(np.count_nonzero(cv.labels >= LESION_LABEL_MIN)) * area, 1),
            "lesions": lesion_info}
    return hu, cv.labels, meta


def render_study(plan: StudyPlan, size: int = 512) -> PhantomStudy:
    """Every slice of a planned study, head to feet."""
    patient = plan.patient
    fields = PatientFields(patient, size)
    n = len(plan.z_mm)
    hu = np.empty((n, size, size), np.float32)
    labels = np.empty((n, size, size), np.uint8)
    slices = []
    for i in range(n):
        hu[i], labels[i], meta = render_study_slice(plan, i, size, fields)
        slices.append(meta)
    return PhantomStudy(patient_id=patient.patient_id, liver_class=patient.liver_class, hu=hu, labels=labels,
                        z_mm=plan.z_mm.copy(), pixel_spacing_mm=round(patient.spacing_mm * 512 / size, 4),
                        slice_spacing_mm=plan.slice_spacing_mm,
                        liver_dome_mm=plan.liver_dome_mm if plan.has_liver else None,
                        liver_tip_mm=plan.liver_tip_mm if plan.has_liver else None, slices=slices)


def make_study(liver_class: str, seed: int | tuple[int, ...] = 0, size: int = 512, patient_id: str = "P00001",
               **plan_kwargs) -> PhantomStudy:
    """One synthetic study in memory (see :func:`plan_study` for ``slice_spacing_mm``, ``n_slices``, ``liver``)."""
    return render_study(plan_study(liver_class, seed, patient_id, **plan_kwargs), size)


# ------------------------------------------------------------------------------------------------ writing

def write_study_dicom(study: PhantomStudy, folder: str | os.PathLike, uid_seed: str,
                      window: tuple[float, float] = WINDOWS["abdomen"]) -> list[Path]:
    """One DICOM file per slice in ``folder``: one series (shared Study/Series/Frame UIDs from ``uid_seed``),
    ImagePositionPatient and SliceLocation at -z, SliceThickness the slice spacing."""
    from liverlib.imaging.dicom import write_ct_dicom

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, z in enumerate(study.z_mm):
        path = folder / f"slice{i:03d}.dcm"
        write_ct_dicom(path, study.hu[i], pixel_spacing_mm=study.pixel_spacing_mm, patient_id=study.patient_id,
                       slice_index=i, z_mm=float(z), slice_thickness_mm=study.slice_spacing_mm, window=window,
                       uid_seed=f"{uid_seed}/slice{i:03d}")
        paths.append(path)
    return paths


def _nifti_image(data_zyx: np.ndarray, affine_zyx: np.ndarray, dtype):
    """A NIfTI image stored as most converters store CT: voxel axes (x, y, z) pointing to R, A, S."""
    import nibabel as nib

    nz, ny, nx = data_zyx.shape
    flip = np.array([[0, 0, -1, nz - 1], [0, -1, 0, ny - 1], [-1, 0, 0, nx - 1], [0, 0, 0, 1.0]])  # (i,j,k)->(z,y,x)
    data = np.ascontiguousarray(data_zyx[::-1, ::-1, ::-1].transpose(2, 1, 0)).astype(dtype)
    image = nib.Nifti1Image(data, affine_zyx @ flip)
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(affine_zyx @ flip, code=1)
    image.set_sform(affine_zyx @ flip, code=1)
    return image


def write_study_nifti(study: PhantomStudy, path: str | os.PathLike | None,
                      labels_path: str | os.PathLike | None = None) -> None:
    """The study as a .nii/.nii.gz of HU (int16, as DICOM stores it) and/or its label volume (uint8)."""
    import nibabel as nib

    volume = study.volume()
    if path is not None:
        nib.save(_nifti_image(volume.hu, volume.affine, np.int16), str(path))
    if labels_path is not None:
        nib.save(_nifti_image(study.labels, volume.affine, np.uint8), str(labels_path))


@dataclass(frozen=True)
class StudyTask:
    index: int
    patient_id: str
    liver_class: str


def plan_studies(n: int, seed: int, classes: tuple[str, ...] = CLASS_NAMES) -> list[StudyTask]:
    """Which ``n`` patients to make (the paper's class proportions), in a seeded random order."""
    specs = [c for c, k in class_counts(n, classes).items() for _ in range(k)]
    order = np.random.default_rng([seed, 98]).permutation(len(specs))
    return [StudyTask(i, f"P{i + 1:05d}", specs[j]) for i, j in enumerate(order)]


def _write_one(task: StudyTask, job: dict) -> tuple[dict, list[dict]]:
    root, size, fmt = Path(job["root"]), job["size"], job["fmt"]
    study = make_study(task.liver_class, (job["seed"], task.index), size, task.patient_id,
                       slice_spacing_mm=job["slice_spacing_mm"])
    labels = f"labels/{task.liver_class}/{task.patient_id}.nii.gz"
    if fmt == "dicom-series":
        rel = f"{task.liver_class}/{task.patient_id}"
        write_study_dicom(study, root / rel, f"study/{job['seed']}/{task.patient_id}", job["window"])
        write_study_nifti(study, None, root / labels)
    else:
        rel = f"{task.liver_class}/{task.patient_id}.nii.gz"
        write_study_nifti(study, root / rel, root / labels)
    liver, lesion = study.liver_slices, study.lesion_slices
    row = {"study": rel, "class": task.liver_class, "patient_id": task.patient_id, "n_slices": len(study.z_mm),
           "slice_spacing_mm": study.slice_spacing_mm, "pixel_spacing_mm": study.pixel_spacing_mm, "size": size,
           "format": fmt, "n_liver_slices": len(liver), "liver_slices": ";".join(map(str, liver)),
           "n_lesion_slices": len(lesion), "lesion_slices": ";".join(map(str, lesion)),
           "liver_dome_z_mm": round(study.liver_dome_mm, 2), "liver_tip_z_mm": round(study.liver_tip_mm, 2),
           "first_z_mm": float(study.z_mm[0]), "labels": labels, "seed": job["seed"], "synthetic": 1}
    slice_rows = [{"study": rel, "slice_index": i, "z_mm": s["z_mm"], "liver_area_mm2": s["liver_area_mm2"],
                   "lesion_area_mm2": s["lesion_area_mm2"], "n_lesions": len(s["lesions"]),
                   "lesion_kinds": ";".join(sorted({les["kind"] for les in s["lesions"]}))}
                  for i, s in enumerate(study.slices)]
    return row, slice_rows


def write_phantom_studies(out: str | os.PathLike, n: int = 8, seed: int = 0, size: int = 512,
                          fmt: str = "dicom-series", classes: tuple[str, ...] | None = None,
                          window: tuple[float, float] = WINDOWS["abdomen"], overwrite: bool = False,
                          workers: int | None = None, slice_spacing_mm: float | None = None,
                          progress: bool = True) -> Path:
    """Write ``n`` synthetic studies (patients) to ``out`` as DICOM series folders or NIfTI volumes; return the
    manifest's path. Same arguments, same volumes, whatever the number of worker processes."""
    out = Path(out).expanduser()
    classes = tuple(classes) if classes else CLASS_NAMES
    if fmt not in STUDY_FORMATS:
        raise LiverlibError(f"--format must be one of {', '.join(STUDY_FORMATS)} for studies, got {fmt!r}")
    if not isinstance(n, int | np.integer) or n < 1:
        raise LiverlibError(f"--n must be a positive number of patients (studies), got {n!r}")
    if slice_spacing_mm is not None and not 0.5 <= slice_spacing_mm <= 10:
        raise LiverlibError(f"--slice-spacing must be between 0.5 and 10 mm, got {slice_spacing_mm!r}")
    _validate(out, int(n), seed, size, "png", 0, classes, overwrite, None)
    tasks = plan_studies(int(n), int(seed), classes)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    job = dict(root=str(tmp), seed=int(seed), size=int(size), fmt=fmt, slice_spacing_mm=slice_spacing_mm,
               window=(float(window[0]), float(window[1])))
    rows, slice_rows = [], []
    try:
        for cls in classes:
            (tmp / cls).mkdir()
            (tmp / "labels" / cls).mkdir(parents=True)
        workers = min(workers or os.cpu_count() or 1, len(tasks))
        bar = _progress(len(tasks), progress)
        if workers <= 1:
            results = (_write_one(t, job) for t in tasks)
        else:
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                       initializer=_one_thread_per_worker)
            results = pool.map(_write_one, tasks, [job] * len(tasks))
        try:
            for row, per_slice in results:
                rows.append(row)
                slice_rows.extend(per_slice)
                bar.update(1)
        finally:
            if workers > 1:
                pool.shutdown(cancel_futures=True)
        bar.close()
        for name, columns, table in (("manifest.csv", STUDY_MANIFEST_COLUMNS, rows),
                                     ("slices.csv", SLICE_COLUMNS, slice_rows)):
            with open(tmp / name, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
                writer.writeheader()
                writer.writerows(sorted(table, key=lambda r: (r["study"], r.get("slice_index", 0))))
        (tmp / "README.txt").write_text(README_TEXT)
        (tmp / "dataset.json").write_text(json.dumps({
            "generator": "liverlib.phantom.studies", "synthetic": True, "n_studies": len(tasks), "seed": int(seed),
            "size": int(size), "format": fmt, "window": {"level": job["window"][0], "width": job["window"][1]},
            "classes": list(classes), "class_counts": class_counts(int(n), classes),
            "slice_spacing_mm": slice_spacing_mm or list(SLICE_SPACINGS_MM),
            "min_liver_area_mm2": MIN_LIVER_AREA_MM2}, indent=2) + "\n")
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / "manifest.csv"


def read_study_manifest(path: str | os.PathLike) -> "pandas.DataFrame":  # noqa: F821 - pandas imported lazily
    """The studies' manifest as a DataFrame; ``liver_slices`` and ``lesion_slices`` as lists of indices."""
    import pandas as pd

    table = pd.read_csv(path, dtype={"liver_slices": str, "lesion_slices": str}, keep_default_na=False)
    for column in ("liver_slices", "lesion_slices"):
        table[column] = [[int(v) for v in s.split(";") if v] for s in table[column]]
    return table
