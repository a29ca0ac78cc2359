"""Pixels in: everything that turns a user's file into Hounsfield units or display grey levels.

One direction, from the file to the array:

* :mod:`~liverlib.imaging.windowing`: window level/width (L40/W400 for the abdomen) from HU to grey levels.
* :mod:`~liverlib.imaging.dicom`: one DICOM slice (rescale slope and intercept to HU; writing the phantom's
  slices as CT DICOM).
* :mod:`~liverlib.imaging.decode`: any single image a user may have (PNG, JPEG, BMP, TIFF, DICOM) to one grey
  image.
* :mod:`~liverlib.imaging.volume`: the one volume type in memory (HU, spacing, orientation, source).
* :mod:`~liverlib.imaging.dicom_series`: a DICOM series (grouped by SeriesInstanceUID, ordered along the
  slice normal) to a volume.
* :mod:`~liverlib.imaging.studies`: what a path holds (a series folder, a NIfTI file, a zip of a series) read
  as studies.

Nothing here needs TensorFlow; the model sees these arrays only through :mod:`liverlib.preprocess`.
"""
