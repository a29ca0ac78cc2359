"""One in-memory CT volume, whatever file it came from, in one display orientation.

Every reader (a DICOM series, a NIfTI file, a zip of either: :mod:`liverlib.imaging.studies`) returns a
:class:`Volume` whose ``hu`` array is indexed ``hu[z, y, x]`` in the radiological axial view:

* ``x`` (columns) runs from the patient's right to the patient's left, so the patient's right is on the
  image's left, as a radiologist reads an axial slice;
* ``y`` (rows) runs from anterior to posterior, so anterior is up;
* ``z`` (slices) runs from head to feet: ``hu[0]`` is the most superior slice.

In nibabel's axis codes (each letter is the direction an index increases towards) that is ``"IPL"``:
:data:`DISPLAY_AXCODES`. ``affine`` maps ``(z, y, x, 1)`` indices to scanner millimetres in RAS+ (nibabel's
world convention; DICOM's LPS+ is the same with x and y negated). Patient names, IDs and birth dates are
never part of a volume.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from liverlib.errors import LiverlibError

DISPLAY_AXCODES = ("I", "P", "L")  # hu[z, y, x]: z head->feet, y anterior->posterior, x patient's right->left
MAX_VOXELS = 512 * 512 * 2048  # 2 GiB of float32; a whole-body CT at 0.5 mm slices has about 1,000 x 512 x 512


@dataclass
class Volume:
    """A CT volume in Hounsfield units, ``hu[z, y, x]`` in the radiological axial view (see the module doc)."""

    hu: np.ndarray  # float32 (z, y, x), Hounsfield units
    spacing_mm: tuple[float, float, float]  # (z, y, x): slice step, row step, column step
    affine: np.ndarray  # 4 x 4: (z, y, x, 1) indices -> RAS+ millimetres
    source: str  # the folder, file or archive it was read from
    series_uid: str = ""  # DICOM SeriesInstanceUID ("" for NIfTI)
    description: str = ""  # SeriesDescription, or the NIfTI header's descrip
    orientation: str = "".join(DISPLAY_AXCODES)  # always "IPL": the axis codes of hu's (z, y, x) axes
    notes: list[str] = field(default_factory=list)  # what was skipped or assumed on the way

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)

    def __repr__(self) -> str:  # the array itself would flood a notebook
        z, y, x = self.hu.shape
        sz, sy, sx = self.spacing_mm
        return (f"Volume({z} x {y} x {x} voxels of {sz:g} x {sy:g} x {sx:g} mm, {self.orientation}, "
                f"from {self.source!r}, series {self.series_uid or '-'} {self.description!r})")


def to_display(data: np.ndarray, affine_ras: np.ndarray, zooms, name: str) -> tuple[np.ndarray, tuple, np.ndarray]:
    """Reorient a 3-D array with its RAS+ affine to the display view: (array, (z, y, x) spacing, new affine).

    The axes are matched to the nearest anatomical directions (nibabel's io_orientation), so a small gantry
    tilt or an oblique NIfTI affine keeps its voxels as they are; only flips and transpositions happen.
    ``zooms`` are the input axes' voxel sizes, permuted with the axes.
    """
    from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

    affine_ras = np.asarray(affine_ras, dtype=np.float64)
    if (affine_ras.shape != (4, 4) or not np.all(np.isfinite(affine_ras))
            or abs(np.linalg.det(affine_ras[:3, :3])) < 1e-9):
        raise LiverlibError(f"{name}: its voxel-to-patient transform is degenerate (zero or non-finite voxel sizes "
                            "or directions), so its orientation is unknown; re-export it with its geometry")
    current = io_orientation(affine_ras)
    if np.isnan(current).any():
        raise LiverlibError(f"{name}: its axes do not point along three distinct directions, so its orientation "
                            "is unknown; re-export it with its geometry")
    transform = ornt_transform(current, axcodes2ornt(DISPLAY_AXCODES))
    out = np.ascontiguousarray(apply_orientation(data, transform))
    new_affine = affine_ras @ inv_ornt_aff(transform, data.shape)
    spacing = [0.0, 0.0, 0.0]
    for axis, (target, _flip) in enumerate(transform):
        spacing[int(target)] = float(zooms[axis])
    return out, tuple(spacing), new_affine


def check_size(shape, name: str) -> None:
    voxels = int(np.prod([int(n) for n in shape], dtype=np.float64))
    if voxels > MAX_VOXELS:
        dims = " x ".join(str(int(n)) for n in shape)
        raise LiverlibError(f"{name} holds {dims} = {voxels:,} voxels, more than a CT study has (limit "
                            f"{MAX_VOXELS:,}); crop or resample it, or check that it is a CT volume")
