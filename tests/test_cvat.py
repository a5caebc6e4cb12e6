"""CVAT for images 1.1 XML out and in: masks back pixel for pixel, CVAT's own shapes (boxes, RLE masks, grouped
polygons) read, and bad files named."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from annotator.cli import main
from annotator.formats.cvat import export_cvat, import_cvat
from annotator.formats.export import ExportOptions
from annotator.formats.importing import ImportFormatError
from tests.synthetic import cat_dog_project, mask_cases

H, W = 23, 31


def _project(root, files=("a.png", "sub/b.png", "c.png")):
    return cat_dog_project(root, H, W, files)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return _project(tmp_path_factory.mktemp("cvat") / "src")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cat=mask_cases(H, W), dog=mask_cases(H, W))
def test_round_trip_is_pixel_exact(pair, tmp_path_factory, cat, dog):
    src = pair
    a = src.image_id("a.png")
    for class_id, m in ((1, cat), (2, dog)):
        src.set_mask(a, class_id, m) if m.any() else src.clear_mask(a, class_id)
    out = tmp_path_factory.mktemp("out") / "annotations.xml"
    export_cvat(src, out)
    dst = _project(tmp_path_factory.mktemp("dst"))
    n = import_cvat(dst, out)
    assert n["unmatched"] == [] and n["kept"] == 0
    for class_id, m in ((1, cat), (2, dog)):
        got = dst.mask(dst.image_id("a.png"), class_id)
        assert np.array_equal(got if got is not None else np.zeros((H, W), bool), m)


def test_the_file_is_cvats_layout_with_instances_grouped(tmp_path):
    p = _project(tmp_path)
    b = p.image_id("sub/b.png")
    labels = np.zeros((H, W), np.uint8)
    labels[2:8, 2:10] = 1
    labels[12:20, 15:25] = 2
    labels[14:17, 18:21] = 0  # a hole: the instance is written as bands sharing its group_id
    p.set_mask(b, 1, labels)
    out = tmp_path / "annotations.xml"
    n = export_cvat(p, out, ExportOptions(instances=True))
    root = ET.parse(out).getroot()
    assert root.tag == "annotations" and root.findtext("version") == "1.1"
    assert [e.findtext("name") for e in root.iter("label")] == ["cat", "dog"]
    (image,) = root.iter("image")
    assert (image.get("name"), image.get("width"), image.get("height")) == ("sub/b.png", str(W), str(H))
    polys = list(image.iter("polygon"))
    assert n == {"images": 1, "shapes": len(polys), "skipped": []} and len(polys) >= 3
    assert {q.get("label") for q in polys} == {"cat"} and {q.get("group_id") for q in polys} == {"1", "2"}
    dst = _project(tmp_path / "again")
    import_cvat(dst, tmp_path)  # a folder holding annotations.xml
    got = dst.labels(dst.image_id("sub/b.png"), 1)
    assert got.max() == 2 and np.array_equal(got > 0, labels > 0)  # two instances, the hole kept


def test_cvats_own_shapes_are_read(tmp_path):
    """A file as CVAT writes it: a box, a mask as CVAT's RLE (background first, row by row over its box), two
    polygons of one group, a polyline (no area) and a tag."""
    p = _project(tmp_path)
    xml = f"""<?xml version="1.0" encoding="utf-8"?>
<annotations><version>1.1</version><meta><task><name>t</name></task></meta>
 <image id="0" name="images/a.png" width="{W}" height="{H}">
  <box label="cat" source="manual" occluded="0" xtl="1" ytl="1" xbr="5" ybr="4" z_order="0"/>
  <mask label="dog" source="manual" occluded="0" rle="1, 2, 3, 2, 2" left="10" top="5" width="5" height="2"/>
  <polygon label="dog" points="20,10;28,10;28,14;20,14" group_id="7"/>
  <polygon label="dog" points="20,16;28,16;28,20;20,20" group_id="7"/>
  <polyline label="dog" points="1,20;5,22"/>
  <tag label="dog"/>
 </image>
