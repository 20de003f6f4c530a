"""ICD — Kang et al., "Instance-Conditional Knowledge Distillation for Object Detection", NeurIPS 2021
(https://arxiv.org/abs/2110.12724, code: https://github.com/megvii-research/ICD): the instance queries, the
decoder, the auxiliary task (:class:`ICDDistiller`) and the algorithm (:class:`ICDDistill`). The distillation
loss itself is :class:`kdlab.models.losses.icd.ICDLoss`.

    L = L_det + L_aux + lambda * L_distill          (lambda = 8 one-stage, 3 two-stage)

Per iteration the teacher runs backbone + neck only (no gradient, BN in eval), the student runs its full
training forward, and the distiller turns both recorded necks and the batch's ground truth into
``loss_aux_ident``, ``loss_aux_loc`` and ``loss_icd``. Two optimizers, as in the released code: the
detector's own (e.g. SGD) and AdamW (lr 1e-4, weight decay 1e-4, gradient-norm clip 0.01) for everything ICD
adds (``distiller.*``), built by :class:`kdlab.models.optim.SplitOptimWrapperConstructor` as an
``OptimWrapperDict``; :meth:`ICDDistill.train_step` back-propagates once and steps each optimizer.

What it does, per training batch:

1. **Instance queries.** Per image, the ``n`` ground-truth boxes plus fake (negative) instances, ``Q = min(max(1,
   n (r + 1)), max(300, n))`` in all (``r = 5`` fakes per real box). Fake classes follow the class frequencies
   of the training boxes, their width and height per-class Gaussians (clipped to mean +- 2 std and to
   ``[0.002, 0.7]`` of the image), their centres ``U[0.03, 0.97]``. Every box centre is jittered by
   ``U[-0.3, 0.3] x (w, h)``. A query is ``MLP_3( [onehot(class) ; sine(cx', cy') ; scale(w) ; scale(h)] )``
   with 128 sine features per coordinate (temperature 1e4, scale 2 pi) and a 5-way scale one-hot
   ``clamp(floor(1.44 ln(w_px) - 5), 0, 4)`` for each side.
2. **Decoder.** One cross-attention layer (8 heads, 256 hidden, FFN 256-1024-256, residual + LayerNorm, no
   self-attention). Keys are the teacher's FPN features of all levels concatenated plus a linear projection
   of their 2-D sine position embedding; values are the features alone; padded positions are masked.
3. **Auxiliary task** (trains the decoder; the teacher stays frozen): identification, BCE of real vs fake over
   all queries; localization, ``sum_k |sigmoid(p_k) - d_k| / s_k`` over the real queries, with ``d`` the
   distances from the jittered centre to the four box edges and ``s = (w, h, w, h)`` (image-normalised).
4. **Distillation.** The decoder's attention logits (teacher side) and value projection ``V^T``, and a
   separate student-side value projection ``V^S`` of the student's features, go to ``ICDLoss``. For the
   first ``warmup_iters`` iterations the student's features are detached there: the loss then trains only
   the student-side projection, not the student (released code: ``DISTILL_OFF`` = "no distill but update
   adapter head", ``BYPASS_DISTILL = 1000``).

kdlab's interpretation where the sources are silent or dataset-bound (see docs/methods.md, "ICD"):

* **class/size prior of fake instances**: the released code reads COCO statistics from a file
  (``coco_obj.json``); kdlab accumulates the same statistics (box counts per class, mean and variance of the
  image-normalised width and height per class) online from the ground truth of the training batches, so any
  dataset works; after one epoch they are the (augmented) training-set statistics. ``fake_prior='uniform'``
  samples classes uniformly and sizes from ``U[0.05, 0.5]`` instead.
* **position frames**: box centres are normalised by the un-padded image size and key positions by the
  valid (un-padded) extent of each feature map, so both embeddings live in the same [0, 1] frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmrazor.models.algorithms import SingleTeacherDistill
from mmrazor.models.distillers import ConfigurableDistiller
from mmrazor.models.utils import add_prefix
from mmrazor.registry import MODELS

from kdlab.errors import ChannelMismatchError, KdlabError
from kdlab.models.distillers import neck_channels
from kdlab.models.losses import icd as _icd_loss  # noqa: F401  (registers ICDLoss)

FAKE_CENTRE_RANGE = (0.03, 0.97)
FAKE_SIZE_RANGE = (2e-3, 0.7)


# ----------------------------------------------------------------------------------------- embeddings
def sine_embed(coords: Tensor, num_feats: int = 128, temperature: float = 10000.,
               scale: float = 2 * math.pi) -> Tensor:
    """Sine embedding of coordinates in [0, 1]: ``(..., k) -> (..., k * num_feats)``.

    Per coordinate ``x``: ``sin(x s / t^(2 floor(i/2) / F))`` for even ``i`` and ``cos`` for odd ``i``
    (DETR's frequencies; the released ICD code concatenates the sine and the cosine halves).
    """
    i = torch.arange(num_feats, dtype=torch.float32, device=coords.device)
    dim_t = temperature ** (2 * torch.div(i, 2, rounding_mode='floor') / num_feats)
    pos = coords.float()[..., None] * scale / dim_t                       # (..., k, F)
    emb = torch.cat([pos[..., 0::2].sin(), pos[..., 1::2].cos()], dim=-1)
    return emb.flatten(-2)


def scale_indicator(wh_px: Tensor, bins: int = 5) -> Tensor:
    """``onehot(clamp(floor(1.44 ln(w) - 5), 0, bins - 1))`` for width and height: ``(..., 2) -> (..., 2 bins)``."""
    idx = torch.floor(1.44 * torch.log(wh_px.clamp(min=1e-6)) - 5.0).clamp(0, bins - 1).long()
    return F.one_hot(idx, bins).to(wh_px.dtype).flatten(-2)


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU between them (DETR's MLP)."""

    def __init__(self, in_dims: int, hidden_dims: int, out_dims: int, num_layers: int = 3) -> None:
        super().__init__()
        dims = [in_dims] + [hidden_dims] * (num_layers - 1) + [out_dims]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


# ------------------------------------------------------------------------------------------- decoder
class ICDDecoder(nn.Module):
    """One cross-attention decoder layer (no self-attention), post-norm as in DETR.

    ``out = LN(h + FFN(h))`` with ``h = LN(q + W_o Attn(W_q q, W_k (F + W_p P), W_v F))``.

    Args:
        key_channels: channels ``C`` of the (teacher) features the queries attend to.
        hidden_dims: query / attention width (paper: 256).
        num_heads: attention heads (paper: 8).
        ffn_dims: hidden width of the feed-forward block (paper: 1024).
        pos_dims: channels of the sine position embedding ``P`` of the keys.
    """

    def __init__(self, key_channels: int, hidden_dims: int = 256, num_heads: int = 8, ffn_dims: int = 1024,
                 pos_dims: int = 256) -> None:
        super().__init__()
        if hidden_dims % num_heads:
            raise KdlabError(f'ICD decoder: hidden_dims={hidden_dims} is not divisible by '
                             f'num_heads={num_heads}', 'choose hidden_dims as a multiple of num_heads')
        self.num_heads = num_heads
        self.head_dims = hidden_dims // num_heads
        self.pos_proj = nn.Linear(pos_dims, key_channels)
        self.q_proj = nn.Linear(hidden_dims, hidden_dims)
        self.k_proj = nn.Linear(key_channels, hidden_dims)
        self.v_proj = nn.Linear(key_channels, hidden_dims)
        self.out_proj = nn.Linear(hidden_dims, hidden_dims)
        self.norm1 = nn.LayerNorm(hidden_dims)
        self.ffn = nn.Sequential(nn.Linear(hidden_dims, ffn_dims), nn.ReLU(), nn.Linear(ffn_dims, hidden_dims))
        self.norm2 = nn.LayerNorm(hidden_dims)
        for proj in (self.q_proj, self.k_proj, self.v_proj):  # as torch's MultiheadAttention
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)
        nn.init.zeros_(self.out_proj.bias)

    def split_heads(self, x: Tensor) -> Tensor:
        """``(N, L, heads * d) -> (N, L, heads, d)``."""
        return x.view(*x.shape[:-1], self.num_heads, self.head_dims)

    def forward(self, query: Tensor, feats: Tensor, pos: Tensor,
                key_padding: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
        """
        Args:
            query: ``(N, Q, hidden)`` instance queries.
            feats: ``(N, S, C)`` features of all levels, concatenated.
            pos: ``(N, S, pos_dims)`` sine position embedding of the key positions.
            key_padding: ``(N, S)`` True at padded positions.

        Returns:
            ``out (N, Q, hidden)``, attention ``logits (N, heads, Q, S)`` (``-inf`` at padding) and
            ``values (N, S, heads, d)`` (the value projection, as used by the distillation loss).
        """
        q = self.split_heads(self.q_proj(query)).transpose(1, 2)                     # (N, h, Q, d)
        k = self.split_heads(self.k_proj(feats + self.pos_proj(pos))).transpose(1, 2)  # (N, h, S, d)
        values = self.split_heads(self.v_proj(feats))                                # (N, S, h, d)
        logits = q @ k.transpose(-1, -2) / math.sqrt(self.head_dims)                 # (N, h, Q, S)
        if key_padding is not None:
            logits = logits.masked_fill(key_padding[:, None, None, :], float('-inf'))
        attn = logits.softmax(dim=-1)
        out = (attn @ values.transpose(1, 2)).transpose(1, 2).flatten(2)              # (N, Q, hidden)
        h = self.norm1(query + self.out_proj(out))
        return self.norm2(h + self.ffn(h)), logits, values


# ------------------------------------------------------------------------------------------ instances
@dataclass
class Instances:
    """A batch of instance queries, padded to ``Q`` per image.

    ``boxes`` (N, Q, 4) image-normalised xyxy; ``centres`` (N, Q, 2) jittered centres; ``labels`` (N, Q);
    ``real`` (N, Q) 1 for ground truth; ``valid`` (N, Q) 1 for real or fake (0 for padding);
    ``img_wh`` (N, 2) image width and height in pixels.
    """

    boxes: Tensor
    centres: Tensor
    labels: Tensor
    real: Tensor
    valid: Tensor
    img_wh: Tensor

    @property
    def wh(self) -> Tensor:
        return (self.boxes[..., 2:] - self.boxes[..., :2]).clamp(min=0)

    def edge_distances(self) -> Tensor:
        """``d = (cx' - x1, cy' - y1, x2 - cx', y2 - cy')``, the localization target."""
        c = self.centres
        return torch.cat([c - self.boxes[..., :2], self.boxes[..., 2:] - c], dim=-1)


def num_queries(num_real: int, neg_ratio: float = 5.0, max_instances: int = 300) -> int:
    """Real + fake queries of an image: ``min(max(1, n (r + 1)), max(max_instances, n))``."""
    return int(min(max(1, int(num_real * (neg_ratio + 1))), max(max_instances, num_real)))


class InstancePrior(nn.Module):
    """Class frequencies and per-class Gaussians of image-normalised box (w, h), accumulated online.

    Buffers (saved with checkpoints): ``count (K,)``, ``wh_sum (K, 2)``, ``wh_sqsum (K, 2)``.
    """

    def __init__(self, num_classes: int, mode: str = 'online') -> None:
        super().__init__()
        if mode not in ('online', 'uniform'):
            raise KdlabError(f'unknown ICD fake_prior {mode!r}', "use 'online' (default) or 'uniform'")
        self.mode = mode
        self.num_classes = num_classes
        self.register_buffer('count', torch.zeros(num_classes))
        self.register_buffer('wh_sum', torch.zeros(num_classes, 2))
        self.register_buffer('wh_sqsum', torch.zeros(num_classes, 2))

    @torch.no_grad()
    def update(self, labels: Tensor, wh: Tensor) -> None:
        """Add boxes: ``labels (M,)`` in ``[0, K)``, ``wh (M, 2)`` image-normalised."""
        if labels.numel() == 0:
            return
        labels = labels.long()
        self.count.index_add_(0, labels, torch.ones_like(labels, dtype=self.count.dtype))
        self.wh_sum.index_add_(0, labels, wh.to(self.wh_sum.dtype))
        self.wh_sqsum.index_add_(0, labels, wh.to(self.wh_sum.dtype).pow(2))

    @torch.no_grad()
    def sample(self, n: int) -> Tuple[Tensor, Tensor]:
        """``n`` fake instances: ``labels (n,)`` and image-normalised ``wh (n, 2)``."""
        device = self.count.device
        if n == 0:
            return torch.zeros(0, dtype=torch.long, device=device), torch.zeros(0, 2, device=device)
        if self.mode == 'uniform' or self.count.sum() <= 0:
            labels = torch.randint(self.num_classes, (n,), device=device)
            wh = torch.empty(n, 2, device=device).uniform_(0.05, 0.5)
            return labels, wh
        labels = torch.multinomial(self.count / self.count.sum(), n, replacement=True)
        cnt = self.count[labels].clamp(min=1)[:, None]
        mean = self.wh_sum[labels] / cnt
        std = (self.wh_sqsum[labels] / cnt - mean.pow(2)).clamp(min=0).sqrt()
        wh = torch.normal(mean, std)
        wh = torch.max(torch.min(wh, mean + 2 * std), mean - 2 * std)
        return labels, wh.clamp(*FAKE_SIZE_RANGE)


def gt_of(sample) -> Tuple[Tensor, Tensor]:
    """(bboxes ``(n, 4)`` xyxy pixels, labels ``(n,)``) of a data sample's ground truth."""
    from mmdet.structures.bbox import get_box_tensor
    gt = sample.gt_instances
    return get_box_tensor(gt.bboxes).float(), gt.labels


def build_instances(data_samples: Sequence, prior: InstancePrior, *, neg_ratio: float = 5.0,
                    max_instances: int = 300, jitter: float = 0.3, update_prior: bool = True) -> Instances:
    """Real (ground truth) and fake instance boxes for a batch, padded to the largest query count."""
    device = prior.count.device
    per_image = []
    for sample in data_samples:
        bboxes, labels = gt_of(sample)
        h, w = sample.metainfo['img_shape'][:2]
        size = bboxes.new_tensor([w, h, w, h]).to(device)
        real = (bboxes.to(device) / size).clamp(0, 1)
        labels = labels.to(device)
        if update_prior:
            prior.update(labels, (real[:, 2:] - real[:, :2]).clamp(min=0))
        per_image.append((real, labels, (w, h)))

    q_max = max(num_queries(len(r), neg_ratio, max_instances) for r, _, _ in per_image)
    n = len(per_image)
    boxes = torch.zeros(n, q_max, 4, device=device)
    labels_out = torch.zeros(n, q_max, dtype=torch.long, device=device)
    real_mask = torch.zeros(n, q_max, device=device)
    valid = torch.zeros(n, q_max, device=device)
    for i, (real, labels, _) in enumerate(per_image):
        q = num_queries(len(real), neg_ratio, max_instances)
        n_fake = q - len(real)
        f_labels, f_wh = prior.sample(n_fake)
        f_ctr = torch.empty(n_fake, 2, device=device).uniform_(*FAKE_CENTRE_RANGE)
        fake = torch.cat([f_ctr - f_wh / 2, f_ctr + f_wh / 2], dim=-1).clamp(0, 1)
        boxes[i, :q] = torch.cat([real, fake])
        labels_out[i, :q] = torch.cat([labels.long(), f_labels])
        real_mask[i, :len(real)] = 1
        valid[i, :q] = 1
    wh = (boxes[..., 2:] - boxes[..., :2]).clamp(min=0)
    centres = (boxes[..., :2] + boxes[..., 2:]) / 2
    centres = centres + torch.empty_like(centres).uniform_(-jitter, jitter) * wh
    img_wh = torch.tensor([[w, h] for _, _, (w, h) in per_image], dtype=torch.float32, device=device)
    return Instances(boxes, centres, labels_out, real_mask, valid, img_wh)


# -------------------------------------------------------------------------------------- feature maps
def padding_masks(feats: Sequence[Tensor], data_samples: Sequence) -> List[Tensor]:
    """Per level, ``(N, H, W)`` True where the position lies in the batch padding (not the image).

    A level of stride ``t`` keeps ``ceil(h / t)`` rows and ``ceil(w / t)`` columns of an ``h x w`` image
    (released code: ``mask_out_padding``).
    """
    pad_h, pad_w = data_samples[0].metainfo.get('batch_input_shape', data_samples[0].metainfo['img_shape'][:2])
    masks = []
    for f in feats:
        n, _, fh, fw = f.shape
        m = torch.ones(n, fh, fw, dtype=torch.bool, device=f.device)
        stride = (pad_h / fh + pad_w / fw) / 2
        for i, s in enumerate(data_samples):
            h, w = s.metainfo['img_shape'][:2]
            m[i, :int(math.ceil(h / stride)), :int(math.ceil(w / stride))] = False
        masks.append(m)
    return masks


def flatten_levels(feats: Sequence[Tensor]) -> Tensor:
    """``[(N, C, H_l, W_l)] -> (N, sum_l H_l W_l, C)``."""
    return torch.cat([f.flatten(2).transpose(1, 2) for f in feats], dim=1)


def _num_classes(model) -> int:
    head = getattr(model, 'bbox_head', None)
    if head is None and getattr(model, 'roi_head', None) is not None:
        head = model.roi_head.bbox_head
        head = head[-1] if isinstance(head, nn.ModuleList) else head
    k = getattr(head, 'num_classes', None)
    if not isinstance(k, int):
        raise KdlabError('ICD: cannot read the number of classes from the student\'s head',
                         'pass num_classes=<int> in the ICD distiller config')
    return k


# ------------------------------------------------------------------------------------------ distiller
@MODELS.register_module()
class ICDDistiller(ConfigurableDistiller):
    """ICD's trainable parts (query encoder, decoder, auxiliary predictor, student value projection) and its
    losses. Used by :class:`kdlab.models.icd.ICDDistill`.

    The neck outputs are recorded by ``student_recorders['fpn']`` / ``teacher_recorders['fpn']``; level ``i``
    pairs student output ``student_indices[i]`` with teacher output ``teacher_indices[i]`` (same strides).

    Args:
        student_indices (list[int]): student neck outputs used. Paper: all FPN levels.
        teacher_indices (list[int]): teacher neck outputs paired with them.
        loss_icd (dict): config of :class:`ICDLoss` (``loss_weight`` = paper's lambda).
        num_classes (int, optional): classes of the one-hot; None: read from the student's head.
        student_channels / teacher_channels (int, optional): neck widths; None: read from the necks.
        hidden_dims (int): query / decoder width. Paper: 256. Defaults to 256.
        num_heads (int): decoder heads. Paper: 8. Defaults to 8.
        ffn_dims (int): decoder FFN width. Paper: 1024. Defaults to 1024.
        neg_ratio (float): fake instances per real one. Released code: 5. Defaults to 5.0.
        max_instances (int): cap of queries per image (never below the real count). Released code: 300.
        jitter (float): centre jitter, fraction of the box size. Released code: 0.3. Defaults to 0.3.
        fake_prior (str): ``'online'`` (default) or ``'uniform'`` — see the module docstring.
        warmup_iters (int): iterations during which the distillation loss does not reach the student.
            Released code: 1000. Defaults to 1000.
        aux_ident_weight / aux_loc_weight (float): weights of the auxiliary losses. Released code: 1.0.
    """

    def __init__(self, *, student_indices: Sequence[int], teacher_indices: Sequence[int],
                 loss_icd: Optional[dict] = None, num_classes: Optional[int] = None,
                 student_channels: Optional[int] = None, teacher_channels: Optional[int] = None,
                 hidden_dims: int = 256, num_heads: int = 8, ffn_dims: int = 1024, neg_ratio: float = 5.0,
                 max_instances: int = 300, jitter: float = 0.3, fake_prior: str = 'online',
                 warmup_iters: int = 1000, aux_ident_weight: float = 1.0, aux_loc_weight: float = 1.0,
                 student_recorders: Optional[dict] = None, teacher_recorders: Optional[dict] = None,
                 **kwargs) -> None:
        recorder = dict(fpn=dict(type='ModuleOutputs', source='neck'))
        super().__init__(student_recorders=student_recorders or recorder,
                         teacher_recorders=teacher_recorders or recorder,
                         distill_losses=dict(loss_icd=loss_icd or dict(type='ICDLoss')), **kwargs)
        if len(student_indices) != len(teacher_indices) or not student_indices:
            raise KdlabError(f'ICD: student_indices {list(student_indices)} and teacher_indices '
                             f'{list(teacher_indices)} must be non-empty and of equal length')
        self.student_indices = list(student_indices)
        self.teacher_indices = list(teacher_indices)
        self.num_classes = num_classes
        self.student_channels = student_channels
        self.teacher_channels = teacher_channels
        self.hidden_dims = hidden_dims
        self.num_heads = num_heads
        self.ffn_dims = ffn_dims
        self.neg_ratio = neg_ratio
        self.max_instances = max_instances
        self.jitter = jitter
        self.fake_prior = fake_prior
        self.warmup_iters = warmup_iters
        self.aux_ident_weight = aux_ident_weight
        self.aux_loc_weight = aux_loc_weight
        from mmdet.models.layers import SinePositionalEncoding
        # keys' 2-D position embedding (DETR): hidden/2 features per axis, normalised to the valid extent
        self.key_pos = SinePositionalEncoding(num_feats=hidden_dims // 2, normalize=True)

    # The trainable parts are built once both models are known (their widths and class count).
    def prepare_from_student(self, model) -> None:
        super().prepare_from_student(model)
        self.num_classes = self.num_classes or _num_classes(model)
        self.student_channels = self.student_channels or neck_channels(model)
        self.prior = InstancePrior(self.num_classes, self.fake_prior)
        in_dims = self.num_classes + 2 * (self.hidden_dims // 2) + 10
        self.encoder = MLP(in_dims, self.hidden_dims, self.hidden_dims, 3)
        self.student_value = nn.Linear(self.student_channels, self.hidden_dims)

    def prepare_from_teacher(self, model) -> None:
        super().prepare_from_teacher(model)
        self.teacher_channels = self.teacher_channels or neck_channels(model)
        self.decoder = ICDDecoder(self.teacher_channels, self.hidden_dims, self.num_heads, self.ffn_dims,
                                  pos_dims=2 * (self.hidden_dims // 2))
        self.aux_head = MLP(self.hidden_dims, self.hidden_dims, 5, 3)   # 1 identification + 4 edges

    # --------------------------------------------------------------------------------------------
    def encode(self, inst: Instances) -> Tensor:
        """``(N, Q, hidden)`` queries from the instance descriptors (no gradient to the boxes)."""
        onehot = F.one_hot(inst.labels, self.num_classes).float()
        pos = sine_embed(inst.centres, self.hidden_dims // 2)
        scale = scale_indicator(inst.wh * inst.img_wh[:, None, :])
        return self.encoder(torch.cat([onehot, pos, scale], dim=-1))

    def aux_losses(self, decoded: Tensor, inst: Instances) -> Dict[str, Tensor]:
        """Identification (BCE real vs fake over valid queries) and localization (L1 / box size, real)."""
        pred = self.aux_head(decoded)
        ident = F.binary_cross_entropy_with_logits(pred[..., 0], inst.real, reduction='none')
        ident = (ident * inst.valid).sum() / inst.valid.sum().clamp(min=1e-6)
        d = inst.edge_distances()
        s = torch.cat([inst.wh, inst.wh], dim=-1)
        loc = ((pred[..., 1:].sigmoid() - d).abs() / s.clamp(min=1e-7)).sum(-1)
        loc = (loc * inst.real).sum() / inst.real.sum().clamp(min=1e-6)
        return dict(loss_aux_ident=self.aux_ident_weight * ident, loss_aux_loc=self.aux_loc_weight * loc)

    def gather_features(self, data_samples) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Recorded neck outputs -> ``F_S (N, S, C_S)``, ``F_T (N, S, C_T)``, ``P (N, S, pos)``, ``pad (N, S)``."""
        out_S = self.student_recorders.get_recorder('fpn').get_record_data()
        out_T = self.teacher_recorders.get_recorder('fpn').get_record_data()
        feats_S = [out_S[i] for i in self.student_indices]
        feats_T = [out_T[i] for i in self.teacher_indices]
        for i, (s, t) in enumerate(zip(feats_S, feats_T)):
            if s.shape[-2:] != t.shape[-2:]:
                raise ChannelMismatchError(
                    f'ICD pairs student neck output {self.student_indices[i]} {tuple(s.shape[-2:])} with teacher '
                    f'output {self.teacher_indices[i]} {tuple(t.shape[-2:])}: their spatial sizes differ',
                    "ICD attends over positions shared by both models: pair levels with the same stride "
                    "(pairing='stride')")
        masks = padding_masks(feats_T, data_samples)
        pos = flatten_levels([self.key_pos(m) for m in masks])
        pad = torch.cat([m.flatten(1) for m in masks], dim=1)
        return flatten_levels(feats_S), flatten_levels(feats_T), pos, pad

    def compute_distill_losses(self, data_samples=None, iteration: int = 0) -> Dict[str, Tensor]:
        """Auxiliary and distillation losses of a batch whose neck outputs were just recorded.

        ``iteration`` < ``warmup_iters``: the student's features are detached (the loss trains only the
        student-side value projection).
        """
        if data_samples is None:
            raise KdlabError('ICDDistiller needs the batch data samples (ground truth) to compute its losses',
                             'use it with the ICDDistill algorithm')
        F_S, F_T, pos, pad = self.gather_features(data_samples)
        inst = build_instances(data_samples, self.prior, neg_ratio=self.neg_ratio,
                               max_instances=self.max_instances, jitter=self.jitter, update_prior=self.training)
        decoded, logits, value_T = self.decoder(self.encode(inst), F_T.detach(), pos, pad)
        losses = self.aux_losses(decoded, inst)
        if iteration < self.warmup_iters:
            F_S = F_S.detach()
        value_S = self.decoder.split_heads(self.student_value(F_S))
        losses['loss_icd'] = self.distill_losses['loss_icd'](value_S, value_T, logits, inst.real)
        return losses


# ------------------------------------------------------------------------------------------ algorithm
def current_iter(default: int = 0) -> int:
    """The runner's current training iteration (mmengine's message hub), ``default`` outside a runner."""
    it = MessageHub.get_current_instance().get_info('iter')
    return default if it is None else int(it)


@MODELS.register_module()
class ICDDistill(SingleTeacherDistill):
    """Instance-conditional distillation; ``distiller`` must be an ``ICDDistiller`` config.

    All arguments are those of mmrazor's ``SingleTeacherDistill`` (``architecture``, ``teacher``,
    ``teacher_ckpt``, ``distiller``, ...). The warm-up length is ``distiller.warmup_iters``.
    """

    def loss(self, batch_inputs: torch.Tensor, data_samples: Optional[List] = None) -> Dict[str, torch.Tensor]:
        losses = dict()
        with self.distiller.teacher_recorders, torch.no_grad():
            self.teacher.extract_feat(batch_inputs)
        with self.distiller.student_recorders:
            student_losses = self.student(batch_inputs, data_samples, mode='loss')
        losses.update(add_prefix(student_losses, 'student'))
        if not self.distillation_stopped:
            distill = self.distiller.compute_distill_losses(data_samples, iteration=current_iter())
            losses.update(add_prefix(distill, 'distill'))
        return losses

    def train_step(self, data, optim_wrapper):
        """One backward for all losses; with an ``OptimWrapperDict`` (student + ICD parts) each wrapper
        steps (and clips) its own parameters. A single ``OptimWrapper`` works as in mmengine."""
        if not isinstance(optim_wrapper, OptimWrapperDict):
            return super().train_step(data, optim_wrapper)
        wrappers: List[OptimWrapper] = list(optim_wrapper.values())
        first = wrappers[0]
        with first.optim_context(self):
            data = self.data_preprocessor(data, True)
            losses = self._run_forward(data, mode='loss')
        parsed, log_vars = self.parse_losses(losses)
        first.backward(first.scale_loss(parsed))     # gradients for every wrapper's parameters
        for w in wrappers[1:]:
            w._inner_count += 1                        # mmengine's counter of backward passes
        for w in wrappers:
            if w.should_update():
                w.step()
                w.zero_grad()
        return log_vars
