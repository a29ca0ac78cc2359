"""liverlib: an executable course and toolkit for liver CT slice classification with a modified ResNet-50.

The default data is a SYNTHETIC abdominal CT phantom (``liverlib.phantom``); real data plugs in through
``LIVERLIB_DATA_DIR``. Nothing here is a medical device.
"""

import os as _os

# TensorFlow reads these when it is first imported, so they are set before any liverlib module imports it.
# oneDNN is off by default on AMD CPUs and roughly doubles ResNet-50 training speed on them (the settings
# sweep of benchmarks/training_speed.py: "onednn_off" against "defaults"); users can still override both.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
