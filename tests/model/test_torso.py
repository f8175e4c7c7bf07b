"""The torso field: it learns a body that moves with the head pose, composites over the plate, and
renders whole frames the way it is trained."""

import numpy as np
import pytest
import torch

from syncanim.config import TorsoTrainConfig
from syncanim.geometry import axis_angle_to_matrix
from syncanim.model.torso import TorsoArch, TorsoField, plane_resolutions, position_encoding
from syncanim.train.torso import fit_torso, person_boxes

S = 48


def _clip(n=60, seed=0, yaw=None):
    """A grey plate and a red 'body' block whose left edge follows the head's yaw (default: a slow sway);
    labels mark it as torso."""
    rng = np.random.default_rng(seed)
    if yaw is None:
        yaw = 0.1 * np.sin(np.arange(n) / 5.0) + 0.01 * rng.standard_normal(n)
    rotation = axis_angle_to_matrix(np.stack([np.zeros(n), yaw, np.zeros(n)], 1)).astype(np.float32)
    translation = np.tile(np.array([0.0, 0.0, 0.6], np.float32), (n, 1))
    plate = np.full((S, S, 3), 128, np.uint8)
    frames = np.repeat(plate[None], n, 0)
    labels = np.zeros((n, S, S), np.uint8)
    for k in range(n):
        x0 = int(round(16 + 80 * yaw[k]))
        frames[k, 28:, x0:x0 + 16] = (200, 40, 40)
        labels[k, 28:, x0:x0 + 16] = 1
    return frames, rotation, translation, plate, labels


def test_helpers():
    assert plane_resolutions(3, 16, 64) == [16, 32, 64] and plane_resolutions(1, 8, 64) == [8]
    pe = position_encoding(torch.rand(2, 5, 2), 3)
    assert pe.shape == (2, 5, 14)
    boxes = person_boxes(np.pad(np.ones((1, 4, 6), np.uint8), ((0, 0), (10, 10), (20, 4))), margin=2)
    assert boxes.tolist() == [[18, 8, 28, 16]]
    assert person_boxes(np.zeros((1, 5, 7), np.uint8), 1).tolist() == [[0, 0, 7, 5]]


def test_a_fresh_field_shows_the_plate_half_covered_and_renders_whole_frames():
    field = TorsoField(TorsoArch(image_size=S, levels=2, base_res=4, max_res=16, hidden=16))
    field.plate.fill_(255)
    img = field.render(torch.zeros(3, 6), chunk=1000)  # chunked rows join into whole frames
    assert img.shape == (3, S, S, 3) and torch.isfinite(img).all()
    assert torch.allclose(img[0], img[2])  # the same pose gives the same frame


@pytest.fixture(scope="module")
def fitted():
    frames, rot, trans, plate, labels = _clip()
    cfg = TorsoTrainConfig(steps=600, frames_per_step=4, pixels=2048, max_res=64, base_res=8, levels=3, hidden=32,
                           lr_planes=5e-2, lr_net=5e-3)
    field, report = fit_torso(torch.from_numpy(frames), rot, trans, plate, person_boxes(labels, 2), 50, cfg,
                              torch.Generator().manual_seed(0))
    return field, report, (frames, rot, trans)


def test_learns_a_body_that_follows_the_pose(fitted):
    field, report, (frames, rot, trans) = fitted
    # held-out frames, poses it never saw (25.6 dB with scene codes, the default; 26.1 without)
    assert report.holdout_psnr is not None and report.holdout_psnr > 24
    img = (field.render(field.codes(rot[50:], trans[50:])) * 255).round().byte().numpy()
    err = np.abs(img.astype(int) - frames[50:].astype(int)).mean()
    assert err < 8, err
    # the body's left edge moves with the yaw: render two different poses and find the edge
    lo, hi = int(np.argmin(rot[:, 0, 2] * 0 + _yaw(rot))), int(np.argmax(_yaw(rot)))
    pair = (field.render(field.codes(rot[[lo, hi]], trans[[lo, hi]]))[:, 40, :, 1] < 0.35).numpy()  # red: low green
    edges = [int(np.argmax(row)) for row in pair]
    assert edges[1] - edges[0] >= 8  # ~80 px per radian over a 0.2 rad swing


def _yaw(rot):
    return np.arctan2(rot[:, 0, 2], rot[:, 2, 2])


def test_background_stays_the_plate(fitted):
    field, _, (_, rot, trans) = fitted
    img = field.render(field.codes(rot[:2], trans[:2]))
    np.testing.assert_allclose(img[:, :20].numpy(), 128 / 255, atol=0.03)  # above the body: the plate


def test_render_over_other_backdrops(fitted):
    """``under`` replaces the plate: the plate itself gives the usual frame; a changed backdrop shows through
    where the body is transparent and not where it is opaque."""
    field, _, (frames, rot, trans) = fitted
    code = field.codes(rot[:2], trans[:2])
    plate = field.plate.float()[None].expand(2, -1, -1, -1) / 255
    assert torch.allclose(field.render(code, chunk=500, under=plate), field.render(code, chunk=700), atol=1e-6)
    white = torch.ones(2, S, S, 3)
    over = field.render(code, chunk=500, under=white)
    # background: the backdrop (a corner the fit rarely samples can keep a little of its first opacity)
    assert over[:, 2:10, 2:10].min() > 0.8
    x0 = int(round(16 + 80 * float(_yaw(rot[:1])[0])))
    body = over[0, 36:44, x0 + 4:x0 + 12]
    assert (body[..., 1] < 0.5).float().mean() > 0.8  # body: still the red block


