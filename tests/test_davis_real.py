"""PANet on real photographs (the shared DAVIS frames): a car from one video found in another."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.inference.crf import CRFParams, refine
from annotator.io.imageio import read_image, read_mask
from benchmarks import davis

pytestmark = pytest.mark.skipif(not davis.available(), reason=davis.ABSENT)


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.fixture(scope="module")
def car_episode(predictor):
    img, mask = (f(p) for f, p in zip((read_image, read_mask), davis.frames("car-roundabout")[0]))
    predictor.set_supports([(img, mask)])
    queries = [davis.frames("car-shadow")[i] for i in (0, 3, 6)]
    return [(read_image(i), read_mask(m)) for i, m in queries]


def test_one_shot_car_across_videos(predictor, car_episode):
    ious = [_iou(predictor.predict([im])[0].mask, gt) for im, gt in car_episode]
    # Measured 0.79 (0.81, 0.82, 0.76) with the default PANet (conv4_3 + conv5_3, 5 background prototypes,
    # self-prototype pass) and the offline VGG-16 at 417 px; plain PANet gave 0.64. The floor sits below.
    assert np.mean(ious) > 0.74, ious


def test_a_presence_threshold_empties_a_class_free_image_and_keeps_the_cars(predictor, car_episode):
    cars = [predictor.predict([im])[0] for im, _ in car_episode]
    seq = davis.frames("camel")
    camel = predictor.predict([read_image(seq[len(seq) // 2][0])])[0]
    # Measured: cars 0.98, 0.98, 0.97; the camel frame 0.48 (0.03% of its pixels proposed) before the fitted
    # head, and no pixel at all with it (an empty proposal has no score: judged absent). The app's presence
    # threshold set to 0.6 therefore returns the camel frame empty and keeps every car.
    camel_score = 0.0 if camel.score is None else camel.score
    assert min(c.score for c in cars) > 0.9 and camel_score < 0.6, ([c.score for c in cars], camel.score)
    assert camel.mask.mean() < 0.005


def test_crf_sharpens_the_real_proposals(predictor, car_episode):
    ious, ious_crf = [], []
    for im, gt in car_episode:
        prob, _ = predictor.match(predictor.encode([im])[0], im.shape[:2])
        ious.append(_iou(prob > 0.5, gt))
        ious_crf.append(_iou(refine(im, prob, CRFParams()) > 0.5, gt))
    # Measured 0.82 (0.89, 0.82, 0.77) with the CRF against 0.79 (0.81, 0.82, 0.76) without.
    assert np.mean(ious_crf) > 0.77, ious_crf
    assert np.mean(ious_crf) > np.mean(ious), (ious, ious_crf)


def test_presence_ranks_cars_above_other_classes(predictor, car_episode):
    cars = [predictor.match(predictor.encode([im])[0], im.shape[:2])[1] for im, _ in car_episode]
    others = [
        predictor.match(predictor.encode([im])[0], im.shape[:2])[1]
        for im in (read_image(davis.frames(seq)[k][0]) for seq, k in (("dog", 5), ("blackswan", 0), ("breakdance", 0)))
    ]
    # Measured: cars 0.98, 0.98, 0.97; dog 0.71, swan 0.73, dancer 0.87 (the benchmark's AUROC is 0.85).
    assert min(cars) > max(others), (cars, others)


def test_a_rejected_frame_comes_back_empty_and_similar_frames_lose_their_false_foreground():
    from annotator.build import build_model
    from annotator.inference.predictor import Predictor

    predictor = Predictor(build_model(), device="cpu", crf=None)
    support = tuple(f(p) for f, p in zip((read_image, read_mask), davis.frames("car-roundabout")[0]))
    scooter = [read_image(davis.frames("scooter-black")[i][0]) for i in (2, 3)]  # no car in them
    cars = [tuple(f(p) for f, p in zip((read_image, read_mask), davis.frames("car-shadow")[i])) for i in (0, 3, 6)]
    predictor.set_supports([support])
    before = [p.mask.mean() for p in predictor.predict(scooter)]
    predictor.set_supports([support], negatives=[(scooter[0], np.ones(scooter[0].shape[:2], bool))])
    after = [p.mask.mean() for p in predictor.predict(scooter)]
    ious = [_iou(p.mask, gt) for p, (_, gt) in zip(predictor.predict([im for im, _ in cars]), cars)]
    # Measured: false foreground 14.3% and 16.3% before; 0.0% and 0.0% once frame 10 is a negative (the
    # presence floor learned from it, 0.90, is above both), and the cars' IoU 0.83 (0.83, 0.84, 0.81).
    assert min(before) > 0.1, before
    assert after[0] < 0.005 and after[1] < before[1] / 4, (before, after)
    assert np.mean(ious) > 0.74, ious


def test_a_partial_negative_of_a_frame_that_shows_the_class_does_not_raise_the_presence_floor():
    """`--negative IMAGE:MASK`: only the region is not the class, and the rest of the image may show it. Its
    presence is scored inside the region: the whole frame's (its car found, 0.99) had set the floor at its cap,
    0.95, above the drift video's cars (0.87-0.95), which then came back empty."""
    from annotator.build import build_model
    from annotator.inference.predictor import Predictor

    predictor = Predictor(build_model(), device="cpu", crf=None)
    frames = davis.frames("car-roundabout")
    support = tuple(f(p) for f, p in zip((read_image, read_mask), frames[0]))
    image, car = read_image(frames[8][0]), read_mask(frames[8][1])
    region = np.zeros(car.shape, bool)
    region[: car.shape[0] // 3] = True  # the top third, the car left out: background
    region &= ~car
    drift = [tuple(f(p) for f, p in zip((read_image, read_mask), fm)) for fm in davis.frames("drift-straight")[::4]]
    predictor.set_supports([support])
    before = [p.score for p in predictor.predict([im for im, _ in drift])]
    predictor.set_supports([support], negatives=[(image, region)])
    after = predictor.predict([im for im, _ in drift])
    # Measured: the floor 0.0 (0.95 when the whole frame's presence was scored); the drift cars at 0.87-0.95.
    assert predictor.learned.presence_floor < min(s for s in before if s), (predictor.learned.presence_floor, before)
    assert all(not p.empty for p in after), [p.score for p in after]


def test_the_folders_own_presence_gap_empties_class_free_frames_before_any_rejection():
    from annotator.build import build_model
    from annotator.inference.learning import LearningConfig
    from annotator.inference.predictor import Predictor

    predictor = Predictor(build_model(), device="cpu", crf=None)
    support = tuple(f(p) for f, p in zip((read_image, read_mask), davis.frames("car-roundabout")[0]))
    cars = [tuple(f(p) for f, p in zip((read_image, read_mask), davis.frames("car-shadow")[i])) for i in (0, 3, 6, 7)]
    others = [
        read_image(davis.frames(s)[k][0])
        for s, k in (("scooter-black", 2), ("camel", 10), ("dog", 5), ("blackswan", 0), ("breakdance", 0), ("cows", 20))
    ]
    feats = predictor.encode([support[0]] + [im for im, _ in cars] + others)
    folder = list(feats[1:])
    false_fg = {}
    for gap in (0.0, LearningConfig().presence_gap):
        predictor.learning = LearningConfig(presence_gap=gap)
        predictor.set_support_features(feats[:1], [support[1]], folder=folder)
        false_fg[gap] = [float((predictor.match(f, im.shape[:2])[0] > 0.5).mean()) for f, im in zip(feats[5:], others)]
    ious = [float(_iou(predictor.match(f, gt.shape)[0] > 0.5, gt)) for f, (_, gt) in zip(feats[1:5], cars)]
    # Measured without the gap: 8.3, 0, 0, 0.55, 0.35 and 0% of the class-free frames proposed (2 of 6 over the
    # reviewer's 0.5%: the scooter and the swan); with it the swan and the dancer come back empty (1 of 6 left:
    # the scooter scores above the cars' lowest). The cars keep IoU 0.82.
    over = {gap: sum(f > 0.005 for f in fg) for gap, fg in false_fg.items()}
    gap_fg, no_gap_fg = false_fg[LearningConfig().presence_gap], false_fg[0.0]
    assert over[0.0] >= 2 and over[LearningConfig().presence_gap] <= over[0.0] - 1, false_fg
    assert sum(gap_fg) < sum(no_gap_fg) and all(a <= b for a, b in zip(gap_fg, no_gap_fg)), false_fg
    assert np.mean(ious) > 0.74, ious


def test_from_two_supports_the_fitted_head_alone_segments_the_other_frames_better():
    from annotator.build import build_model
    from annotator.inference.learning import LearningConfig
    from annotator.inference.predictor import Predictor

    predictor = Predictor(build_model(), device="cpu", crf=None)
    frames = [tuple(f(p) for f, p in zip((read_image, read_mask), fm)) for fm in davis.frames("camel")[::2]]
    supports = frames[::3][:3]
    queries = [fr for fr in frames if all(fr is not s for s in supports)][:6]
    feats = predictor.encode([im for im, _ in supports + queries])
    ious = {}
    default = LearningConfig().head_alone_from
    for alone_from in (0, default):
        # the count of parts off: it drops the second camel, which the prototypes alone propose (0.77 -> 0.81)
        predictor.learning = LearningConfig(head_alone_from=alone_from, entropy=False, presence=False, parts=False)
        predictor.set_support_features(feats[:3], [m for _, m in supports])
        assert predictor.learned.head_alone == bool(alone_from)
        ious[alone_from] = [
            float(_iou(predictor.match(f, gt.shape)[0] > 0.5, gt)) for f, (_, gt) in zip(feats[3:], queries)
        ]
    # Measured with 3 supports: mean IoU 0.77 with the head added to PANet's logits, 0.80 with the head alone,
    # which is better on each of the 6 frames (by 0.01 to 0.06).
    assert np.mean(ious[default]) > 0.77 and np.mean(ious[default]) > np.mean(ious[0]) + 0.015, ious
    assert all(a >= b - 0.01 for a, b in zip(ious[default], ious[0])), ious


def test_on_another_video_the_regularised_head_corrects_the_prototypes_instead_of_deciding_alone():
    from annotator.build import build_model
    from annotator.inference.learning import LearningConfig
    from annotator.inference.predictor import Predictor

    predictor = Predictor(build_model(), device="cpu", crf=None)
    read = [tuple(f(p) for f, p in zip((read_image, read_mask), fm)) for fm in davis.frames("libby")[::3]]
    other = [tuple(f(p) for f, p in zip((read_image, read_mask), fm)) for fm in davis.frames("dog")[::2]]
    feats = predictor.encode([im for im, _ in read + other])
    ious = {}
    for same_scene in (0.0, LearningConfig().same_scene):
        predictor.learning = LearningConfig(same_scene=same_scene, entropy=False, presence=False)
        predictor.set_support_features(feats[: len(read)], [m for _, m in read])
        ious[same_scene] = [
            float(_iou(predictor.match(f, gt.shape)[0] > 0.5, gt)) for f, (_, gt) in zip(feats[len(read) :], other)
        ]
    # Measured with 4 supports of one dog's video and 6 frames of another dog's: mean IoU 0.14 with the close head
    # alone everywhere, 0.76 with the regularised head added to PANet's logits on the other video.
    assert np.mean(ious[LearningConfig().same_scene]) > max(0.6, np.mean(ious[0.0]) + 0.3), ious


def test_with_many_videos_drawn_each_videos_own_close_head_segments_its_frames_better():
    """One close head over several videos' dancers takes in what their backgrounds teach it; with several frames of
    each video drawn, a head of its own per video does better (learning.LearningConfig.scene_heads_from)."""
    from annotator.build import build_model
    from annotator.inference.learning import LearningConfig
    from annotator.inference.predictor import Predictor

    predictor = Predictor(build_model(), device="cpu", crf=None)
    videos = {s: [(read_image(i), read_mask(m)) for i, m in davis.frames(s)[::3][:6]] for s in davis.GROUPS["person"]}
    supports = [fr for frames in videos.values() for fr in frames[:4]]
    queries = [fr for frames in videos.values() for fr in frames[4:]]
    feats = predictor.encode([im for im, _ in supports + queries])
    ious = {}
    for scene_heads_from in (0, 2):
        predictor.learning = LearningConfig(scene_heads_from=scene_heads_from, entropy=False, presence=False)
        predictor.set_support_features(feats[: len(supports)], [m for _, m in supports])
        assert len(predictor.learned.scene_heads) == (3 if scene_heads_from else 0)  # one per video
        ious[scene_heads_from] = [
            float(_iou(predictor.match(f, gt.shape)[0] > 0.5, gt))
            for f, (_, gt) in zip(feats[len(supports) :], queries)
        ]
    # Measured, mean IoU of the 6 other frames (two a video, no CRF) from 12 supports: 0.596 with one close head,
    # 0.674 with one a video (breakdance's second 0.27 -> 0.61; parkour's first 0.68 -> 0.59).
    assert np.mean(ious[2]) > np.mean(ious[0]) + 0.04, ious


@pytest.mark.parametrize("sequence, floor, gain", [("car-roundabout", 0.88, 0.08), ("camel", 0.75, 0.04)])
def test_one_drawn_object_keeps_the_others_of_its_kind_out(sequence, floor, gain):
    """The parked cars of car-roundabout and the second camel are background in the truth: with one support of
    one part, proposals keep their strongest part only."""
    from annotator.build import build_model
    from annotator.inference.learning import LearningConfig
    from annotator.inference.predictor import Predictor

    predictor = Predictor(build_model(), device="cpu", crf=None)
    frames = [(read_image(i), read_mask(m)) for i, m in davis.frames(sequence)[::3]]
    feats = predictor.encode([im for im, _ in frames])
    ious = {}
    for parts in (False, True):
        predictor.learning = LearningConfig(parts=parts)
        predictor.set_support_features(feats[:1], [frames[0][1]])
        ious[parts] = [
            float(_iou(predictor.match(f, gt.shape)[0] > 0.5, gt)) for f, (_, gt) in zip(feats[1:], frames[1:])
        ]
    # Measured, mean IoU of the other frames: car-roundabout 0.81 -> 0.92 (its worst frame 0.60 -> 0.90),
    # camel 0.72 -> 0.78.
    assert np.mean(ious[True]) > floor and np.mean(ious[True]) > np.mean(ious[False]) + gain, ious


def test_the_supports_colours_sharpen_a_videos_other_frames():
    """Colour, seen at full resolution, recovers the limbs that the stride-8 features blur (the dancer)."""
    from annotator.build import build_model
    from annotator.inference.learning import LearningConfig
    from annotator.inference.predictor import Predictor

    predictor = Predictor(build_model(), device="cpu", crf=None)
    frames = [(read_image(i), read_mask(m)) for i, m in davis.frames("breakdance")[::4]]
    feats = predictor.encode([im for im, _ in frames])
    ious = {}
    default = LearningConfig().colour
    for colour in (0.0, default):
        predictor.learning = LearningConfig(colour=colour)
        predictor.set_support_features(feats[:2], [m for _, m in frames[:2]], images=[im for im, _ in frames[:2]])
        ious[colour] = [
            float(_iou(predictor.match(f, gt.shape, im)[0] > 0.5, gt)) for f, (im, gt) in zip(feats[2:], frames[2:])
        ]
    # Measured, mean IoU of the 3 other frames with 2 supports: 0.616 without the colours, 0.653 with them at
    # weight 0.5, 0.649 at 1.0 (the default since the effort benchmark's sweep, benchmarks/RESULTS.md).
    assert np.mean(ious[default]) > max(0.63, np.mean(ious[0.0]) + 0.025), ious


@pytest.fixture(scope="module")
def dancer():
    """A predictor with the CRF on, and the features of every other breakdance frame (RGB, mask) beside them."""
    from annotator.build import build_model
    from annotator.inference.predictor import Predictor

    predictor = Predictor(build_model(), device="cpu", crf=CRFParams())
    frames = [(read_image(i), read_mask(m)) for i, m in davis.frames("breakdance")[::2]]
    return predictor, frames, predictor.encode([im for im, _ in frames])


def test_the_crfs_foreground_bias_fills_out_a_dancers_thin_mask(dancer):
    """Proposals come out too thin on people (high precision, low recall): a positive foreground bias in the CRF
    (a setting, off by default) fills them out while its appearance kernel keeps them inside colour edges."""
    from annotator.inference.learning import LearningConfig

    predictor, frames, feats = dancer
    predictor.learning = LearningConfig(own_scene_bias=0.0)  # the CRF's own bias alone
    predictor.set_support_features(feats[:1], [frames[0][1]], images=[frames[0][0]])
    probs = [predictor.match(f, gt.shape, im)[0] for f, (im, gt) in zip(feats[1:], frames[1:])]
    ious = {
        bias: [float(_iou(refine(im, p, CRFParams(fg_bias=bias)) > 0.5, gt)) for p, (im, gt) in zip(probs, frames[1:])]
        for bias in (CRFParams().fg_bias, 1.0)
    }
    # Measured, mean IoU of the 8 other frames from the first: 0.547 at the default (0), 0.573 at 0.5, 0.596 at
    # 1.0; dance-twirl 0.350 -> 0.389. A car's mask is full already: one support in another video, 0.877 -> 0.796
    # at 1.0 (why it is off by default; benchmarks/RESULTS.md).
    assert np.mean(ious[1.0]) > max(0.57, np.mean(ious[CRFParams().fg_bias]) + 0.03), ious


def test_a_videos_own_frames_get_fuller_masks_where_a_crf_follows_and_other_scenes_do_not(dancer):
    """The learning loop's foreground bias (LearningConfig.own_scene_bias) speaks only on queries of the supports'
    own scenes, and only where the predictor's CRF refines them: it fills out the dancer, and another video's
    frame, or any frame without the CRF, is matched as before."""
    from annotator.inference.learning import LearningConfig

    predictor, frames, feats = dancer
    other = read_image(davis.frames("car-shadow")[0][0])
    other_feats = predictor.encode([other])[0]
    probs, ious = {}, {}
    default = LearningConfig().own_scene_bias
    for bias in (0.0, default):
        predictor.learning = LearningConfig(own_scene_bias=bias)
        predictor.set_support_features(feats[:1], [frames[0][1]], images=[frames[0][0]])
        probs[bias] = [predictor.match(f, im.shape[:2], im)[0] for f, (im, _) in zip(feats[1:], frames[1:])]
        ious[bias] = [float(_iou(refine(im, p) > 0.5, gt)) for p, (im, gt) in zip(probs[bias], frames[1:])]
        probs[bias].append(predictor.match(other_feats, other.shape[:2], other)[0])
        predictor.crf = None
        probs[bias].append(predictor.match(feats[1], frames[1][0].shape[:2], frames[1][0])[0])
        predictor.crf = CRFParams()
    assert np.array_equal(probs[0.0][-2], probs[default][-2]) and np.array_equal(probs[0.0][-1], probs[default][-1])
    # Measured, mean IoU of the 8 other frames from the first, with the CRF: 0.547 without the bias, 0.596 at 1.0
    # (the default since the effort benchmark, benchmarks/RESULTS.md), as the CRF's own bias gives on every query.
    assert np.mean(ious[default]) > max(0.57, np.mean(ious[0.0]) + 0.03), ious
