"""The learning loop's fitting: deterministic under a seed, cancellable, backbone untouched, negatives learned."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from annotator.build import build_model
from annotator.inference.learning import (
    Alignment,
    Cancelled,
    LearningConfig,
    balanced,
    fit_head,
    gap_floor,
    head_samples,
    learn,
    pixel_sample,
    pixels_per_image,
    scene_groups,
)
from annotator.inference.predictor import Predictor
from annotator.modeling.prototypes import scene_descriptor
from tests.synthetic import scene


def _features(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random unit-norm features [n,64,12,12] where a square region has a shifted direction, and its masks."""
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, 64, 12, 12, generator=g)
    masks = torch.zeros(n, 48, 48)
    masks[:, 12:36, 12:36] = 1.0
    feats[:, :8, 3:9, 3:9] += 3.0
    return torch.nn.functional.normalize(feats, dim=1), masks


def test_fitting_is_deterministic_under_a_seed():
    feats, masks = _features(3)
    cfg = LearningConfig(samples_per_image=20)  # fewer than the pixels: the seed decides which are drawn
    a = learn(feats, masks, cfg).head.conv.weight
    b = learn(feats, masks, cfg).head.conv.weight
    c = learn(feats, masks, cfg.changed(seed=1)).head.conv.weight
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_the_folders_pixels_are_sampled_image_by_image_as_from_all_of_them_at_once():
    feats = [f.half() for f in _features(3)[0]]
    pixels = torch.stack(feats).float().permute(0, 2, 3, 1).reshape(-1, 64)  # every pixel of the folder, one a row
    drawn = pixel_sample(feats, 100, torch.Generator().manual_seed(5))
    assert torch.equal(drawn, pixels[torch.randperm(len(pixels), generator=torch.Generator().manual_seed(5))[:100]])
    assert len(torch.unique(drawn, dim=0)) == 100  # without replacement
    assert len(pixel_sample(feats, 10**6, torch.Generator())) == len(pixels)


def test_the_folder_terms_of_the_fit_are_deterministic_and_change_it():
    """PAR and the FixMatch-style consistency learn from the folder's images (features, probability)."""
    feats, masks = _features(3)
    folder = list(zip(*_features(4, seed=1)))
    base = LearningConfig(samples_per_image=20, entropy=False)
    plain = learn(feats, masks, base, pseudo=folder).head.conv.weight
    for cfg in (base.changed(alignment=1.0), base.changed(consistency=1.0)):
        a = learn(feats, masks, cfg, pseudo=folder).head.conv.weight
        assert torch.equal(a, learn(feats, masks, cfg, pseudo=folder).head.conv.weight)
        assert not torch.equal(a, plain)


def test_par_fits_the_head_so_that_what_it_finds_in_the_folder_segments_the_supports():
    feats, masks = _features(2)
    qf, _ = _features(3, seed=2)
    gen = torch.Generator().manual_seed(0)
    x, y, w = head_samples(feats, masks, 40, gen)
    w = balanced(w, y)
    align = Alignment(pixels_per_image(list(qf), 64, gen), torch.nn.functional.normalize(x, dim=1), y, w / 2)
    cfg = LearningConfig(alignment=1.0, head_l2=1e-2)  # a strong L2: the labelled pixels alone fit it loosely
    plain, aligned = fit_head(x, y, w, cfg), fit_head(x, y, w, cfg, alignment=align)
    assert align.loss(aligned) < 0.8 * align.loss(plain)


def test_fitting_can_be_cancelled():
    feats, masks = _features(2)
    calls = []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        learn(feats, masks, LearningConfig(head_steps=200), cancelled=cancelled)
    assert len(calls) == 4  # stopped at the first check after the request, not at the end


def test_the_head_separates_the_supports_pixels():
    feats, masks = _features(2)
    head = learn(feats, masks, LearningConfig()).head
    logits = head(feats)
    inside, outside = logits[:, 3:9, 3:9], logits[:, 10:, 10:]
    assert (inside > 0).float().mean() > 0.95 and (outside < 0).float().mean() > 0.95


