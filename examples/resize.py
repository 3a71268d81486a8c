"""An example job type: `resize`, with a typed payload, progress reports and a failure code.

Load it with `JOB_HANDLER_MODULES=examples.resize`. The submit checks the payload against
`ResizePayload` (a bad `width` gets 422 before anything is stored), and the OpenAPI document
shows the model under `job_type: "resize"`. The work is pretended, as the thumbnail's is.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jobs.errors import JobFailed
from jobs.handlers import ReportProgress, register
from jobs.models import JobMessage
from jobs.settings import get_settings

#: The source images this job type can read, by file name.
SOURCE_SUFFIXES = (".png", ".jpg", ".jpeg")


class ResizePayload(BaseModel):
    """The payload of a `resize` job."""

    model_config = ConfigDict(extra="forbid")

    asset_url: str = Field(pattern=r"^https://", max_length=2048,
                           examples=["https://example.invalid/image.png"])
    width: int = Field(ge=1, le=4096, description="Target width in pixels.")
    height: int = Field(ge=1, le=4096, description="Target height in pixels.")
    format: Literal["png", "webp"] = "png"


@register("resize", payload=ResizePayload)
def resize(job: JobMessage, progress: ReportProgress) -> dict[str, Any]:
    """Pretend to resize the image at `asset_url`; a source it cannot read fails the job."""
    payload = ResizePayload.model_validate(job.payload)
    progress(10, "reading source")
    if not payload.asset_url.lower().endswith(SOURCE_SUFFIXES):
        # No retry can read a format this job type does not know: fail now, with a code.
        raise JobFailed("unsupported_source", "the source must be a PNG or JPEG image")
    progress(60, f"resizing to {payload.width}x{payload.height}")
    base = get_settings().artifact_base_url
    return {"artifactUrl": f"{base}/jobs/{job.job_id}.{payload.format}",
            "width": payload.width, "height": payload.height}
