"""Per-model sampling defaults and the image sizes FLUX accepts (no torch needed)."""

from __future__ import annotations

import pytest

from flux_service.backends.base import ImageJob, chunked
from flux_service.backends.flux_models import DEV, SCHNELL, check_size, defaults_for
from meshforge.errors import InvalidInput


def test_schnell_defaults_to_four_steps_without_guidance_and_256_t5_tokens() -> None:
    assert defaults_for("black-forest-labs/FLUX.1-schnell", guidance_embeds=False) == SCHNELL
    assert (SCHNELL.steps, SCHNELL.guidance, SCHNELL.max_sequence_length) == (4, 0.0, 256)


def test_dev_defaults_to_fifty_steps_guidance_3_5_and_512_t5_tokens() -> None:
    assert defaults_for("black-forest-labs/FLUX.1-dev", guidance_embeds=True) == DEV
    assert (DEV.steps, DEV.guidance, DEV.max_sequence_length) == (50, 3.5, 512)


def test_an_unnamed_model_is_judged_by_whether_it_takes_guidance_as_input() -> None:
    assert defaults_for("my-org/my-flux-finetune", guidance_embeds=True) == DEV
    assert defaults_for("my-org/my-flux-finetune", guidance_embeds=False) == SCHNELL


@pytest.mark.parametrize(("width", "height"), [(512, 512), (1024, 768), (32, 48), (2048, 16)])
def test_multiples_of_16_are_accepted(width: int, height: int) -> None:
    check_size(width, height)


def test_other_sizes_are_refused_with_the_nearest_valid_ones() -> None:
    with pytest.raises(InvalidInput) as refused:
        check_size(500, 512)
    assert "multiples of 16" in refused.value.message
    assert "got 500×512" in refused.value.message
    assert "width 500 (use 496 or 512)" in refused.value.message
    assert "height" not in refused.value.message.split("got")[1]


def test_jobs_are_chunked_into_model_calls_of_at_most_max_batch() -> None:
    jobs = [ImageJob(f"p{i}", i) for i in range(7)]
    assert [len(chunk) for chunk in chunked(jobs, 3)] == [3, 3, 1]
    assert [job for chunk in chunked(jobs, 3) for job in chunk] == jobs