</annotations>"""
    (tmp_path / "in.xml").write_text(xml)
    n = import_cvat(p, tmp_path / "in.xml")
    assert (n["images"], n["masks"], n["annotations"], n["unusable"]) == (1, 2, 4, 2)
    a = p.image_id("a.png")
    cat = p.mask(a, 1)
    assert cat[1:4, 1:5].all() and cat.sum() == 12  # the box's pixel centres
    dog = p.labels(a, 2)
    want = np.zeros((2, 5), bool)
    want.flat[[1, 2, 6, 7]] = True  # 1 off, 2 on, 3 off, 2 on, 2 off
    assert np.array_equal(dog[5:7, 10:15] > 0, want)
    assert dog.max() == 2 and len(np.unique(dog[10:21, 20:29])) == 2  # the grouped polygons are one instance


@pytest.mark.parametrize(
    "body, words",
    [
        ('<polygon label="cat" points="1,1;5,1"/>', "at least 3 points"),
        ('<polygon label="cat" points="1,1;a,b;5,5"/>', "x,y pairs"),
        ('<polygon points="1,1;5,1;5,5"/>', "needs a 'label'"),
        ('<box label="cat" xtl="1" ytl="1" xbr="nan" ybr="4"/>', "'xbr' must be a finite number"),
        ('<mask label="cat" rle="1,2" left="0" top="0" width="2" height="2"/>', r"must sum to width x height \(4\)"),
        ('<mask label="cat" rle="1,-1,4" left="0" top="0" width="2" height="2"/>', "must sum"),
        ('<mask label="cat" rle="4" left="0.5" top="0" width="2" height="2"/>', "must be whole"),
        ('<mask label="cat" rle="2000000000" left="0" top="0" width="50000" height="40000"/>', "is over 80,000,000"),
    ],
)
def test_a_bad_shape_is_named_and_nothing_stored(tmp_path, body, words):
    p = _project(tmp_path)
    doc = f'<annotations><image id="0" name="a.png" width="{W}" height="{H}">{body}</image></annotations>'
    (tmp_path / "bad.xml").write_text(doc)
    with pytest.raises(ImportFormatError, match=words):
        import_cvat(p, tmp_path / "bad.xml")
    assert p.mask(p.image_id("a.png"), 1) is None


@pytest.mark.parametrize(
    "text, words",
    [
        ("<annotations><image", "not a readable CVAT XML file"),
        ("<labelme/>", "its root is <labelme>"),
        (  # a billion laughs: expat refuses the amplification before it is built
            '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY l0 "lol">'
            + "".join(f'<!ENTITY l{i + 1} "{f"&l{i};" * 10}">' for i in range(9))
            + ']><annotations><image name="&l9;"/></annotations>',
            "not a readable CVAT XML file",
        ),
        ("<annotations><track id='0' label='cat'/></annotations>", "CVAT for video"),
        (f'<annotations><image name="a.png" width="{W + 1}" height="{H}"/></annotations>', "differ from the image's"),
    ],
)
def test_a_file_that_is_not_cvat_for_images_is_named(tmp_path, text, words):
    p = _project(tmp_path)
    (tmp_path / "x.xml").write_text(text)
    with pytest.raises(ImportFormatError, match=words):
        import_cvat(p, tmp_path / "x.xml")


def test_the_cli_exports_and_imports_cvat_told_by_auto(tmp_path, capsys):
    p = _project(tmp_path / "src")
    m = np.zeros((H, W), bool)
    m[3:9, 4:12] = True
    p.set_mask(p.image_id("c.png"), 2, m)
    p.save()
    p.close()
    out = tmp_path / "annotations.xml"
    assert main(["export", str(p.folder), "--out", str(out), "--format", "cvat"]) == 0
    assert "wrote 1 image, 1 polygon to" in capsys.readouterr().out
    dst = _project(tmp_path / "dst")
    dst.save()
    dst.close()
    assert main(["import", str(dst.folder), str(out)]) == 0
    assert "imported 1 annotations as 1 masks on 1 images" in capsys.readouterr().out
    again = type(dst).open(dst.folder, read_only=True)
    assert np.array_equal(again.mask(again.image_id("c.png"), 2), m)
