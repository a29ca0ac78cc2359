"""The synthetic phantom: HU values per tissue, lesions, acquisition, and the per-patient structure."""

import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage

from liverlib.phantom import iter_patient_slices, make_patient, make_slice, render_slice
from liverlib.phantom.tissues import BY_LABEL, BY_NAME, HU_MAX, HU_MIN, LESION_LABEL_MIN, TISSUES

CLASSES = ("normal", "cirrhosis", "benign", "malignant")


@pytest.fixture(scope="module")
def slices():
    """Three patients per class, two slices each, at full 512 x 512 resolution."""
    out = []
    for c, cls in enumerate(CLASSES):
        for k in range(3):
            patient = make_patient(cls, 2, (123, c, k), patient_id=f"T{c}{k}")
            out.extend(iter_patient_slices(patient))
    return out


def test_every_tissue_has_its_literature_hu_in_the_ideal_map(slices):
    seen = set()
    for sl in slices:
        for label in np.unique(sl.labels):
            tissue = BY_LABEL[int(label)]
            values = sl.ideal_hu[sl.labels == label]
            lo, hi = tissue.hu_range
            median = float(np.median(values))
            # texture (heterogeneity, regenerative nodules, mosaic) spreads values by a few HU around the mean
            assert lo - 12 <= median <= hi + 12, f"{tissue.name}: median {median:.0f} HU outside {lo}..{hi}"
            seen.add(tissue.name)
    expected = {"air", "fat", "muscle", "cortical bone", "trabecular bone", "aorta", "inferior vena cava", "spleen",
                "liver", "hepatic vessel", "fibrosis"}
    assert expected <= seen, f"tissues never drawn: {expected - seen}"


@pytest.mark.parametrize("name,lo,hi", [("liver", 95, 125), ("fat", -120, -80), ("muscle", 35, 65),
                                        ("spleen", 100, 135), ("aorta", 145, 205)])
def test_tissue_hu_matches_radiology_ranges(slices, name, lo, hi):
    label = BY_NAME[name].label
    medians = [np.median(sl.ideal_hu[sl.labels == label]) for sl in slices if (sl.labels == label).sum() > 200]
    assert medians, f"no slice shows {name}"
    assert lo <= min(medians) and max(medians) <= hi


def _lesion_medians(kind_label: str, n_patients: int = 40, cls: str = "benign"):
    label = BY_NAME[kind_label].label
    found = []
    for k in range(n_patients):
        sl = render_slice(make_patient(cls, 1, (5, k)), 0, size=256)
        mask = sl.labels == label
        if mask.sum() > 10:
            found.append(float(np.median(sl.ideal_hu[mask])))
    return found


@pytest.mark.parametrize("kind,cls,lo,hi", [
    ("cyst", "benign", 0, 20),                        # simple cyst: water density
    ("haemangioma nodule", "benign", 150, 190),       # peripheral nodules: blood pool
    ("hepatocellular carcinoma", "malignant", 60, 100),  # washout: below liver
    ("metastasis", "malignant", 40, 75),              # hypodense
    ("metastasis rim", "malignant", 90, 130),         # rim enhancement
])
def test_lesion_hu_by_type(kind, cls, lo, hi):
    medians = _lesion_medians(kind, cls=cls)
    assert len(medians) >= 3, f"too few {kind} lesions drawn in 40 {cls} patients"
    assert all(lo - 1 <= m <= hi + 1 for m in medians), (kind, medians)


def test_hcc_is_hypodense_to_its_liver_and_capsule_hyperdense():
    checked = 0
    for k in range(40):
        sl = render_slice(make_patient("malignant", 1, (9, k)), 0, size=256)
        hcc = sl.labels == BY_NAME["hepatocellular carcinoma"].label
        cap = sl.labels == BY_NAME["tumour capsule"].label
        liver = sl.labels == BY_NAME["liver"].label
        if hcc.sum() > 30 and cap.sum() > 10:
            assert np.median(sl.ideal_hu[hcc]) < np.median(sl.ideal_hu[liver])
            assert np.median(sl.ideal_hu[cap]) > np.median(sl.ideal_hu[hcc])
            checked += 1
    assert checked >= 3


def test_lesions_lie_inside_the_liver_and_only_in_lesion_classes(slices):
    liver_tissue = np.isin(np.arange(256), [BY_NAME[n].label for n in ("liver", "fibrosis", "hepatic vessel")])
    for sl in slices:
        lesion = sl.labels >= LESION_LABEL_MIN
        if sl.meta["class"] in ("benign", "malignant"):
            assert lesion.any(), f"{sl.meta['patient_id']} slice {sl.meta['slice_index']} shows no lesion"
            assert sl.meta["n_lesions"] >= 1 and sl.meta["lesion_area_mm2"] > 0
            # every lesion touches liver tissue: none floats in fat or sits in another organ
            components, n = ndimage.label(lesion)
            near_liver = ndimage.binary_dilation(liver_tissue[sl.labels], iterations=3)
            touching = set(np.unique(components[near_liver & lesion]))
            assert touching >= set(range(1, n + 1)), f"{sl.meta['patient_id']}: a lesion lies outside the liver"
        else:
            assert not lesion.any() and sl.meta["n_lesions"] == 0


