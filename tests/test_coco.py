"""COCO output: lossless RLE that pycocotools reads back pixel for pixel, with area, bbox and score."""

from __future__ import annotations

import json

import numpy as np
from pycocotools.coco import COCO

from annotator.formats.coco import CocoBuilder, decode_rle


def test_masks_round_trip_through_pycocotools(tmp_path):
    rng = np.random.default_rng(0)
    masks = [rng.random((37, 53)) > 0.7, np.zeros((37, 53), bool), np.ones((20, 10), bool)]
    masks[0][10:20, 10:20] = False  # a hole
    coco = CocoBuilder(categories=[{"id": 1, "name": "thing", "supercategory": ""}])
    ids = [coco.add_image(f"{i}.jpg", m.shape[0], m.shape[1]) for i, m in enumerate(masks)]
    anns = [coco.add_mask(i, 1, m, score=0.5) for i, m in zip(ids, masks)]
    assert anns[1] is None  # an empty mask is no annotation
    coco.write(tmp_path / "out.json", info={"x": 1})
    api = COCO(str(tmp_path / "out.json"))
    for image_id, m in zip(ids, masks):
        got = api.loadAnns(api.getAnnIds(imgIds=[image_id]))
        if not m.any():
            assert got == []
            continue
        (ann,) = got
        assert np.array_equal(api.annToMask(ann).astype(bool), m)
        assert np.array_equal(decode_rle(ann["segmentation"]), m)
        assert ann["area"] == int(m.sum()) and ann["iscrowd"] == 0 and ann["score"] == 0.5
        ys, xs = np.nonzero(m)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    assert json.loads((tmp_path / "out.json").read_text())["info"] == {"x": 1}