@pytest.fixture(scope="module")
def ball_and_decoy():
    """A red ball (support), and class-free scenes with a red square decoy (one is given as a negative)."""
    sup = scene(120, 160, (60, 70), 28, seed=10)
    decoys = []
    for seed, (x, y) in ((60, (30, 20)), (61, (90, 50))):
        img, _ = scene(120, 160, None, 0, seed=seed)
        img[y : y + 40, x : x + 40] = (210, 30, 25)
        decoys.append(img)
    return sup, decoys


def test_a_negative_comes_back_empty_and_a_similar_image_loses_its_false_foreground(ball_and_decoy):
    predictor = Predictor(build_model(), device="cpu", crf=None)
    (img, mask), (neg, similar) = ball_and_decoy
    before = [p.mask.mean() for p in (predictor.set_supports([(img, mask)]) or predictor.predict([neg, similar]))]
    weights = {k: v.clone() for k, v in predictor.model.state_dict().items()}
    predictor.set_supports([(img, mask)], negatives=[(neg, np.ones(neg.shape[:2], bool))])
    after = [p.mask.mean() for p in predictor.predict([neg, similar])]
    assert min(before) > 0.03, before  # the red square is taken for the ball without the negative
    assert after[0] < 0.005 and after[1] < before[1] / 3, (before, after)
    assert predictor.learned.summary() == "learned from 1 mask and 1 rejection"
    assert all(torch.equal(v, predictor.model.state_dict()[k]) for k, v in weights.items())  # backbone untouched
    ball = predictor.predict([scene(120, 160, (100, 50), 25, seed=12)[0]])[0]
    assert ball.mask.mean() > 0.05  # and the class is still found


def test_the_presence_gap_needs_two_groups_and_a_wide_enough_gap():
    # a folder with the class (0.95-0.99) and without (0.70-0.80): the floor falls in the gap between them
    assert gap_floor([0.0, 0.70, 0.75, 0.80, 0.95, 0.97, 0.99], 0.05) == pytest.approx(0.875)
    # one low outlier is not a group; a spread without a wide gap has no floor; images with no foreground are ignored
    assert gap_floor([0.5, 0.95, 0.96, 0.97], 0.05) == 0.0
    assert gap_floor([0.80, 0.83, 0.86, 0.89, 0.92], 0.05) == 0.0
    assert gap_floor([0.0, 0.0, 0.0, 0.95], 0.05) == 0.0


def test_the_head_decides_alone_from_as_many_supports_as_configured():
    feats, masks = _features(3)
    assert learn(feats[:1], masks[:1], LearningConfig()).head_alone  # the default: from the first support on
    assert not learn(feats[:1], masks[:1], LearningConfig(head_alone_from=2)).head_alone  # added to PANet's logits
    assert learn(feats[:2], masks[:2], LearningConfig(head_alone_from=2)).head_alone
    assert not learn(feats[:2], masks[:2], LearningConfig(head_alone_from=0)).head_alone


def test_the_close_head_decides_on_the_supports_scenes_and_the_regularised_one_elsewhere():
    feats, masks = _features(3)
    learned = learn(feats[:2], masks[:2], LearningConfig(entropy=False))
    assert learned.head is not learned.other_head and len(learned.bg)  # both heads, and prototypes to add one to
    # the stronger L2 of the other head keeps its weights smaller
    assert learned.other_head.conv.weight.norm() < learned.head.conv.weight.norm()
    assert learned.head_for(scene_descriptor(feats[:1])[0]) == (learned.head, True)  # a support's own scene
    other = torch.nn.functional.normalize(torch.randn(1, 64, 12, 12, generator=torch.Generator().manual_seed(5)), dim=1)
    other[:, 8:16] += 1.0  # another scene: another mean direction
    assert learned.head_for(scene_descriptor(other)[0]) == (learned.other_head, False)
    everywhere = learn(feats[:2], masks[:2], LearningConfig(entropy=False, same_scene=0.0))
    assert everywhere.other_head is None and everywhere.head_for(scene_descriptor(other)[0]) == (everywhere.head, True)


