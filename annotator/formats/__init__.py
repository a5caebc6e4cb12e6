"""Dataset formats beside COCO (annotator.export, annotator.coco_import): each module writes a project out in one
format and reads that format back in, under the import rules of `importing`."""
