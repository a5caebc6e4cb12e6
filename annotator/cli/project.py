"""`annotator init`, `export` and `import`: the headless side of the project model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from annotator.cli.common import fail
from annotator.config import MIN_INSTANCE_AREA, State


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The `init`, `export` and `import` subcommands and their options."""
    from annotator.formats.exporters import EXPORTERS  # its choices
    from annotator.formats.importers import AUTO, IMPORTERS

    p = sub.add_parser("init", help="create a project over a folder of images (the folder is never modified)")
    p.add_argument("project", type=Path, help="project folder to create")
    p.add_argument("--images", required=True, type=Path)
    p.add_argument("--class", dest="classes", action="append", default=[], metavar="NAME", help="add a class")
    p = sub.add_parser(
        "export", help="export a project as COCO (RLE or polygons), YOLO-seg, VOC, labelme, CVAT XML or index PNGs"
    )
    p.add_argument("project", type=Path)
    p.add_argument("--out", required=True, type=Path, help="FILE.json, or a folder for the other formats")
    p.add_argument("--format", default="coco-rle", choices=list(EXPORTERS))
    p.add_argument(
        "--val-fraction", type=float, default=0.0, help="yolo-seg, voc: this share of the images goes to the val split"
    )
    p.add_argument("--seed", type=int, default=0, help="yolo-seg, voc: the seed that draws the val split")
    p.add_argument("--include-proposals", action="store_true", help="also export unreviewed proposals (with score)")
    p.add_argument("--instances", action="store_true", help="one annotation per instance, not per class")
    p.add_argument(
        "--min-area",
        type=int,
        default=MIN_INSTANCE_AREA,
        metavar="PIXELS",
        help=f"with --instances (and for VOC's objects): parts of fewer pixels are left out (default "
        f"{MIN_INSTANCE_AREA}; 0 keeps every pixel)",
    )
    p.add_argument(
        "--holes",
        default="rle",
        choices=["rle", "refuse"],
        help="coco-polygon: a mask with holes falls back to RLE (default) or stops the export",
    )
    p = sub.add_parser(
        "import", help="import a COCO file, a YOLO-seg or VOC dataset, labelme files or CVAT XML into a project"
    )
    p.add_argument("project", type=Path)
    p.add_argument(
        "source",
        type=Path,
        help="a COCO .json file, a YOLO-seg folder (or its data.yaml), a VOC folder, labelme files (a folder), or a "
        "CVAT for images .xml file (or a folder with annotations.xml), or a folder of mask PNGs",
    )
    p.add_argument(
        "--format",
        default="auto",
        choices=[AUTO, *IMPORTERS],
        help="auto: a .json file is COCO, an .xml file or a folder with annotations.xml CVAT, a folder with data.yaml "
        "(or the .yaml) YOLO-seg, one with labelmap.txt and SegmentationClass/ VOC, one with dataset_meta.json or "
        "palette.json mask PNGs, another folder labelme",
    )
    p.add_argument("--as", dest="state", type=State, default=State.ACCEPTED, choices=[State.ACCEPTED, State.PROPOSED])
    p.add_argument("--overwrite", action="store_true", help="replace accepted and edited masks too (kept otherwise)")
    p.add_argument(
        "--allow-overlap",
        action="store_true",
        help="instances of a class that overlap: the later one takes the shared pixels (else refused)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse the file if an image matches none of the folder or an annotation has no mask",
    )


def run(args: argparse.Namespace) -> int:
    """`init`, `export` and `import`: the headless side of the project model."""
    from annotator.formats.export import ExportError, ExportOptions, left_out_proposals
    from annotator.formats.importers import import_annotations, import_report
    from annotator.formats.importing import ImportFormatError
    from annotator.io.imageio import ImageReadError
    from annotator.project.store import Project, ProjectError

    try:
        if args.command == "init":
            with Project.create(args.project, args.images) as proj:
                for note in proj.report.notes():
                    print(f"warning: {note}", file=sys.stderr)
                if proj.report.recovered:
                    print(f"{args.project}: restored the existing project, not created anew", file=sys.stderr)
                for name in args.classes:
                    if all(c.name != name.strip() for c in proj.classes.values()):
                        proj.add_class(name)
                proj.save()
                print(f"{args.project}: project over {len(proj.images)} images of {proj.image_root}")
            return 0
        with Project.open(args.project, read_only=args.command == "export") as proj:
            for note in proj.report.notes():
                print(f"warning: {note}", file=sys.stderr)
            if args.command == "import":
                n = import_annotations(
                    proj, args.source, args.format, args.state, args.overwrite, args.allow_overlap, args.strict
                )
                proj.save()
                done, warnings = import_report(n, "--overwrite replaces them")
                print(done)
                for w in warnings:
                    print(f"warning: {w}", file=sys.stderr)
                return 0
            from annotator.formats.exporters import EXPORTERS

            exporter = EXPORTERS[args.format]
            opts = ExportOptions(
                include_proposals=args.include_proposals,
                instances=args.instances,
                min_area=args.min_area,
                polygons=exporter.polygons,
                holes=args.holes,
                val_fraction=args.val_fraction,
                seed=args.seed,
            )
            n = exporter.write(proj, args.out, opts)
            done, warnings = exporter.report(
                n, args.out, left_out_proposals(proj, opts), "--include-proposals exports them"
            )
            print(f"wrote {done}")
            for w in warnings:
                print(f"warning: {w}", file=sys.stderr)
        return 0
    except (ProjectError, ExportError, ImportFormatError, ImageReadError) as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"{exc.filename or ''}: {exc.strerror or exc}")
