"""Reading GT boxes and image shapes out of mmdet ``DetDataSample`` objects (for FGD and DFMSD's ME)."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch

from kdlab.errors import KdlabError

SHAPE_KEYS = ('img_shape', 'batch_input_shape')


def box_tensor(boxes) -> torch.Tensor:
    """``(K, 4)`` xyxy tensor of mmdet boxes (a tensor or a ``HorizontalBoxes``)."""
    t = getattr(boxes, 'tensor', boxes)
    return torch.as_tensor(t).reshape(-1, 4).float()


def gt_boxes(data_samples: Sequence) -> List[torch.Tensor]:
    """The GT boxes of each sample, ``[(K_i, 4)]``, in the pixels of the network input."""
    if data_samples is None:
        raise KdlabError('the loss needs the batch data_samples (GT boxes) but got None',
                         'record them with dict(type="DataSamples") in student_recorders and map them to the '
                         'loss (kdlab.methods.fgd does)')
    return [box_tensor(ds.gt_instances.bboxes) for ds in data_samples]


def image_shapes(data_samples: Sequence, key: str = 'img_shape') -> List[Tuple[int, int]]:
    """``(h, w)`` of each sample: ``img_shape`` (resized image, before padding) or ``batch_input_shape``
    (the padded batch the feature maps cover)."""
    if key not in SHAPE_KEYS:
        raise KdlabError(f'unknown image shape key {key!r}', f'use one of {SHAPE_KEYS}')
    out = []
    for ds in data_samples:
        shape = ds.metainfo.get(key)
        if shape is None:
            raise KdlabError(f'data sample has no {key!r} in its metainfo',
                             "use key='img_shape', or run the batch through mmdet's DetDataPreprocessor")
        out.append((int(shape[0]), int(shape[1])))
    return out
