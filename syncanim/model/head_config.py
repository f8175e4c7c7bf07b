"""Settings of the ``nerf-head`` renderer and its registry entry, without torch: a dry run checks them, and
``syncanim plugins`` lists the renderer, without loading the model (:mod:`syncanim.model.head`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from ..config import Frozen
from ..registry import Spec

if TYPE_CHECKING:
    from .base import HeadFactory

#: expression coefficients the head is conditioned on (the mouth follows its own code instead)
EXPRESSIONS = ("blink_left", "blink_right", "brow_raise")


class MouthNetConfig(Frozen):
    """The mouth code and its predictor (``[model.mouth]``)."""

    components: int = Field(8, ge=1, le=32)  # most principal components of the mouth shape kept
    variance: float = Field(0.97, gt=0.5, le=1.0)  # ... or fewer, once they explain this share of its variance
    hidden: int = Field(128, ge=4)
    layers: int = Field(3, ge=1, le=8)  # residual convolutions over the window of frames
    past: int = Field(8, ge=0, le=64)  # frames of features before the frame the predictor reads
    future: int = Field(8, ge=0, le=64)  # frames after it: the look-ahead a live stream waits for
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    input_dropout: float = Field(0.5, ge=0.0, lt=1.0)  # on the normalised features: a little data, a big input


class NerfHeadConfig(Frozen):
    #: settings that change how the trained model renders, not what training learns: a run resumes across them
    render_only: ClassVar[frozenset[str]] = frozenset({"render_samples", "render_occupancy_grow", "fused_field",
                                                      "field_precision", "march_parts", "speech_region",
                                                      "expression_region"})

    levels: int = Field(12, ge=1, le=24)  # hash-grid levels per plane
    features: int = Field(2, ge=1, le=8)  # features per level
    base_res: int = Field(16, ge=2)
    max_res: int = Field(1024, ge=4)  # finest grid resolution across the head box
    log2_table: int = Field(16, ge=10, le=24)  # rows per hashed level = 2**log2_table (more = sharper, more memory)
    hidden: int = Field(64, ge=8)
    geo_dim: int = Field(15, ge=1)
    audio_dim: int = Field(32, ge=1)  # width of the mouth conditioning the region gates scale per point
    latent_dim: int = Field(4, ge=0)  # per-frame lighting code (its mean is used when rendering new audio)
    # the expression coefficients (blinks 0 open .. 1 shut, brows) enter the field multiplied by this: Adam moves
    # each weight by about the same step whatever its input, so a larger input learns a blink's few frames faster
    expression_scale: float = Field(1.0, gt=0, le=100)
    samples: int = Field(16, ge=2, le=128)  # samples per ray in the shell
    # samples per ray when rendering (no gradients): fewer than training's spread over the same shell cost
    # proportionally less; 0: as many as in training (benchmarks/render_speed.py measures the difference)
    render_samples: int = Field(0, ge=0, le=128)
    # rendering marches the samples in this many runs; a run is evaluated only for rays the runs before it left
    # visible (more runs: fewer samples of an opaque head evaluated, one more host synchronisation each)
    march_parts: int = Field(2, ge=1, le=16)
    # when rendering, only the lips, jaw and cheeks hear the mouth code (syncanim.model.rays.speech_box); elsewhere the
    # field sees the subject's average mouth. Trained heads also use the code to place the hair's edge, which then
    # moves with the speech: on a 3-minute cnn2 model, held-out PSNR 29.90 -> 31.37 dB, mouth figures within 0.03
    speech_region: bool = True
    # likewise blinks and brow raises act only on the eyes, lids and brows (syncanim.model.rays.expression_box);
    # elsewhere the field sees the subject's typical expressions. A 20 s cpu-quick model drew a line across its
    # cheeks when it blinked: held-out PSNR 28.51 -> 28.60 dB, the line gone; 3-minute cnn2 model unchanged
    expression_region: bool = True
    # both boxes in training too: points outside them learn with the average mouth and the typical expression, so
    # the head cannot place anything there by those codes (off: the codes reach every point while training)
    region_training: bool = False
    shell_front: float = Field(0.03, gt=0)  # shell starts this far (canonical units ~ m) before the prior surface
    shell_back: float = Field(0.03, gt=0)  # and ends this far behind it
    prior_res: int = Field(96, ge=16)  # resolution of the depth prior map
    occupancy_res: int = Field(64, ge=8, le=256)  # occupancy grid cells per side (0 samples in empty cells)
    occupancy_threshold: float = Field(0.005, gt=0)  # a cell is empty when density x bin length stays below this
    occupancy_grow: int = Field(1, ge=0, le=4)  # occupied cells are grown by this many cells (safety margin)
    # when rendering (no gradients), grow the cells by this many instead (None: as in training); the grid is
    # recomputed from the kept densities. Fewer cells, fewer field points: benchmarks/render_speed.py (grow0)
    render_occupancy_grow: int | None = Field(None, ge=0, le=4)
    backend: str = "auto"  # kernel backend: auto | ref | torch | triton
    # where the backend is triton (CUDA), render the field with fused Triton kernels: mlp (the encoder's kernel, then
    # everything after it in one), all (the whole field in one) or off (a kernel per op); the same images (GPU
    # tests). On an H200 a 512 px head draws in 3.7 ms with mlp in tf32, 6.3 off, 9.8 all (docs/training.md).
    # Models saved when this was a switch say true / false: all / off
    fused_field: Literal["off", "mlp", "all"] = "mlp"
    # the fused kernels' matrix products: tf32 (tensor cores, inputs rounded to 10 bits: frames 61 dB from
    # float32's) | ieee (float32 products, ten times slower in a Triton kernel)
    field_precision: Literal["ieee", "tf32"] = "tf32"
    mouth: MouthNetConfig = MouthNetConfig()

    @field_validator("fused_field", mode="before")
    @classmethod
    def _fused_was_a_switch(cls, v):
        return {True: "all", False: "off"}.get(v, v) if isinstance(v, bool) else v


def build_head(config: NerfHeadConfig) -> HeadFactory:
    """The registry's ``build``: the factory of models of this config (a model needs its subject's
    sizes and face, :class:`~syncanim.model.base.HeadSetup`)."""
    import functools

    from .head import NerfHead

    return functools.partial(NerfHead.for_setup, config)


SPEC = Spec(
    name="nerf-head",
    config_model=NerfHeadConfig,
    build=build_head,
    description="audio-driven NeRF head: tri-plane hash grids, region-gated audio/expression, shell sampling",
)
