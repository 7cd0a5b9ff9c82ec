"""Detection-style models: forward returns one dict of boxes, scores and labels per image (as
torchvision's SSD/RetinaNet/FCOS do); export fixes the batch and checks parity on every field."""

import numpy as np
import torch
from torch import nn

from onnxdeploy.exporter import export
from onnxdeploy.exporter.parity import detections_in_order


class TinyDetector(nn.Module):
    """Per image: the top-5 anchors of a 4x4 grid by score, their boxes and class labels."""

    def __init__(self, classes=3):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1))
        self.cls = nn.Conv2d(8, classes, 1)
        self.box = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        f = self.features(x)
        scores = self.cls(f).flatten(2).sigmoid()  # [N, classes, anchors]
        boxes = self.box(f).flatten(2).transpose(1, 2)  # [N, anchors, 4]
        results = []
        for image_scores, image_boxes in zip(scores, boxes):
            best, labels = image_scores.max(0)
            top, index = best.topk(5)
            results.append({"boxes": image_boxes[index], "scores": top, "labels": labels[index]})
        return results


def test_per_image_outputs_export_with_a_static_batch_and_parity(tmp_path):
    torch.manual_seed(0)
    seen = []
    result = export(
        "detector",
        tmp_path / "det.onnx",
        module=TinyDetector(),
        input_shapes=[(1, 3, 16, 16)],
        announce=seen.append,
    )
    assert not result.dynamic_batch and result.parity
    assert [r.name for r in result.parity.outputs] == [
        "output_0.boxes",
        "output_0.scores",
        "output_0.labels",
    ]
    assert any("one set of outputs per sample" in m for m in seen)
    assert result.task == "detection" and "(detection) ->" in str(result)
    seen.clear()  # an example of 2 images is found as one too (it was probed at its own batch)
    result = export(
        "detector",
        tmp_path / "two.onnx",
        module=TinyDetector(),
        input_shapes=[(2, 3, 16, 16)],
        announce=seen.append,
    )
    assert result.task == "detection" and result.parity_batches == (2,) and result.parity
    assert not result.dynamic_batch and any("static batch of 2" in m for m in seen)
    seen.clear()  # asked for a static batch: the same family, nothing to say
    result = export(
        "detector",
        tmp_path / "static.onnx",
        module=TinyDetector(),
        input_shapes=[(1, 3, 16, 16)],
        dynamic_batch=False,
        announce=seen.append,
    )
    assert result.task == "detection" and result.parity_batches == (1,) and not seen


def test_tied_detections_compare_as_a_set():
    boxes = np.array([[0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 5, 5]], dtype=np.float32)
    scores = np.array([0.9, 0.5, 0.5], dtype=np.float32)
    labels = np.array([1, 2, 2])
    a = {"output_0.boxes": boxes, "output_0.scores": scores, "output_0.labels": labels}
    swap = [0, 2, 1]
    b = {"output_0.boxes": boxes[swap], "output_0.scores": scores[swap], "output_0.labels": labels}
    a, b = detections_in_order(a), detections_in_order(b)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    different = dict(b, **{"output_0.boxes": boxes[[0, 1, 1]]})
    assert not np.array_equal(detections_in_order(different)["output_0.boxes"], a["output_0.boxes"])