def test_acquisition_noise_has_the_patients_sd_and_values_are_clipped(slices):
    for sl in slices[:6]:
        liver = ndimage.binary_erosion(sl.labels == BY_NAME["liver"].label, iterations=6)
        residual = (sl.hu - sl.ideal_hu)[liver]
        target = sl.meta["noise_sd_hu"]
        # the ideal map has a little texture of its own that the blur smooths; the noise dominates
        assert 0.8 * target <= residual.std() <= 1.25 * target + 2
        assert sl.hu.min() >= HU_MIN and sl.hu.max() <= HU_MAX
        assert sl.hu.dtype == np.float32 and sl.labels.dtype == np.uint8


def test_liver_is_on_the_image_left_as_radiologists_view_it(slices):
    for sl in slices:
        liver = sl.labels == BY_NAME["liver"].label
        cols = np.nonzero(liver)[1]
        assert cols.mean() < sl.labels.shape[1] / 2


def _nodularity(mask: np.ndarray, sigma_px: float = 6.0) -> float:
    """Mean distance (pixels) between the liver outline and the same outline smoothed over ~5 mm.

    Small bumps (nodules) along the surface raise it; large lobes do not. Only the largest connected
    piece of liver counts, so a lobe tip cut off by the slice plane does not either.
    """
    pieces, n = ndimage.label(mask)
    largest = pieces == 1 + int(np.argmax(ndimage.sum(mask, pieces, range(1, n + 1))))
    largest = ndimage.binary_fill_holes(largest)
    smooth = ndimage.gaussian_filter(largest.astype(float), sigma_px) > 0.5
    outline = (smooth & ~ndimage.binary_erosion(smooth)).sum()
    return (largest ^ smooth).sum() / outline


def test_cirrhosis_has_a_nodular_surface_and_a_larger_spleen():
    rough = {"normal": [], "cirrhosis": []}
    spleen = {"normal": [], "cirrhosis": []}
    for cls in rough:
        for k in range(12):
            sl = render_slice(make_patient(cls, 1, (77, k)), 0, size=512)
            liver = np.isin(sl.labels, [BY_NAME[n].label for n in ("liver", "fibrosis", "hepatic vessel")])
            rough[cls].append(_nodularity(liver))
            spleen[cls].append((sl.labels == BY_NAME["spleen"].label).sum() * sl.meta["pixel_spacing_mm"] ** 2)
    assert np.median(rough["cirrhosis"]) > 1.3 * np.median(rough["normal"]), rough
    assert np.median(spleen["cirrhosis"]) > np.median(spleen["normal"])


def test_neighbouring_slices_of_a_patient_share_anatomy_but_differ():
    patient = make_patient("benign", 3, (3, 3))
    a, b, c = iter_patient_slices(patient, size=256)
    assert [s.meta["slice_index"] for s in (a, b, c)] == [0, 1, 2]
    assert b.meta["z_mm"] - a.meta["z_mm"] == pytest.approx(patient.slice_spacing_mm, abs=0.01)
    assert not np.array_equal(a.hu, b.hu)
    same_tissue = (a.labels == b.labels).mean()
    assert same_tissue > 0.85  # a few millimetres apart: mostly the same anatomy
    other = render_slice(make_patient("benign", 1, (3, 4)), 0, size=256)
    assert (a.labels == other.labels).mean() < same_tissue


def test_same_seed_same_slice_and_another_seed_another():
    a = make_slice("malignant", seed=11, size=128)
    b = make_slice("malignant", seed=11, size=128)
    c = make_slice("malignant", seed=12, size=128)
    assert np.array_equal(a.hu, b.hu) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.hu, c.hu)


def test_matrix_size_changes_resolution_not_anatomy():
    big = make_slice("normal", seed=4, size=512)
    small = make_slice("normal", seed=4, size=128)
    liver = BY_NAME["liver"].label
    area_big = (big.labels == liver).sum() * big.meta["pixel_spacing_mm"] ** 2
    area_small = (small.labels == liver).sum() * small.meta["pixel_spacing_mm"] ** 2
    assert area_small == pytest.approx(area_big, rel=0.1)


def test_bad_patient_arguments():
    with pytest.raises(ValueError, match="unknown liver class"):
        make_patient("fatty", 1, 0)
    with pytest.raises(ValueError, match="at least one slice"):
        make_patient("normal", 0, 0)
    with pytest.raises(IndexError):
        render_slice(make_patient("normal", 2, 0), 5)


def test_tissue_table_is_consistent():
    labels = [t.label for t in TISSUES]
    assert len(labels) == len(set(labels))
    assert all(t.lesion == (t.label >= LESION_LABEL_MIN) for t in TISSUES)
    assert all(t.hu_range[0] <= t.hu_range[1] for t in TISSUES)


def test_the_package_exports_its_names_and_loads_the_renderer_only_when_asked():
    import liverlib.phantom as phantom

    assert all(getattr(phantom, name) is not None for name in phantom.__all__)
    assert phantom.render_slice is render_slice and phantom.TISSUES is TISSUES
    with pytest.raises(AttributeError, match="no attribute 'tissue_table'"):
        phantom.tissue_table  # noqa: B018
    # the tissue table alone (what plots need) does not import the renderer or the dataset writer
    code = ("import sys, liverlib.phantom.tissues; print(sorted(m for m in sys.modules "
            "if m.startswith('liverlib.phantom.') and m != 'liverlib.phantom.tissues'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
