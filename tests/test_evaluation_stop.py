"""Evaluations stop promptly when asked (a preemption signal) and refuse settings that make one batch take minutes."""
import pytest
import torch

from segbench.engine.evaluate import (MAX_WINDOWS_PER_IMAGE, EvaluationStopped, check_evaluation_cost,
                                      evaluate_confusion, slide_logits)
from segbench.engine.runtime import Runtime
from segbench.errors import ConfigError
from segbench.recipe.schema import EvaluationConfig


class CountingModel(torch.nn.Module):
    def __init__(self, num_classes=3):
        super().__init__()
        self.calls, self.num_classes = 0, num_classes

    def forward(self, images):
        self.calls += 1
        return images[:, :1].repeat(1, self.num_classes, 1, 1)


def test_sliding_windows_stop_before_the_next_window():
    model = CountingModel()
    asked = []

    def stop():
        asked.append(1)
        return len(asked) > 3

    with pytest.raises(EvaluationStopped):
        slide_logits(model, torch.rand(1, 3, 32, 32), window=(4, 4), stride=(4, 4), num_classes=3,
                     runtime=Runtime(torch.device("cpu")), stop=stop)
    assert model.calls == 3  # 64 windows; stopped after the third


class Items(torch.utils.data.Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, index):
        return torch.zeros(3, 8, 8, dtype=torch.uint8), torch.zeros(8, 8, dtype=torch.uint8)


def _identity(image, mask, generator):
    return image.float(), mask


def test_an_evaluation_stops_at_the_next_batch():
    model, seen = CountingModel(), []
    kwargs = dict(config=EvaluationConfig(batch_size=2), num_classes=3, ignore_index=255,
                  runtime=Runtime(torch.device("cpu")), progress=False)
    with pytest.raises(EvaluationStopped):
        evaluate_confusion(model, Items(), _identity, stop=lambda: (seen.append(1), model.calls >= 2)[1], **kwargs)
    assert model.calls == 2 and model.training  # 5 batches; stopped after the second, train mode restored
    model.calls = 0
    matrix = evaluate_confusion(model, Items(), _identity, stop=lambda: False, **kwargs)
    assert model.calls == 5 and int(matrix.sum()) == 10 * 64


@pytest.mark.parametrize("config, size", [
    (EvaluationConfig(mode="slide", window=(769, 769), stride=(513, 513)), (1024, 2048)),  # mmseg's Cityscapes
    (EvaluationConfig(mode="slide", window=(512, 1024)), (1024, 2048)),
    (EvaluationConfig(mode="slide"), (1024, 2048)),  # window: the whole image
    (EvaluationConfig(mode="whole"), (1024, 2048)),
])
def test_usual_evaluation_settings_pass(config, size):
    check_evaluation_cost(config, size, split="report")


def test_a_tiny_sliding_window_is_refused_with_the_reason_and_the_fix():
    config = EvaluationConfig(mode="slide", window=(2, 2), stride=(2, 2))
    with pytest.raises(ConfigError) as info:
        check_evaluation_cost(config, (1024, 2048), split="report", files=["r.yaml"])
    message = str(info.value)
    assert "evaluation.window" in message and "512x1024 = 524288 windows" in message
    assert f"at most {MAX_WINDOWS_PER_IMAGE}" in message and "Use a larger window" in message
