"""The ``nerf-head`` renderer: an audio-driven NeRF of one person's head.

:class:`NerfHead` holds the field, the mouth predictor (speech features -> mouth code), the per-frame
lighting latents and the head's geometry (box and depth prior, from the prep track), and renders
rays: shell samples around the prior surface, the field at those samples, alpha compositing over a
per-ray background.

The mouth is conditioned on an explicit **mouth code** (:class:`syncanim.face.mouth.MouthBasis`: the
principal components of the subject's lip and jaw landmarks, unit spread each). Training feeds the
real code of each frame, measured on its landmarks, so the field learns to render any mouth shape of
the subject; rendering feeds the code the predictor reads from the speech. The two parts are fitted
separately, so the mouth moves as much as the predicted code says, and a render driven by the real
codes shows what the field alone can do.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..face.mouth import ANCHORS, MouthBasis
from ..kernels.composite import composite_rays
from ..kernels.field import Regions, Scatter
from ..kernels.hashgrid import grid_spec
from . import occupancy
from .backstop import DEFAULT_INSIDE, backstop_ellipsoid, ray_hits_ellipsoid
from .base import HeadModel, HeadSetup
from .batch import RayBatch
from .camera import Camera
from .compaction import compact_slots
from .conditioning import Conditioning, FrameBatch
from .field import HeadField, limit_codes
from .head_config import EXPRESSIONS, NerfHeadConfig
from .losses import LossWeights, PerceptualLoss, as_patches, distortion, photometric
from .mouth_net import MouthPredictor
from .rays import expression_box, head_box, project_box, speech_box, to_unit_box
from .shell import depth_prior, shell_samples, surface_depth


def march_runs(samples: int, parts: int) -> list[slice]:
    """The runs a ray's ``samples`` are marched in: ``parts`` (at most ``samples``) runs of near-equal length, front first."""
    parts = max(1, min(parts, samples))
    edges = [round(i * samples / parts) for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


#: no mouth backstop (centre, half-axes, colour: half-axes 0)
NO_BACKSTOP = np.zeros((3, 3), np.float32)
#: a box holding every point: the code acts everywhere
WHOLE_BOX = np.array([[-1e30, -1e30, -1e30], [1e30, 1e30, 1e30]], np.float32)


class NerfHead(HeadModel):
    """The whole head model. Geometry buffers come from the dataset's track (canonical landmarks)."""

    def __init__(self, config: NerfHeadConfig, audio_per_frame: int, audio_feat_dim: int, num_latents: int,
                 mouth: MouthBasis | tuple[int, int], geometry: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                 boxes: tuple[np.ndarray, np.ndarray] | None = None, expression_rest: np.ndarray | None = None,
                 backstop: np.ndarray | None = None) -> None:
        """``mouth``: the subject's mouth basis, or ``(components C, points K)`` for an empty one (the
        state dict being loaded brings it). ``geometry`` = (box lo [3], box hi [3], depth prior
        [prior_res, prior_res]); zeros when None (likewise). ``boxes`` = the boxes ``[2, 3]`` in unit coordinates
        where the mouth code and the expressions act (:func:`~syncanim.model.rays.speech_box`,
        :func:`~syncanim.model.rays.expression_box`): the whole head box when None (models saved before a box was
        kept load that too). ``expression_rest``: the subject's typical expressions [E] (unscaled), zeros when
        None. ``backstop``: the mouth backstop ``[3, 3]`` (centre, half-axes, colour: :mod:`~syncanim.model.backstop`),
        none when None (models saved before it was kept load that too)."""
        super().__init__()
        self.config = config
        if geometry is None:
            geometry = (np.zeros(3, np.float32), np.ones(3, np.float32),
                        np.zeros((config.prior_res, config.prior_res), np.float32))
        lo, hi, prior = geometry
        self.register_buffer("box_lo", torch.tensor(lo, dtype=torch.float32))
        self.register_buffer("box_hi", torch.tensor(hi, dtype=torch.float32))
        self.register_buffer("prior", torch.tensor(prior, dtype=torch.float32))
        speech, eyes = (WHOLE_BOX, WHOLE_BOX) if boxes is None else boxes
        # copies (torch.tensor), not views of the arrays: loading weights writes into the buffers
        self.register_buffer("speech_box", torch.tensor(speech, dtype=torch.float32))
        self.register_buffer("expression_box", torch.tensor(eyes, dtype=torch.float32))
        rest = np.zeros(len(EXPRESSIONS)) if expression_rest is None else expression_rest
        self.register_buffer("expression_rest", torch.tensor(rest, dtype=torch.float32))
        self.register_buffer("whole_box", torch.tensor(WHOLE_BOX), persistent=False)
        self.register_buffer("mouth_backstop", torch.tensor(NO_BACKSTOP if backstop is None else backstop,
                                                            dtype=torch.float32))
        self._backstop_on = backstop is not None
        spec = grid_spec(config.levels, config.features, config.base_res, config.max_res, config.log2_table)
        # initial density such that the whole shell is about half opaque
        bias = float(np.log(np.log(2.0) / (config.shell_front + config.shell_back)))
        self.field = HeadField(spec, config.audio_dim, len(EXPRESSIONS), config.latent_dim, config.hidden,
                               config.geo_dim, config.backend, density_bias=bias)
        if isinstance(mouth, tuple):
            c, k = mouth
            mouth = MouthBasis(np.zeros(3 * k), np.zeros((c, 3 * k)), np.ones(c), np.full(c, 1.0 / c),
                               np.zeros((len(ANCHORS), 3)))
        for name, arr in mouth.arrays().items():  # the subject's mouth basis travels with the weights
            self.register_buffer(f"mouth_{name}", torch.tensor(np.asarray(arr), dtype=torch.float32))
        mc = config.mouth
        self.predictor = MouthPredictor(audio_per_frame, audio_feat_dim, mouth.size, mc.hidden, mc.layers, mc.past,
                                        mc.future, mc.dropout, mc.input_dropout)
        self.code_embed = nn.Linear(mouth.size, config.audio_dim)
        self.latents = nn.Parameter(torch.zeros(max(1, num_latents), config.latent_dim))
        g = config.occupancy_res
        # decaying max density per cell; starts high so that every cell counts as occupied until updated
        self.register_buffer("occ_density", torch.full((g, g, g), 1e4))
        self.register_buffer("occupied", torch.ones((g, g, g), dtype=torch.bool))
        self._box_on_host: tuple[tuple, tuple[np.ndarray, np.ndarray]] | None = None
        self._render_grid: tuple[tuple, torch.Tensor] | None = None

    @classmethod
    def for_face(cls, config: NerfHeadConfig, canonical: np.ndarray, audio_per_frame: int, audio_feat_dim: int,
                 num_latents: int, mouth: MouthBasis | tuple[int, int],
                 expression_rest: np.ndarray | None = None, mouth_inside: np.ndarray | None = None) -> NerfHead:
        """A new model around a subject's canonical face landmarks [478, 3] and mouth basis (or an
        empty basis of ``(components, points)``: an untrained model for timing), their typical expressions
        [E] (zeros when None), and the colour inside their open mouth [3] (the backstop's; a dark red when None)."""
        lo, hi = head_box(canonical)
        inside = np.asarray(DEFAULT_INSIDE if mouth_inside is None else mouth_inside, np.float32)
        return cls(config, audio_per_frame, audio_feat_dim, num_latents, mouth,
                   (lo, hi, depth_prior(canonical, lo, hi, config.prior_res)),
                   (speech_box(canonical, lo, hi), expression_box(canonical, lo, hi)), expression_rest,
                   np.concatenate([backstop_ellipsoid(canonical), inside[None]]))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("speech_box", "expression_box"):  # saved before the box was kept: the code acts everywhere
            state_dict.setdefault(prefix + name, torch.tensor(WHOLE_BOX))
        state_dict.setdefault(prefix + "expression_rest", torch.zeros(len(EXPRESSIONS)))
        # saved before the backstop was kept: none (half-axes 0)
        backstop = state_dict.setdefault(prefix + "mouth_backstop", torch.tensor(NO_BACKSTOP))
        self._backstop_on = bool((backstop[1] > 0).all())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def behind(self, origins: torch.Tensor, dirs: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
        """The mouth backstop's colour where a ray meets it, else the background (:mod:`~syncanim.model.backstop`):
        ``[R, 3]`` each."""
        if not self._backstop_on:
            return background
        hit = ray_hits_ellipsoid(origins, dirs, self.mouth_backstop[:2])  # [R]
        return torch.where(hit[:, None], self.mouth_backstop[2].to(background.dtype), background)

    def regions(self) -> Regions | None:
        """Where the frame's codes act (:class:`~syncanim.kernels.field.Regions`): the mouth code in the speech box
        (elsewhere the embedding of the zero code, the average mouth) with ``speech_region``, the expressions in
        the expression box (elsewhere the subject's typical expressions) with ``expression_region``; None when
        neither is on."""
        c = self.config
        if not (c.speech_region or c.expression_region):
            return None
        return Regions(self.speech_box if c.speech_region else self.whole_box, self.code_embed.bias,
                       self.expression_box if c.expression_region else self.whole_box,
                       self.expression_rest * c.expression_scale)

    @classmethod
    def for_setup(cls, config: NerfHeadConfig, setup: HeadSetup) -> NerfHead:
        """The model for a :class:`~syncanim.model.base.HeadSetup`: around its canonical face, or with
        empty geometry buffers (which a state dict fills) when it has none."""
        if setup.canonical is None:
            return cls(config, setup.audio_per_frame, setup.audio_dim, setup.num_latents, setup.mouth)
        return cls.for_face(config, setup.canonical, setup.audio_per_frame, setup.audio_dim, setup.num_latents,
                            setup.mouth, setup.expression_rest, setup.mouth_inside)

    @property
    def code_dim(self) -> int:
        return self.code_embed.in_features

    def mouth_basis(self) -> MouthBasis:
        """The subject's mouth basis (numpy), e.g. to turn codes into mouth openings."""
        a = {k: getattr(self, f"mouth_{k}").detach().cpu().double().numpy()
             for k in ("mean", "components", "scale", "weight", "reference")}
        return MouthBasis(**a)

    def condition(self, batch: FrameBatch) -> Conditioning:
        """B frames' conditioning: the embedding [B, audio_dim] of their mouth codes (given, or read by the
        mouth predictor from the speech features around each frame), their expressions [B, E] (times
        ``expression_scale``) and lighting codes [B, L]."""
        codes = batch.codes if batch.codes is not None else self.predictor(batch.features, batch.frames)
        expressions = batch.expressions * self.config.expression_scale  # x 1 is exact: no special case
        return Conditioning(self.code_embed(codes), expressions, self.latent_for(batch.latent_frames, len(batch)))

    def latent_for(self, frames: torch.Tensor | None, batch: int) -> torch.Tensor:
        """Lighting codes [B, L]: per training frame, or their mean (``frames`` None)."""
        if frames is None:
            return self.latents.mean(0, keepdim=True).expand(batch, -1)
        return self.latents.index_select(0, frames.clamp(0, self.latents.shape[0] - 1))

    def samples_per_ray(self) -> int:
        """Samples per ray: the training count with gradients, ``render_samples`` (when set) without."""
        c = self.config
        return c.render_samples if c.render_samples and not torch.is_grad_enabled() else c.samples

    def render_rays(self, origins: torch.Tensor, dirs: torch.Tensor, ray_frame: torch.Tensor, cond: Conditioning,
                    background: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Render rays of a batch of frames: shell samples, compacted to occupied cells.

        origins, dirs: [R, 3] (head frame); ray_frame: [R] long, the frame (row of ``cond``) of each ray;
        background: [R, 3] in [0, 1]. ``generator`` jitters the samples (training). Returns color [R, 3],
        opacity [R], depth [R], hit [R] bool and the mean region gates (``audio_gate``, ``expr_gate``:
        scalars) for regularisation.
        """
        audio, expr, latent = cond.mouth, cond.expressions, cond.latent
        c = self.config
        t_surf, hit = surface_depth(origins, dirs, self.prior, self.box_lo, self.box_hi)
        color = background.clone()
        opacity = torch.zeros_like(t_surf)
        depth = torch.zeros_like(t_surf)
        out = {"color": color, "opacity": opacity, "depth": depth, "hit": hit}
        idx = hit.nonzero().squeeze(1)
        if idx.numel() == 0:
            zero = self.field.tables.sum() * 0
            out.update(audio_gate=zero, expr_gate=zero)
            return out
        o, d, frame = origins[idx], dirs[idx], ray_frame[idx]
        s = self.samples_per_ray()
        t, deltas = shell_samples(t_surf[idx], s, c.shell_front, c.shell_back, generator)  # [Rh, S]
        pts = o[:, None, :] + t[..., None] * d[:, None, :]  # [Rh, S, 3]
        unit = to_unit_box(pts, self.box_lo, self.box_hi)
        occupied = occupancy.lookup(self.occupied_grid(), unit)  # [Rh, S]: samples in occupied cells
        sigma = torch.zeros(occupied.shape, device=unit.device)
        rgb = torch.zeros(*occupied.shape, 3, device=unit.device)
        gates: list[torch.Tensor] = []
        # Without gradients (rendering), rays are marched in ``march_parts`` runs of samples: a run is
        # evaluated only for rays that the runs before it left visible (transmittance above 1e-4).
        halves = [slice(0, s)] if torch.is_grad_enabled() else march_runs(s, c.march_parts)
        for part in halves:
            want = occupied[:, part]
            if part.start:
                light = torch.exp(-(sigma[:, :part.start] * deltas[:, :part.start]).sum(1)) > 1e-4  # [Rh]
                want = want & light[:, None]
            keep = want.reshape(-1).nonzero().squeeze(1)  # flat indices into [Rh, len(part)]
            if keep.numel() == 0:
                continue
            width = part.stop - part.start
            ray_of = keep // width
            x = unit[:, part].reshape(-1, 3).index_select(0, keep)
            if torch.is_grad_enabled():
                cond_s = frame.index_select(0, ray_of)
                # index_select, not indexing: its backward (index_add_) is deterministic on CPU, so a resumed
                # run reproduces an uninterrupted one exactly. One frame's conditioning is broadcast, not gathered.
                a_s, e_s, l_s = (v if len(cond) == 1 else v.index_select(0, cond_s) for v in (audio, expr, latent))
                regions = self.regions() if c.region_training else None
                if regions is not None:
                    a_s, e_s = limit_codes(regions, x, a_s, e_s)
                f = self.field(x, d.index_select(0, ray_of), a_s, e_s, l_s)
                sig, col_s = f["sigma"], f["rgb"]
                gates += [f["audio_gate"].float().mean(), f["expr_gate"].float().mean()]
            else:
                sig, col_s = self.field.points(x, ray_of, d, None if len(cond) == 1 else frame, audio, expr, latent,
                                               c.fused_field, c.field_precision, regions=self.regions())
            sig_part = torch.zeros(want.numel(), device=unit.device, dtype=sig.dtype).index_copy(0, keep, sig)
            rgb_part = torch.zeros(want.numel(), 3, device=unit.device, dtype=col_s.dtype).index_copy(0, keep, col_s)
            if len(halves) == 1:
                sigma, rgb = sig_part.view(-1, width), rgb_part.view(-1, width, 3)
            else:
                sigma[:, part] = sig_part.view(-1, width).float()
                rgb[:, part] = rgb_part.view(-1, width, 3).float()
        col, opa, dep, weights = composite_rays(sigma, rgb, deltas, t, background[idx], backend=c.backend)
        if torch.is_grad_enabled():  # what the distortion term reads
            out.update(weights=weights, t=t, deltas=deltas)
        out["color"] = color.index_copy(0, idx, col.to(color.dtype))
        out["opacity"] = opacity.index_copy(0, idx, opa.to(opacity.dtype))
        out["depth"] = depth.index_copy(0, idx, dep.to(depth.dtype))
        zero = self.field.tables.sum() * 0
        out["audio_gate"] = gates[0] if gates else zero
        out["expr_gate"] = gates[1] if gates else zero
        return out

    def render_rays_dense(self, origins: torch.Tensor, dirs: torch.Tensor, ray_frame: torch.Tensor,
                          cond: Conditioning, background: torch.Tensor,
                          capacity: tuple[int, ...] | None = None) -> dict[str, torch.Tensor]:
        """:meth:`render_rays` without gradients, with static shapes.

        origins, dirs: [R, 3] (head frame); ray_frame: [R] long; background: [R, 3] float in [0, 1]. Without
        ``capacity``, every sample is evaluated and the ones :meth:`render_rays` skips (outside occupied cells,
        runs behind an opaque front, rays that miss the head) get zero density. With ``capacity`` (field points
        per run of samples, :func:`march_runs`), each run's wanted samples are compacted into that many slots
        (:func:`~syncanim.model.compaction.compact_slots`) and only those are evaluated. Either way the colours
        are :meth:`render_rays`'s up to float rounding, as long as no run wanted more points than its capacity.
        Returns color [R, 3] float32, opacity [R] and ``points`` [runs] long: the points each run wanted.
        """
        c = self.config
        r, s = origins.shape[0], self.samples_per_ray()
        runs = march_runs(s, c.march_parts)
        if capacity is not None and len(capacity) != len(runs):
            raise ValueError(f"capacity: one per run of samples ({len(runs)}), got {len(capacity)}")
        t_surf, hit = surface_depth(origins, dirs, self.prior, self.box_lo, self.box_hi)  # [R], [R]
        t, deltas = shell_samples(t_surf, s, c.shell_front, c.shell_back)  # [R, S]
        pts = origins[:, None, :] + t[..., None] * dirs[:, None, :]  # [R, S, 3]
        unit = to_unit_box(pts, self.box_lo, self.box_hi)
        want = occupancy.lookup(self.occupied_grid(), unit) & hit[:, None]  # [R, S]
        frames = None if len(cond) == 1 else ray_frame
        if capacity is None:
            ray = torch.arange(r, device=origins.device).repeat_interleave(s)  # [R*S]
            sig, rgb = self.field.points(unit.reshape(-1, 3), ray, dirs, frames, cond.mouth, cond.expressions,
                                         cond.latent, c.fused_field, c.field_precision, regions=self.regions())
            sigma = torch.where(want, sig.view(r, s), 0.0)  # [R, S]
            rgb = rgb.view(r, s, 3)
        else:
            sigma = torch.zeros(r, s, device=origins.device)
            rgb = torch.zeros(r, s, 3, device=origins.device)
        # a run of samples counts only where the runs before it left the ray visible, as in render_rays
        points = []
        for i, part in enumerate(runs):
            width = part.stop - part.start
            wanted = want[:, part]
            if part.start:
                light = torch.exp(-(sigma[:, :part.start] * deltas[:, :part.start]).sum(1)) > 1e-4  # [R]
                wanted = wanted & light[:, None]
            if capacity is None:
                sigma[:, part] = sigma[:, part] * wanted
                points.append(wanted.sum())
                continue
            index, valid, count = compact_slots(wanted.reshape(-1), capacity[i])  # [K], [K], []
            points.append(count)
            # each slot's results straight to its sample in sigma / rgb (the empty slots, which repeat entry 0, not)
            ray_of = index // width
            into = Scatter(sigma.view(-1), rgb.view(-1, 3), ray_of * s + part.start + (index - ray_of * width), valid)
            self.field.points(unit[:, part].reshape(-1, 3).index_select(0, index), ray_of, dirs, frames, cond.mouth,
                              cond.expressions, cond.latent, c.fused_field, c.field_precision, into=into,
                              regions=self.regions())
        col, opa, _, _ = composite_rays(sigma, rgb, deltas, t, background, backend=c.backend)
        return {"color": torch.where(hit[:, None], col, background.float()),
                "opacity": torch.where(hit, opa.float(), 0.0), "points": torch.stack(points)}

    def loss_dict(self, batch: RayBatch, outputs: dict[str, torch.Tensor], weights: LossWeights,
                  perceptual: PerceptualLoss | None = None) -> dict[str, torch.Tensor]:
        """The photometric error (``rgb``), the L1 pulls on the mean region gates (``audio_gate``,
        ``expr_gate``), and on patch batches the perceptual term (``perceptual``), each weighted."""
        color = outputs["color"].float()  # [B*R, 3]
        target = batch.target.reshape(-1, 3)
        losses = {"rgb": photometric(color, target), "audio_gate": weights.audio_gate * outputs["audio_gate"],
                  "expr_gate": weights.expr_gate * outputs["expr_gate"]}
        if weights.distortion > 0 and "weights" in outputs:
            c = self.config
            losses["distortion"] = weights.distortion * distortion(outputs["weights"], outputs["t"],
                                                                   outputs["deltas"], c.shell_front + c.shell_back)
        if batch.patch and perceptual is not None and weights.perceptual > 0:
            losses["perceptual"] = weights.perceptual * perceptual(as_patches(color, batch.patch),
                                                                   as_patches(target, batch.patch))
        return losses

    def shell_band(self, res: int) -> torch.Tensor:
        """[res]^3 float mask of the cells the shell can reach: depth within the shell around the prior
        surface (plus a cell), for the near-frontal views a talking head is filmed from."""
        c = self.config
        centres = occupancy.cell_points(res, self.prior.device)  # [res^3, 3] unit coords
        span = self.box_hi - self.box_lo
        head = self.box_lo + (centres + 1) / 2 * span
        from .shell import _lookup

        surface = _lookup(self.prior, centres[:, :2])
        cell = float(span[2]) / res
        band = (head[:, 2] >= surface - c.shell_front - cell) & (head[:, 2] <= surface + c.shell_back + cell)
        return band.view(res, res, res).float()

    def occupied_grid(self) -> torch.Tensor:
        """The occupied cells [G, G, G] bool samples are taken in: training's grid, or without gradients and with
        ``render_occupancy_grow`` set, the same densities grown by that many cells (kept until the grid changes)."""
        c = self.config
        if c.render_occupancy_grow is None or torch.is_grad_enabled():
            return self.occupied
        key = (c.render_occupancy_grow, self.occ_density.data_ptr(), self.occ_density._version, c.samples,
               c.occupancy_threshold)
        if self._render_grid is None or self._render_grid[0] != key:
            bin_length = (c.shell_front + c.shell_back) / c.samples
            self._render_grid = (key, occupancy.occupied_cells(self.occ_density, bin_length, c.occupancy_threshold,
                                                               c.render_occupancy_grow))
        return self._render_grid[1]

    def occupied_box(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Corners (lo, hi: [3], head frame) of the occupied cells' bounding box (the whole box if none)."""
        grid = self.occupied_grid()
        idx = grid.nonzero()
        if idx.numel() == 0:
            return self.box_lo, self.box_hi
        g = grid.shape[0]
        lo_u = idx.min(0).values.float() / g * 2 - 1
        hi_u = (idx.max(0).values.float() + 1) / g * 2 - 1
        span = self.box_hi - self.box_lo
        return self.box_lo + (lo_u + 1) / 2 * span, self.box_lo + (hi_u + 1) / 2 * span

    def head_rects(self, camera: Camera) -> np.ndarray:
        """Pixel rectangles [B, 4] int64 (x0, y0, x1, y1) of the projected occupied part of the head box."""
        key = (self.occupied.data_ptr(), self.occupied._version, self.box_lo._version, self.box_hi._version,
               self.occupied_grid() is self.occupied)
        if self._box_on_host is None or self._box_on_host[0] != key:  # read back once per occupancy update
            self._box_on_host = (key, tuple(t.cpu().numpy() for t in self.occupied_box()))
        lo, hi = self._box_on_host[1]
        rotation, translation = camera.poses_numpy()
        return np.array([project_box(r, t, camera.focal, camera.cx, camera.cy, lo, hi, camera.size, camera.size)
                         for r, t in zip(rotation, translation, strict=True)], np.int64).reshape(-1, 4)

    @torch.no_grad()
    def update_occupancy(self, cond: Conditioning, generator: torch.Generator | None, decay: float = 0.95) -> float:
        """Refresh the occupancy grid under K conditions (the mouths and expressions of ``cond``); returns
        the occupied share of cells."""
        c = self.config
        audio, expr = cond.mouth, cond.expressions
        pts = occupancy.cell_points(c.occupancy_res, self.occ_density.device, generator)  # [G^3, 3]
        best = torch.zeros(pts.shape[0], device=pts.device)
        for k in range(audio.shape[0]):
            for sl in torch.split(torch.arange(pts.shape[0], device=pts.device), 1 << 18):
                sig = self.field.density(pts[sl], audio[k].expand(len(sl), -1), expr[k].expand(len(sl), -1))
                best[sl] = torch.maximum(best[sl], sig.float())
        g = c.occupancy_res
        best = best.view(g, g, g) * self.shell_band(g)  # no sample ever lands outside the shell
        first = bool((self.occ_density >= 1e4).all())  # the start value: replace it, do not decay from it
        self.occ_density.copy_(best if first else torch.maximum(self.occ_density * decay, best))
        bin_length = (c.shell_front + c.shell_back) / c.samples
        self.occupied.copy_(occupancy.occupied_cells(self.occ_density, bin_length, c.occupancy_threshold,
                                                     c.occupancy_grow))
        return float(self.occupied.float().mean())