def test_supports_linked_by_a_chain_of_alike_scenes_form_one_group():
    a, b = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), dim=1)
    ab = torch.nn.functional.normalize(a + b, dim=0)  # alike to both (cosine 0.71), which are not alike (0)
    scenes = torch.stack([a, b, ab, torch.tensor([0.0, 0.0, 1.0])])
    assert scene_groups(scenes, 0.7).tolist() == [0, 0, 0, 3]  # a-ab-b chained; the fourth alone
    assert scene_groups(scenes, 0.9).tolist() == [0, 1, 2, 3]


def _scene(n: int, channels: slice, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n frames of one scene: _features' images with `channels` raised everywhere (their mean direction)."""
    feats, masks = _features(n, seed)
    feats[:, channels] += 1.0
    return torch.nn.functional.normalize(feats, dim=1), masks


def test_a_scene_with_enough_supports_gets_its_own_close_head():
    video, video_masks = _scene(3, slice(16, 24), seed=1)  # a video's frames: two supports and a query
    single, single_masks = _scene(1, slice(32, 40), seed=2)  # another video, one support ...
    look_alike = video[:1, :, 3:9, 3:9].mean((2, 3))[..., None, None]  # the video's object's mean feature ...
    single[:, :, 9:12, :] = look_alike  # ... in the other's background (spectators dressed as the dancer)
    feats, masks = torch.cat([video[:2], single]), torch.cat([video_masks[:2], single_masks])
    learned = learn(feats, masks, LearningConfig(entropy=False, scene_heads_from=2))
    ((members, own_head),) = learned.scene_heads  # the one group of at least 2 supports
    assert members.tolist() == [True, True, False]
    assert learned.head_for(scene_descriptor(video[2:])[0]) == (own_head, True)  # the video's other frame
    assert learned.head_for(scene_descriptor(single)[0]) == (learned.head, True)  # one support: the shared one
    other, _ = _scene(1, slice(48, 56), seed=3)
    assert learned.head_for(scene_descriptor(other)[0]) == (learned.other_head, False)
    # the video's own head, not taught by the other video's look-alike background, is surer of its object
    x = video[2].permute(1, 2, 0).reshape(-1, 64)
    y = torch.nn.functional.interpolate(video_masks[2:, None], size=(12, 12), mode="area").reshape(-1) > 0.5
    found = {h: float(torch.sigmoid(h.pixels(x[y])).mean()) for h in (own_head, learned.head)}
    assert found[own_head] > found[learned.head] + 0.1, list(found.values())  # measured 0.99 against 0.84
    off = learn(feats, masks, LearningConfig(entropy=False, scene_heads_from=0))
    assert off.scene_heads == () and off.head_for(scene_descriptor(video[2:])[0]) == (off.head, True)
    every = learn(video[:2], video_masks[:2], LearningConfig(entropy=False, scene_heads_from=2))
    assert every.scene_heads == ()  # all supports in one group: the close head is already theirs


def test_the_presence_floor_spares_the_supports_own_scenes_where_the_close_head_decides():
    feats, masks = _features(3)
    learned = learn(feats[:2], masks[:2], LearningConfig(entropy=False))
    learned.presence_floor = 0.9
    other = torch.nn.functional.normalize(torch.randn(1, 64, 12, 12, generator=torch.Generator().manual_seed(5)), dim=1)
    other[:, 8:16] += 1.0
    # a video's other frame, where the user drew the class: its close head decides, not the negatives' floor
    assert learned.floor_for(learned.head_for(scene_descriptor(feats[:1])[0])[1]) == 0.0
    assert learned.floor_for(learned.head_for(scene_descriptor(other)[0])[1]) == 0.9  # another scene keeps the floor
    kept = learn(feats[:2], masks[:2], LearningConfig(entropy=False, floor_own_scenes=True))
    kept.presence_floor = 0.9
    assert kept.floor_for(kept.head_for(scene_descriptor(feats[:1])[0])[1]) == 0.9
    single = learn(feats[:2], masks[:2], LearningConfig(entropy=False, same_scene=0.0))  # no scenes: floor everywhere
    single.presence_floor = 0.9
    assert single.floor_for(True) == 0.9