def test_pose_codes_follow_a_new_normalisation():
    """Pose codes read the normalisation from a host copy, renewed when it changes (or a new state is loaded)."""
    _, rotation, translation, _, _ = _clip()
    field = TorsoField(TorsoArch(image_size=S))
    before = field.codes(rotation[:4], translation[:4])
    field.set_normalisation(rotation, translation)
    after = field.codes(rotation[:4], translation[:4])
    assert not torch.allclose(before, after)
    other = TorsoField(TorsoArch(image_size=S))
    other.codes(rotation[:4], translation[:4])  # its host copy, of the defaults
    other.load_state_dict(field.state_dict())
    assert torch.equal(other.codes(rotation[:4], translation[:4]), after)


def test_scene_codes_interpolate_between_knots_and_fold_into_the_last_frame():
    from syncanim.train.torso import SceneCodes

    scenes = SceneCodes(num_train=101, spacing=50, dim=3, hidden=8)
    assert len(scenes.knots) == 3  # frames 0, 50, 100
    with torch.no_grad():
        scenes.knots.copy_(torch.tensor([[0.0, 0, 0], [1, 2, 3], [3, 2, 1]]))
    off, col = scenes(torch.tensor([0, 25, 50, 75, 100, 500]))
    code = torch.tensor([[0.0, 0, 0], [0.5, 1, 1.5], [1, 2, 3], [2, 2, 2], [3, 2, 1], [3, 2, 1]])
    assert torch.allclose(off, code @ scenes.maps[0]) and torch.allclose(col, code @ scenes.maps[1])
    field = TorsoField(TorsoArch(image_size=S, levels=2, base_res=4, max_res=16, hidden=8))
    torch.nn.init.normal_(field.offset[-1].weight)  # a fresh offset MLP outputs 0: make its shift matter
    xy, pose = torch.rand(2, 30, 2), torch.randn(2, 6)
    shifted = field.composite(xy, pose, torch.zeros(2, 30, 3), scenes(torch.tensor([100, 100])))
    assert not torch.allclose(field.composite(xy, pose, torch.zeros(2, 30, 3)), shifted, atol=1e-4)
    scenes.fold_last(field)
    assert torch.allclose(field.composite(xy, pose, torch.zeros(2, 30, 3)), shifted, atol=1e-6)
    one = SceneCodes(num_train=1, spacing=50, dim=3, hidden=8)  # one training frame: its own knot is folded
    with torch.no_grad():
        one.knots.copy_(torch.tensor([[1.0, 2, 3], [9, 9, 9]]))
    assert torch.allclose(one(torch.tensor([0]))[0], one.knots[:1] @ one.maps[0])
    before = field.offset[0].bias.clone()
    one.fold_last(field)
    assert torch.allclose(field.offset[0].bias - before, (one.knots[0] @ one.maps[0]).detach())


def test_scene_codes_let_the_body_change_through_the_clip_and_render_the_last_scene():
    """The body is red for the first half of the clip and blue from frame 30 on, whatever the pose (poses drawn
    at random): one field must mix the two; with scene codes it renders the body as the clip ends, held-out
    frames included."""
    torch.manual_seed(0)  # the MLPs' initial weights
    yaw = np.random.default_rng(1).uniform(-0.1, 0.1, 60)
    frames, rot, trans, plate, labels = _clip(yaw=yaw)
    frames[30:][labels[30:] == 1] = (40, 40, 200)
    cfg = TorsoTrainConfig(steps=400, frames_per_step=4, pixels=2048, max_res=32, base_res=8, levels=2, hidden=32,
                           lr_planes=5e-2, lr_net=5e-3)
    held, blue = {}, {}
    for spacing in (0, 10):
        field, report = fit_torso(torch.from_numpy(frames), rot, trans, plate, person_boxes(labels, 2), 50,
                                  cfg.model_copy(update={"scene_frames": spacing}), torch.Generator().manual_seed(0))
        held[spacing] = report.holdout_psnr
        assert report.scene_frame == (49 if spacing else None)  # model.json records the scene rendered
        img = field.render(field.codes(rot[50:], trans[50:])) * 255  # [10, S, S, 3]
        body = torch.from_numpy(labels[50:] == 1)
        blue[spacing] = float((img[..., 2] - img[..., 0])[body].mean())  # blue minus red over the body
    assert blue[10] > 100 and blue[0] < 60, blue  # the truth: 160
    assert held[10] > held[0] + 6, held  # 23.6 against 11.7 dB


def test_one_seed_fits_one_torso_whatever_the_global_generator():
    frames, rot, trans, plate, labels = _clip(n=20)
    cfg = TorsoTrainConfig(steps=5, frames_per_step=2, pixels=256, max_res=16, base_res=4, levels=2, hidden=8)

    def fit(global_seed, seed=0):
        torch.manual_seed(global_seed)
        field, _ = fit_torso(torch.from_numpy(frames), rot, trans, plate, person_boxes(labels, 2), 16, cfg,
                             torch.Generator().manual_seed(seed))
        return field.state_dict()

    a, b, c = fit(1), fit(2), fit(1, seed=1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)  # another seed, another torso
