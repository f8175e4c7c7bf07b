"""Whole frames from a head model: the compact and dense layouts give the same images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from syncanim.bench import synthetic as syn
from syncanim.model.camera import Camera
from syncanim.model.conditioning import Conditioning
from syncanim.model.frames import DenseRects, compact_rays, dense_rays, fixed_rects, from_uint8, to_uint8
from syncanim.model.head import NerfHeadConfig

SMALL = NerfHeadConfig(levels=4, log2_table=12, max_res=64, samples=8, hidden=16, audio_dim=8, geo_dim=4,
                       occupancy_res=16, prior_res=32)


@pytest.fixture(scope="module")
def scene():
    """A random head with an opaque shell (the back half of some rays is skipped), three poses whose
    rectangles differ, and their conditioning and backgrounds."""
    model, canonical = syn.synthetic_model(SMALL, 4, 80)
    with torch.no_grad():
        model.field.density_net[-1].bias[0] += 4
    cam, dist = syn.synthetic_camera(96, canonical)
    rot, trans = syn.synthetic_poses(250, dist)
    sel = [0, 60, 130]
    camera = Camera.from_numpy(rot[sel], trans[sel], cam.focal, cam.cx, cam.cy, 96, "cpu")
    g = torch.Generator().manual_seed(0)
    cond = Conditioning(torch.randn(3, 8, generator=g), torch.rand(3, 3, generator=g), model.latent_for(None, 3))
    return model, camera, cond, torch.rand(3, 96, 96, 3, generator=g)


def test_dense_layout_renders_the_compact_images(scene):
    model, camera, cond, bg = scene
    rects = model.head_rects(camera)
    compact = model.render_frames(camera, cond, bg)
    layout = DenseRects.covering(rects, 96, "cpu")
    dense = model.render_frames(camera, cond, bg, dense=layout, chunk=1500)
    assert (rects[:, 2] - rects[:, 0]).min() < layout.width  # the fixed rectangle is larger than some frames'
    assert compact.opacity.max() > 0.5
    assert compact.opacity[0, : rects[0, 1]].max() == 0  # nothing above the head's rectangle
    # the same samples through the same field; only the MLP batch sizes differ (float rounding)
    torch.testing.assert_close(dense.images, compact.images, atol=1e-5, rtol=0)
    torch.testing.assert_close(dense.opacity, compact.opacity, atol=1e-5, rtol=0)


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_a_capacity_evaluates_only_the_wanted_points_and_says_how_many(scene, parts):
    """Compacted into fixed-size slots, the wanted samples give the compact images; a capacity too small is
    seen in the counts, never silently."""
    model, camera, cond, bg = scene
    base = model.config
    try:
        model.config = base.model_copy(update={"march_parts": parts})
        compact = model.render_frames(camera, cond, bg)
        layout = DenseRects.covering(model.head_rects(camera), 96, "cpu")
        every = model.render_frames(camera, cond, bg, dense=layout)
        wanted = every.points
        assert wanted.shape == (parts,) and int(wanted[0]) > 0
        room = DenseRects(layout.width, layout.height, layout.offsets, tuple(int(n) + 7 for n in wanted))
        roomy = model.render_frames(camera, cond, bg, dense=room)
        tight = DenseRects(layout.width, layout.height, layout.offsets, tuple(max(1, int(n) // 2) for n in wanted))
        short = model.render_frames(camera, cond, bg, dense=tight)
    finally:
        model.config = base
    torch.testing.assert_close(roomy.images, compact.images, atol=1e-5, rtol=0)
    torch.testing.assert_close(roomy.opacity, compact.opacity, atol=1e-5, rtol=0)
    assert torch.equal(roomy.points, wanted)
    # too little room: the first run's count still says how many it wanted, and the image lacks points
    assert int(short.points[0]) == int(wanted[0])
    assert (short.points > torch.tensor(tight.capacity)).any()
    assert (short.images - compact.images).abs().max() > 1e-3


def test_compact_slots_keep_order_and_count():
    from syncanim.model.compaction import compact_slots

    mask = torch.tensor([0, 1, 1, 0, 0, 1, 0, 1], dtype=torch.bool)
    index, valid, count = compact_slots(mask, 6)
    assert index.tolist() == [1, 2, 5, 7, 0, 0] and valid.tolist() == [True] * 4 + [False] * 2 and int(count) == 4
    index, valid, count = compact_slots(mask, 2)  # too few slots: the first entries, and the true count
    assert index.tolist() == [1, 2] and valid.all() and int(count) == 4
    index, valid, count = compact_slots(torch.zeros(5, dtype=torch.bool), 3)
    assert int(count) == 0 and not valid.any()


def test_chunking_does_not_change_the_images(scene):
    model, camera, cond, bg = scene
    whole = model.render_frames(camera, cond, bg)
    chunked = model.render_frames(camera, cond, bg, chunk=1000)
    # the same rays in smaller field batches: float rounding at most
    torch.testing.assert_close(chunked.images, whole.images, atol=1e-5, rtol=0)


def test_dense_rays_cover_each_rectangle_row_major():
    rot = torch.eye(3).expand(2, 3, 3)
    trans = torch.tensor([[0.0, 0.0, 1.0]] * 2)
    camera = Camera(rot, trans, 50.0, 16.0, 16.0, 32)
    layout = DenseRects(3, 2, torch.tensor([[1, 4], [10, 0]]))
    rays = dense_rays(camera, layout)
    assert rays.xy.tolist()[:6] == [[1, 4], [2, 4], [3, 4], [1, 5], [2, 5], [3, 5]]
    assert rays.xy.tolist()[6] == [10, 0] and rays.frame.tolist() == [0] * 6 + [1] * 6
    assert rays.origins.shape == rays.dirs.shape == (12, 3)


def test_fixed_rects_stay_inside_the_image():
    rects = np.array([[0, 0, 10, 12], [50, 40, 64, 64], [20, 20, 28, 30]])
    (w, h), off = fixed_rects(rects, 64)
    assert (w, h) == (14, 24)
    assert (off >= 0).all() and (off[:, 0] + w <= 64).all() and (off[:, 1] + h <= 64).all()
    layout = DenseRects.covering(rects, 64, "cpu")
    assert (layout.width, layout.height, layout.pixels) == (14, 24, 14 * 24)
    assert layout[[2]].offsets.tolist() == off[[2]].tolist()


def test_uint8_round_trip():
    img = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)
    x = from_uint8(img, "cpu")
    assert x.dtype == torch.float32 and float(x.max()) <= 1.0
    np.testing.assert_array_equal(to_uint8(x).numpy(), img)
    assert to_uint8(torch.tensor([-0.5, 0.5, 2.0])).tolist() == [0, 128, 255]


def test_shapes_are_checked_at_the_boundary(scene):
    model, camera, cond, bg = scene
    with pytest.raises(AssertionError, match="rotation must be"):
        Camera(torch.eye(3), torch.zeros(3), 1.0, 0.0, 0.0, 8)
    with pytest.raises(AssertionError, match="same B"):
        Conditioning(torch.zeros(2, 8), torch.zeros(3, 3), torch.zeros(2, 4))
    with pytest.raises(AssertionError, match="backgrounds must be"):
        model.render_frames(camera, cond, bg[:, :64])
    assert len(cond[torch.tensor([2, 0])]) == 2 and torch.equal(cond[1:].mouth, cond.mouth[1:])


def test_march_runs_cover_the_samples_in_order():
    from syncanim.model.head import march_runs

    assert march_runs(16, 2) == [slice(0, 8), slice(8, 16)]
    assert march_runs(8, 1) == [slice(0, 8)]
    runs = march_runs(10, 4)
    assert runs[0].start == 0 and runs[-1].stop == 10 and len(runs) == 4
    assert all(a.stop == b.start for a, b in zip(runs[:-1], runs[1:], strict=True))
    assert len(march_runs(3, 8)) == 3  # never an empty run


@pytest.mark.parametrize("parts", [1, 4, 8])
def test_marching_in_more_runs_skips_only_invisible_samples(scene, parts):
    model, camera, cond, bg = scene
    base = model.config
    try:
        model.config = base.model_copy(update={"march_parts": 1})
        everything = model.render_frames(camera, cond, bg)
        model.config = base.model_copy(update={"march_parts": parts})
        marched = model.render_frames(camera, cond, bg)
        layout = DenseRects.covering(model.head_rects(camera), 96, "cpu")
        dense = model.render_frames(camera, cond, bg, dense=layout)
    finally:
        model.config = base
    # a skipped run sits behind transmittance <= 1e-4: it could change a colour by at most that much
    torch.testing.assert_close(marched.images, everything.images, atol=2e-4, rtol=0)
    torch.testing.assert_close(dense.images, marched.images, atol=1e-5, rtol=0)


def test_a_frame_alone_renders_as_in_a_batch(scene):
    """One frame's conditioning is broadcast to its samples, a batch's gathered: the same image."""
    model, camera, cond, bg = scene
    together = model.render_frames(camera, cond, bg)
    for i in range(len(cond)):
        one = Camera(camera.rotation[i:i + 1], camera.translation[i:i + 1], camera.focal, camera.cx, camera.cy,
                     camera.size)
        alone = model.render_frames(one, cond[i:i + 1], bg[i:i + 1])
        torch.testing.assert_close(alone.images[0], together.images[i], atol=1e-5, rtol=0)


def test_head_rects_follow_the_occupancy(scene):
    """The occupied box is read back once per occupancy change: rects shrink with it, and grow back."""
    model, camera, _, _ = scene
    whole = model.head_rects(camera)
    with torch.no_grad():
        g = model.occupied.shape[0]
        model.occupied.fill_(False)
        model.occupied[: g // 2, : g // 2] = True  # the lower x and y half of the box
    half = model.head_rects(camera)
    assert ((half[:, 2] - half[:, 0]) < (whole[:, 2] - whole[:, 0])).all()
    with torch.no_grad():
        model.occupied.fill_(True)
    np.testing.assert_array_equal(model.head_rects(camera), whole)


def test_rendering_can_grow_the_occupied_cells_less_than_training(scene):
    """``render_occupancy_grow``: the grid is recomputed from the kept densities for rendering only; the trained
    growth gives the trained grid back, less growth fewer cells and field points, and training keeps its grid."""
    from syncanim.model import occupancy

    model, camera, cond, bg = scene
    base, saved = model.config, (model.occ_density.clone(), model.occupied.clone())
    c = base
    bin_length = (c.shell_front + c.shell_back) / c.samples
    try:
        with torch.no_grad():  # a head-shaped density: a ball in the box
            pts = occupancy.cell_points(c.occupancy_res, torch.device("cpu")).view(*model.occupied.shape, 3)
            model.occ_density.copy_((pts.norm(dim=-1) < 0.6).float() * 10.0)
            model.occupied.copy_(occupancy.occupied_cells(model.occ_density, bin_length, c.occupancy_threshold,
                                                          c.occupancy_grow))
            trained = model.render_frames(camera, cond, bg)
        model.config = base.model_copy(update={"render_occupancy_grow": c.occupancy_grow})
        with torch.no_grad():
            assert torch.equal(model.occupied_grid(), model.occupied)
        model.config = base.model_copy(update={"render_occupancy_grow": 0})
        with torch.no_grad():
            tight = model.occupied_grid()
            layout = DenseRects.covering(model.head_rects(camera), 96, "cpu")
            fewer = model.render_frames(camera, cond, bg, dense=layout)
        assert model.occupied_grid() is model.occupied  # with gradients (training): the trained grid
        assert tight.sum() < model.occupied.sum() and not (tight & ~model.occupied).any()
        model.config = base
        with torch.no_grad():
            grown = model.render_frames(camera, cond, bg, dense=DenseRects.covering(model.head_rects(camera), 96, "cpu"))
    finally:
        model.config = base
        with torch.no_grad():
            model.occ_density.copy_(saved[0])
            model.occupied.copy_(saved[1])
    assert int(fewer.points.sum()) < int(grown.points.sum())
    assert trained.opacity.max() > 0.5


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("code", ["mouth", "expressions"])
def test_the_codes_act_only_inside_their_boxes(scene, code, training):
    """Outside the speech box the field reads the average mouth, outside the expression box the typical
    expressions: with a box that holds no point, two different codes give the same frames, when rendering and
    (``region_training``) when training; the head box as the box gives them back their difference, and so does
    switching the region off."""
    model, camera, cond, bg = scene
    base = model.config
    box_name, switch = {"mouth": ("speech_box", "speech_region"), "expressions": ("expression_box",
                                                                                  "expression_region")}[code]
    box = getattr(model, box_name)
    saved = box.clone()
    if code == "mouth":  # far from it: a difference to see
        other = Conditioning(-20 * cond.mouth, cond.expressions, cond.latent)
    else:
        other = Conditioning(cond.mouth, 20 * cond.expressions.flip(0) + 1, cond.latent)

    rays = compact_rays(camera, model.head_rects(camera))
    behind = bg[rays.frame, rays.xy[:, 1], rays.xy[:, 0]]

    def frames(c):  # the rays' colours, as training (with gradients) or rendering draws them
        with torch.set_grad_enabled(training):
            out = model.render_rays(rays.origins, rays.dirs, rays.frame, c, behind)
        assert out["color"].requires_grad == training
        return out["color"].detach()

    try:
        model.config = base.model_copy(update={switch: True, "region_training": training})
        with torch.no_grad():
            box.copy_(torch.tensor([[2.0, 2.0, 2.0], [3.0, 3.0, 3.0]]))  # beyond the unit box
        torch.testing.assert_close(frames(other), frames(cond), atol=1e-6, rtol=0)
        with torch.no_grad():
            box.copy_(torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
        assert (frames(other) - frames(cond)).abs().max() > 1e-3
        model.config = base.model_copy(update={switch: False, "region_training": False})
        with torch.no_grad():
            box.copy_(torch.tensor([[2.0, 2.0, 2.0], [3.0, 3.0, 3.0]]))
        assert (frames(other) - frames(cond)).abs().max() > 1e-3  # switched off: the code acts everywhere
    finally:
        model.config = base
        with torch.no_grad():
            box.copy_(saved)


def test_a_model_saved_without_the_expression_box_loads_with_the_codes_everywhere(scene):
    """Weights saved before the expression box was kept: their speech box loads, the expression box holds every
    point, each buffer is its own (loading one box must not write the other, nor the default)."""
    from syncanim.model.head import EXPRESSIONS, WHOLE_BOX, NerfHead

    model = scene[0]
    whole = WHOLE_BOX.copy()
    state = {k: v for k, v in model.state_dict().items() if k not in ("expression_box", "expression_rest")}
    fresh = NerfHead(model.config, 4, 80, 1, (model.config.mouth.components, model.mouth_mean.numel() // 3))
    fresh.load_state_dict(state)
    assert torch.equal(fresh.speech_box, model.speech_box)
    assert torch.equal(fresh.expression_box, torch.from_numpy(whole))
    assert torch.equal(fresh.expression_rest, torch.zeros(len(EXPRESSIONS)))
    np.testing.assert_array_equal(WHOLE_BOX, whole)
