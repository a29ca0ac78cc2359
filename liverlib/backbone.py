"""The backbone's depth: ResNet-50's bottleneck blocks per stage, or fewer for the quick profile's test model.

``RunConfig.backbone_blocks`` holds the blocks of stages conv2 ... conv5; these helpers name such a backbone
(``ResNet-50``, ``ResNet-14``), check a blocks tuple, say what share of ResNet-50's arithmetic it costs (for
the time estimate) and why it takes no pre-trained weights. They sit below the configuration, the model and
the blocks, which all import them.
"""

from __future__ import annotations

import numbers

from liverlib.errors import LiverlibError

RESNET50_BLOCKS: tuple[int, ...] = (3, 4, 6, 3)  # ResNet-50's bottleneck blocks in stages conv2 ... conv5


def resnet_depth(blocks: tuple[int, ...] = RESNET50_BLOCKS) -> int:
    """The weighted layers of a bottleneck ResNet with these blocks per stage (He et al.'s count: the stem's
    convolution, three per block, the classifier): 50 for ResNet-50's (3, 4, 6, 3), 14 for (1, 1, 1, 1)."""
    return 1 + 3 * sum(blocks) + 1


def backbone_name(blocks: tuple[int, ...] = RESNET50_BLOCKS) -> str:
    """``ResNet-50``, or ``ResNet-14`` for the quick profile's one block per stage: how logs and cards name it."""
    return f"ResNet-{resnet_depth(blocks)}"


# multiply-accumulates of one forward pass at 224 px, counted over the Conv2D and Dense layers of the models
# build_modified_resnet50 makes: 1.236 G with one block per stage, and 0.218 G for each further (identity) block,
# whatever its stage (half the resolution, twice the channels): 3.856 G for ResNet-50
_GMAC_ONE_BLOCK_PER_STAGE_224, _GMAC_IDENTITY_BLOCK_224 = 1.236, 0.218


def relative_compute(blocks: tuple[int, ...]) -> float:
    """A backbone's forward-pass arithmetic as a share of ResNet-50's (ResNet-14: 0.32)."""
    gmac = [_GMAC_ONE_BLOCK_PER_STAGE_224 + _GMAC_IDENTITY_BLOCK_224 * (sum(b) - 4) for b in (blocks, RESNET50_BLOCKS)]
    return gmac[0] / gmac[1]  # four stages: sum(b) - 4 blocks beyond the first of each


def checked_blocks(blocks) -> tuple[int, ...]:
    """``blocks`` as a tuple of four whole numbers of at least 1 (a list from JSON is fine), else a clear error."""
    valid = (not isinstance(blocks, (str, bytes)) and hasattr(blocks, "__len__") and len(blocks) == 4
             and all(isinstance(b, numbers.Integral) and not isinstance(b, bool) and b >= 1 for b in blocks))
    if not valid:
        raise LiverlibError(f"backbone blocks per stage must be four whole numbers of at least 1 (ResNet-50: "
                            f"{RESNET50_BLOCKS}), got {blocks!r}")
    return tuple(int(b) for b in blocks)


def weights_refusal(blocks: tuple[int, ...]) -> str:
    """Why a backbone other than ResNet-50 takes no pre-trained weights, and what to do."""
    return (f"pre-trained weights (ImageNet, or a ResNet-50 weights file) fit ResNet-50's {RESNET50_BLOCKS} blocks "
            f"per stage, not this {backbone_name(blocks)} (the quick profile's test model): train it from "
            "random initialisation (leave out --weights), or use the laptop or paper profile (--profile laptop)")
