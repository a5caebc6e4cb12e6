"""Annotation formats: COCO (coco, coco_import, export) and the others, each module writing a project out in one
format and reading that format back in, under the import rules of `importing`."""
